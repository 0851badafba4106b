import type { Socket } from 'node:net';
import {
  BASE_ALLOCATION,
  Command,
  CommandFlag,
  Errno,
  NbdError,
  ProtocolError,
  RequestParser,
  nameOf,
  type ErrnoValue,
  type NegotiatedSession,
  type Request,
  type RequestFrame,
} from 'nbd-protocol-ts';
import type { Logger } from '../log/logger.js';
import type { SocketReader } from '../net/socket-reader.js';
import { unsentBytes } from '../net/unsent-bytes.js';
import type { BlockExport, ExportCapabilities, MetaContextSource } from './block-export.js';
import type { BufferPool } from './buffer-pool.js';
import { CLOSE_GRACE_MS, endConnection } from './end-connection.js';
import type { MemoryBudget } from './memory-budget.js';
import { ReplyWriter } from './reply-writer.js';
import { settleReadReplies } from './unread-file-replies.js';
import { nbdErrnoOf } from './system-errno.js';
import { validateRequest, type ValidationContext } from './validate-request.js';

/**
 * READ replies shorter than this are copied, not sent from the page cache:
 * a small copy is cheap, and the page-cache path costs more system calls
 * (`cachestat`, a separate header `send`, `sendfile`, and for watched spans
 * `SIOCOUTQ` until read) than it saves. fio 4 KiB random reads QD16:
 * read-only 49–55k IOPS copied against 43–45k from the page cache; the
 * source before sealing 49–65k against 34–47k.
 */
const FILE_REPLY_MIN_BYTES = 64 * 1024;

export interface TransmissionLimits {
  /** Requests being served at once on this connection; reading stops at the bound. */
  maxInFlight: number;
  /** Payload bytes held by in-flight requests (write payloads and read buffers). */
  maxInFlightBytes: number;
  /** Reply bytes waiting in the socket before reading stops (a slow reader must not make us buffer unboundedly). */
  maxQueuedReplyBytes: number;
  /** Largest READ/WRITE accepted: the advertised maximum block size. */
  maxPayload: number;
}

/**
 * The transmission phase of one connection: parses requests, validates them,
 * runs them against the export concurrently, and replies as each finishes
 * (replies go out in completion order, as the spec allows).
 */
export class TransmissionSession {
  private readonly parser: RequestParser;
  private readonly replies: ReplyWriter;
  private readonly validation: ValidationContext;
  /** The meta contexts this connection selected, in id order: BLOCK_STATUS answers one chunk for each. */
  private readonly statusContexts: Array<{ id: number; status: MetaContextSource['status'] }> = [];
  private inFlight = 0;
  private inFlightBytes = 0;
  private disconnecting = false;
  /** Server shutdown: the requests already received are served, nothing more is read (quiesce). */
  private quiescing = false;
  /** Resolves quiesce's wait once nothing is in flight and no received request is left. */
  private quiesced: (() => void) | undefined;
  private readonly drained: Array<() => void> = [];
  /** Payloads received into pooled memory: handed back once their request is done (BlockExport.write only borrows data). */
  private readonly pooledPayloads = new WeakSet<Buffer>();
  /** Bytes this connection holds of the server's memory budget. */
  private reservedBytes = 0;
  /** A payload allocated for a WRITE still arriving: given back by dispose() if the connection dies first. */
  private assembling: Buffer | undefined;
  private waitingForBudget = false;
  /** Bytes received from the client so far: progress on its side (stalledFor). */
  private receivedBytes = 0;
  private readonly stall: { since: number; received: number; flushed: number; unsent: number | undefined } = { since: 0, received: 0, flushed: 0, unsent: undefined };
  private readonly onBudgetRoom = (): void => {
    this.budget.cancel(this.onBudgetRoom);
    this.waitingForBudget = false;
    this.pump();
  };

  constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    negotiated: NegotiatedSession,
    private readonly exp: BlockExport,
    private readonly limits: TransmissionLimits,
    private readonly log: Logger,
    private readonly buffers: BufferPool,
    private readonly budget: MemoryBudget,
  ) {
    this.parser = new RequestParser({
      maxPayload: limits.maxPayload,
      extendedHeaders: negotiated.extendedHeaders,
      allocatePayload: (length) => {
        const payload = this.acquireBuffer(length);
        this.pooledPayloads.add(payload);
        this.assembling = payload;
        return payload;
      },
    });
    this.replies = new ReplyWriter(socket, negotiated.structuredReplies, (why) =>
      log.warn(`read replies are copied through the server from now on, on every connection: sending them from the page cache failed (${why})`),
    );
    for (const [id, name] of negotiated.metaContexts) {
      if (name === BASE_ALLOCATION) {
        this.statusContexts.push({ id, status: (offset, length) => exp.blockStatus(offset, length) });
        continue;
      }
      const own = exp.metaContexts?.find((context) => context.name === name);
      if (own !== undefined) this.statusContexts.push({ id, status: (offset, length) => own.status(offset, length) });
    }
    const capabilities: ExportCapabilities = exp.capabilities();
    this.validation = {
      size: exp.size,
      capabilities,
      structuredReplies: negotiated.structuredReplies,
      blockStatusContext: this.statusContexts.length > 0,
      maxPayload: limits.maxPayload,
    };
    if (negotiated.leftover.length > 0) this.parser.push(negotiated.leftover);
    // Each recv lands where the parser says: a large WRITE payload straight into its own buffer.
    reader.deliverTo({
      buffer: () => this.parser.receiveBuffer(),
      received: (bytes) => {
        // Replies to every request in this recv that completes without waiting (page-cache
        // reads) leave in one writev instead of one syscall each.
        this.replies.batch();
        this.receivedBytes += bytes;
        this.parser.received(bytes);
        this.pump();
      },
      ended: () => undefined,
    });
    socket.on('drain', () => this.pump());
    socket.once('close', () => this.dispose());
    this.pump();
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  /**
   * How long (ms) this client has held memory of the server's budget while
   * the server waits on it — replies it does not read, or a payload it does
   * not finish sending — with no progress on either. 0 when it is not such a
   * wait, or when it moved since the last call (progress is counted, so calls
   * may be far apart).
   */
  stalledFor(now: number): number {
    const received = this.receivedBytes;
    const flushed = this.replies.flushed;
    const unsent = unsentBytes(this.socket);
    // A payload we stopped reading (paused for room) waits on us, not on the client.
    const waitsOnClient = this.reservedBytes > 0 && (this.socket.writableLength > 0 || (this.assembling !== undefined && !this.socket.isPaused()));
    const moved = received !== this.stall.received || flushed !== this.stall.flushed || unsent !== this.stall.unsent;
    this.stall.received = received;
    this.stall.flushed = flushed;
    this.stall.unsent = unsent;
    if (moved || !waitsOnClient) {
      this.stall.since = now;
      return 0;
    }
    return now - this.stall.since;
  }

  get heldBytes(): number {
    return this.reservedBytes;
  }

  /**
   * Server shutdown: reads nothing more, but serves every request already
   * received — in flight or waiting in the parser — as the spec asks of a
   * server that shuts down; resolves when all are answered. Dropping the
   * waiting ones left their client with neither a reply nor an error (400
   * pipelined reads: 66 answered).
   */
  quiesce(): Promise<void> {
    this.quiescing = true;
    this.socket.pause();
    this.replies.stopWaitingForClient();
    const served = new Promise<void>((resolve) => (this.quiesced = resolve));
    // Waiting requests are taken as replies drain: a client that does not read them has the rest dropped after a grace.
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    this.pump();
    return Promise.race([served, grace]).then(() => {
      clearTimeout(timer);
      this.quiesced = undefined;
      this.disconnecting = true;
      this.reader.discardRest();
      return this.whenDrained();
    });
  }

  private whenDrained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  private canAccept(): boolean {
    return (
      this.inFlight < this.limits.maxInFlight &&
      this.inFlightBytes < this.limits.maxInFlightBytes &&
      this.socket.writableLength < this.limits.maxQueuedReplyBytes &&
      this.budgetAllows()
    );
  }

  /** The server-wide memory budget lets the next request in (MemoryBudget). */
  private budgetAllows(): boolean {
    // Under the limit any request may start (the excess is one request at most): no peek on the per-request path.
    if (!this.budget.exhausted) return true;
    const next = this.parser.peekRequest();
    if (next === undefined) return true;
    const bytes = next.type === Command.READ || next.type === Command.WRITE ? next.length : 0;
    // An oversized write is skipped, not held.
    if (bytes > this.limits.maxPayload) return true;
    return this.budget.allows(bytes, this.reservedBytes);
  }

  /** Request memory (a READ's buffer, a WRITE's payload): from the pool, and counted against the server's budget until releaseBuffer. */
  private acquireBuffer(length: number): Buffer {
    this.reservedBytes += length;
    this.budget.take(length);
    return this.buffers.acquire(length);
  }

  private releaseBuffer(buffer: Buffer): void {
    this.buffers.release(buffer);
    this.unreserve(buffer.length);
  }

  private unreserve(bytes: number): void {
    this.reservedBytes -= bytes;
    this.budget.give(bytes);
    // The budget wakes waiters when it is under its limit; a connection holding nothing may go on before that.
    if (this.waitingForBudget && this.reservedBytes === 0) this.onBudgetRoom();
  }

  /** The connection is gone: a payload it was still receiving frees its share (its memory is not reused); no more waiting for room. */
  private dispose(): void {
    this.budget.cancel(this.onBudgetRoom);
    this.waitingForBudget = false;
    if (this.assembling !== undefined) {
      this.unreserve(this.assembling.length);
      this.assembling = undefined;
    }
  }

  private pump(): void {
    while (!this.disconnecting && this.canAccept()) {
      let frame: RequestFrame | undefined;
      try {
        frame = this.parser.next();
      } catch (err) {
        const why = err instanceof ProtocolError ? err.message : String(err);
        this.log.warn(`protocol error, disconnecting: ${why}`);
        this.socket.destroy();
        // A shutdown waiting for this connection's requests has none more to wait for.
        if (this.inFlight === 0) this.quiesced?.();
        return;
      }
      if (!frame) break;
      this.accept(frame);
    }
    if (this.quiescing) {
      // Served all it will: nothing in flight, and nothing received left — or nothing more to take (a DISC came).
      if (this.quiesced !== undefined && this.inFlight === 0 && (this.disconnecting || !this.parser.hasCompleteRequest())) this.quiesced();
      return;
    }
    if (this.disconnecting) return;
    if (this.canAccept()) {
      this.socket.resume();
      return;
    }
    this.socket.pause();
    if (!this.waitingForBudget && !this.budgetAllows()) {
      this.waitingForBudget = true;
      this.budget.wait(this.onBudgetRoom);
    }
  }

  private accept(frame: RequestFrame): void {
    const { request } = frame;
    if (frame.payload !== undefined && frame.payload === this.assembling) this.assembling = undefined;
    if (request.type === Command.DISC) {
      this.disconnecting = true;
      // Nothing after a DISC is served; the stream is still read so that the client's close is seen.
      this.reader.discardRest();
      void this.whenDrained().then(() => endConnection(this.socket, CLOSE_GRACE_MS, () => this.log.debug('the client did not close after its NBD_CMD_DISC, cutting it off')));
      return;
    }
    if (frame.payloadDiscarded) {
      this.fail(request, Errno.EINVAL, `write of ${request.length} bytes exceeds the maximum block size ${this.limits.maxPayload}`);
      return;
    }
    const verdict = validateRequest(request, this.validation);
    if (!verdict.ok) {
      this.fail(request, verdict.errno, verdict.reason);
      this.releasePayload(frame.payload);
      return;
    }
    const bytes = request.type === Command.READ || request.type === Command.WRITE ? request.length : 0;
    this.inFlight++;
    this.inFlightBytes += bytes;
    this.run(request, frame.payload)
      .catch((err: unknown) => this.failWith(request, err))
      .finally(() => {
        this.releasePayload(frame.payload);
        this.inFlight--;
        this.inFlightBytes -= bytes;
        // Pumped first: drained means nothing in flight and nothing received left to serve.
        this.pump();
        if (this.inFlight === 0) for (const resolve of this.drained.splice(0)) resolve();
      });
  }

  private releasePayload(payload: Buffer | undefined): void {
    if (payload && this.pooledPayloads.delete(payload)) this.releaseBuffer(payload);
  }

  private async run(request: Request, payload: Buffer | undefined): Promise<void> {
    const { cookie, offset, length, flags } = request;
    const fua = (flags & CommandFlag.FUA) !== 0;
    // What the client read before it asked to change data counts as read when the change is placed.
    if (request.type !== Command.READ) settleReadReplies();
    switch (request.type) {
      case Command.READ: {
        if (length === 0) {
          this.replies.data(cookie, offset, Buffer.alloc(0));
          return;
        }
        // Only exports that say where their bytes lie, so reads of the others take no extra await.
        if (this.exp.fileSpan !== undefined && length >= FILE_REPLY_MIN_BYTES && this.replies.sendsFromFiles && (await this.replyFromFile(cookie, offset, length))) {
          this.exp.fileReplySent?.(offset, length);
          return;
        }
        // Held until the reply has left: a client that does not read its replies keeps it.
        const buffer = this.acquireBuffer(length);
        const done = (): void => this.releaseBuffer(buffer);
        try {
          await this.exp.readInto(buffer, offset);
        } catch (err) {
          done();
          throw err;
        }
        this.replies.data(cookie, offset, buffer, done);
        return;
      }
      case Command.WRITE:
        if (length > 0) await this.exp.write(offset, payload ?? Buffer.alloc(0), { fua });
        break;
      case Command.FLUSH:
        await this.exp.flush();
        break;
      case Command.TRIM:
        if (length > 0) await this.exp.trim(offset, length, { fua });
        break;
      case Command.WRITE_ZEROES:
        if (length > 0) {
          await this.exp.writeZeroes(offset, length, {
            fua,
            mayTrim: (flags & CommandFlag.NO_HOLE) === 0,
            fast: (flags & CommandFlag.FAST_ZERO) !== 0,
          });
        }
        break;
      case Command.CACHE:
        if (length > 0) await this.exp.cache(offset, length);
        break;
      case Command.BLOCK_STATUS: {
        // Every context is answered before the first chunk goes out, so a failure is one error reply, not a torn one.
        const found = await Promise.all(this.statusContexts.map((context) => context.status(offset, length)));
        const onlyOne = (flags & CommandFlag.REQ_ONE) !== 0;
        found.forEach((descriptors, i) => {
          const last = i === found.length - 1;
          this.replies.blockStatus(cookie, this.statusContexts[i].id, clipDescriptors(descriptors, length, onlyOne), last);
        });
        return;
      }
    }
    this.replies.ok(cookie);
  }

  /**
   * Sends a READ reply from the page cache where the export says where its
   * bytes lie (BlockExport.fileSpan); false when it went nowhere and must be
   * read into a buffer. When the file could not give all of it without
   * waiting, the rest is read and written before any other reply.
   */
  private async replyFromFile(cookie: bigint, offset: number, length: number): Promise<boolean> {
    const outcome = await this.replies.dataFromFile(cookie, offset, length, () => this.exp.fileSpan?.(offset, length));
    if (outcome.sent === 'none') return false;
    if (outcome.sent === 'all') return true;
    const buffer = this.acquireBuffer(outcome.rest);
    try {
      await this.exp.readInto(buffer, offset + length - outcome.rest);
    } catch (err) {
      this.releaseBuffer(buffer);
      // Part of the reply is on the wire: an error reply cannot follow it.
      this.replies.abandonFileReply();
      throw err;
    }
    this.replies.finishFileReply(buffer, () => this.releaseBuffer(buffer));
    return true;
  }

  private failWith(request: Request, err: unknown): void {
    if (err instanceof NbdError) {
      this.fail(request, err.errno, err.message);
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    const errno = nbdErrnoOf(err);
    this.log.error(`${nameOf(Command, request.type)} ${request.offset}+${request.length} failed (${nameOf(Errno, errno)} to the client): ${message}`);
    this.fail(request, errno, message);
  }

  private fail(request: Request, errno: ErrnoValue, reason: string): void {
    this.log.debug(`${nameOf(Command, request.type)} ${request.offset}+${request.length} -> ${nameOf(Errno, errno)}: ${reason}`);
    this.replies.error(request.cookie, errno, reason);
  }
}

/** Descriptors must not run past the request and must be non-empty (spec, NBD_CMD_BLOCK_STATUS). */
function clipDescriptors(
  found: readonly { length: number; flags: number }[],
  length: number,
  onlyOne: boolean,
): { length: number; flags: number }[] {
  const out: { length: number; flags: number }[] = [];
  let covered = 0;
  for (const d of found) {
    if (covered >= length || d.length <= 0) break;
    const take = Math.min(d.length, length - covered);
    const last = out[out.length - 1];
    if (last && last.flags === d.flags) last.length += take;
    else out.push({ length: take, flags: d.flags });
    covered += take;
    if (onlyOne) break;
  }
  // A descriptor length is 32 bits on the wire; split anything larger.
  const wire: { length: number; flags: number }[] = [];
  const MAX = 0xffffffff - 511;
  for (const d of out) {
    let left = d.length;
    while (left > 0) {
      const take = Math.min(left, MAX);
      wire.push({ length: take, flags: d.flags });
      left -= take;
      if (onlyOne) break;
    }
  }
  if (wire.length === 0) wire.push({ length, flags: 0 });
  return onlyOne ? wire.slice(0, 1) : wire;
}
