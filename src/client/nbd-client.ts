import type { Socket } from 'node:net';
import {
  Command,
  CommandFlag,
  Errno,
  NbdError,
  ProtocolError,
  ReplyFlag,
  TransmissionFlag,
  encodeRequest,
  nameOf,
  type BlockSizeConstraints,
  type ChunkHeader,
  type ChunkPayload,
  type ErrnoValue,
} from 'nbd-protocol-ts';
import { negotiate, type HandshakeChannel, type NegotiatedExport } from './client-handshake.js';
import { NbdClientError } from './nbd-client-error.js';
import { parseNbdUri, type NbdTarget } from './nbd-uri.js';
import { openSocket } from './open-socket.js';
import { upgradeToTls } from './client-tls.js';
import { ReadAssembly } from './read-assembly.js';
import { ReplyReceiver, type Landing } from './reply-receiver.js';
import { SocketReader, StreamEndedError } from '../net/socket-reader.js';

export interface NbdClientOptions {
  /** Requests on the wire at once; more wait in order. Default 16. */
  maxInFlight?: number;
  /** Connecting plus the handshake must finish within this. Default 30 s. */
  handshakeTimeoutMs?: number;
  /** Ask for structured replies (server error messages, sparse reads). Default true; false forces simple replies. */
  structuredReplies?: boolean;
}

export interface WriteFlags {
  /** Reply only once the data is durable (NBD_CMD_FLAG_FUA). */
  fua?: boolean;
}

export interface ZeroFlags extends WriteFlags {
  /** Fail with ENOTSUP rather than zero slowly (NBD_CMD_FLAG_FAST_ZERO). */
  fast?: boolean;
  /** The range must stay allocated (NBD_CMD_FLAG_NO_HOLE). */
  noHole?: boolean;
}

/**
 * What the spec tells a client to assume when the server sends no block size
 * constraints: any alignment, and payloads up to 32 MiB.
 */
export const DEFAULT_CLIENT_BLOCK_SIZE: BlockSizeConstraints = { minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 };

const DEFAULT_MAX_IN_FLIGHT = 16;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** After NBD_CMD_DISC the server closes; if it does not, stop waiting. */
const CLOSE_TIMEOUT_MS = 5_000;
/** Non-data structured chunks (errors, NONE) are small; this bounds a broken length field. */
const MAX_CONTROL_CHUNK = 64 * 1024;
/** Reply headers and small frames land here, many per recv; larger payloads land straight in their read's buffer. */
const REPLY_SCRATCH_BYTES = 64 * 1024;
/** Below this much payload still to come, one recv into scratch (taking what follows too) beats a recv of its own. */
const DIRECT_RECV_MINIMUM = 16 * 1024;

interface Pending {
  readonly type: number;
  readonly offset: number;
  readonly length: number;
  readonly flags: number;
  /** What a WRITE sends. */
  readonly payload: Buffer | undefined;
  /** Where a READ's data lands: the caller's memory, or made when the reply comes. */
  readonly into: Buffer | undefined;
  cookie: bigint;
  read: ReadAssembly | undefined;
  error: { errno: number; message: string } | undefined;
  resolve(data: Buffer | undefined): void;
  reject(err: Error): void;
}

/**
 * An NBD client for one export: fixed-newstyle handshake with NBD_OPT_GO,
 * then pipelined requests matched to replies by cookie (replies may come in
 * any order). At most `maxInFlight` requests are on the wire; later ones wait
 * and are sent in the order they were made. A request the server fails
 * rejects with NbdError carrying the server's errno; a broken connection
 * rejects everything with NbdClientError.
 */
export class NbdClient {
  readonly size: number;
  readonly transmissionFlags: number;
  /** Constraints this client honours: the server's, or the spec's defaults when it sent none. */
  readonly blockSize: BlockSizeConstraints;
  readonly blockSizeAdvertised: boolean;
  readonly structuredReplies: boolean;

  private readonly maxInFlight: number;
  private readonly pending = new Map<bigint, Pending>();
  private readonly queued: Pending[] = [];
  private nextCookie = 1n;
  private failure: Error | undefined;
  /** The server broke the protocol: nothing more it sends is parsed. */
  private broken = false;
  private closing: Promise<void> | undefined;
  private readonly drained: Array<() => void> = [];
  private readonly socketClosed: Promise<void>;

  private constructor(
    readonly target: NbdTarget,
    private readonly socket: Socket,
    reader: SocketReader,
    negotiated: NegotiatedExport,
    options: NbdClientOptions,
  ) {
    this.size = negotiated.size;
    this.transmissionFlags = negotiated.transmissionFlags;
    this.blockSize = negotiated.blockSize ?? DEFAULT_CLIENT_BLOCK_SIZE;
    this.blockSizeAdvertised = negotiated.blockSize !== undefined;
    this.structuredReplies = negotiated.structuredReplies;
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.socketClosed = new Promise((resolve) => socket.once('close', () => resolve()));
    const replies = new ReplyReceiver(
      {
        simpleReply: (cookie, errno) => this.simpleReply(cookie, errno),
        chunkHeader: (header) => this.chunkHeader(header),
        dataChunk: (header, offset, length) => this.dataChunk(header, offset, length),
        chunk: (header, payload) => this.chunk(header, payload),
      },
      Buffer.allocUnsafeSlow(REPLY_SCRATCH_BYTES),
      DIRECT_RECV_MINIMUM,
    );
    reader.deliverTo({
      buffer: () => replies.buffer(),
      received: (bytes) => {
        // Bytes after a broken frame mean nothing; the socket is being destroyed.
        if (this.broken) return;
        try {
          replies.received(bytes);
        } catch (err) {
          this.protocolBroken(err);
        }
      },
      ended: (cause) => this.fail(this.closing && this.pending.size === 0 && this.queued.length === 0 ? this.closedError() : this.disconnected(cause)),
    });
  }

  /** Connects to `nbd://HOST[:PORT]/EXPORT` or `nbd+unix:///EXPORT?socket=PATH` and negotiates the export. */
  static async connect(uri: string, options: NbdClientOptions = {}): Promise<NbdClient> {
    const target = parseNbdUri(uri);
    const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`);
    const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;

    let timedOut = false;
    const timeoutError = (): NbdClientError =>
      new NbdClientError('timeout', `the server at ${target.uri} did not finish connecting and the NBD handshake within ${timeoutMs / 1000} s`, 'check that the address is right, the server is not stuck, and no firewall drops the connection');
    const plainReader = new SocketReader();
    const opened = openSocket(target, plainReader.onread, timeoutError);
    plainReader.attach(opened.socket);
    // After STARTTLS the connection goes on over TLS: these follow it.
    let socket: Socket = opened.socket;
    let reader = plainReader;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    const startTls = async (): Promise<HandshakeChannel> => {
      const secure = await upgradeToTls(target, opened.socket);
      reader = new SocketReader();
      reader.attach(secure, 'data');
      socket = secure;
      return { reader, send: (bytes) => secure.write(bytes) };
    };
    try {
      await opened.connected;
      const negotiated = await negotiate(target, { reader, send: (bytes) => socket.write(bytes) }, { structuredReplies: options.structuredReplies ?? true }, startTls);
      return new NbdClient(target, socket, reader, negotiated, { ...options, maxInFlight });
    } catch (err) {
      socket.destroy();
      opened.socket.destroy();
      if (timedOut) throw timeoutError();
      if (err instanceof StreamEndedError) {
        throw new NbdClientError('handshake', `the server at ${target.uri} closed the connection during the NBD handshake (${err.message})`, 'see the server\'s log: it may limit connections, require TLS, or have been stopped', { cause: err });
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get uri(): string {
    return this.target.uri;
  }

  get exportName(): string {
    return this.target.exportName;
  }

  get readOnly(): boolean {
    return this.hasFlag(TransmissionFlag.READ_ONLY);
  }
  get canFlush(): boolean {
    return this.hasFlag(TransmissionFlag.SEND_FLUSH);
  }
  get canFua(): boolean {
    return this.hasFlag(TransmissionFlag.SEND_FUA);
  }
  get canTrim(): boolean {
    return this.hasFlag(TransmissionFlag.SEND_TRIM);
  }
  get canWriteZeroes(): boolean {
    return this.hasFlag(TransmissionFlag.SEND_WRITE_ZEROES);
  }
  get canFastZero(): boolean {
    return this.hasFlag(TransmissionFlag.SEND_FAST_ZERO);
  }
  get canMultiConn(): boolean {
    return this.hasFlag(TransmissionFlag.CAN_MULTI_CONN);
  }

  /** Requests sent and not yet answered. */
  get requestsInFlight(): number {
    return this.pending.size;
  }

  pread(offset: number, length: number): Promise<Buffer> {
    return this.submit(Command.READ, offset, length, 0, undefined, undefined) as Promise<Buffer>;
  }

  /**
   * Reads `into.length` bytes at `offset` straight into `into`, so a caller
   * that reuses its buffers allocates nothing per read. If the read fails,
   * what `into` holds is unspecified.
   */
  async preadInto(into: Buffer, offset: number): Promise<void> {
    await this.submit(Command.READ, offset, into.length, 0, undefined, into);
  }

  async pwrite(offset: number, data: Buffer, flags: WriteFlags = {}): Promise<void> {
    await this.submit(Command.WRITE, offset, data.length, this.fuaFlag(flags), data, undefined);
  }

  async zero(offset: number, length: number, flags: ZeroFlags = {}): Promise<void> {
    if (!this.canWriteZeroes) throw this.unsupported('WRITE_ZEROES');
    if (flags.fast && !this.canFastZero) throw this.unsupported('FAST_ZERO');
    const bits = this.fuaFlag(flags) | (flags.fast ? CommandFlag.FAST_ZERO : 0) | (flags.noHole ? CommandFlag.NO_HOLE : 0);
    await this.submit(Command.WRITE_ZEROES, offset, length, bits, undefined, undefined);
  }

  async trim(offset: number, length: number, flags: WriteFlags = {}): Promise<void> {
    if (!this.canTrim) throw this.unsupported('TRIM');
    await this.submit(Command.TRIM, offset, length, this.fuaFlag(flags), undefined, undefined);
  }

  /** Makes every write answered so far durable. Wait for the writes to be answered before flushing. */
  async flush(): Promise<void> {
    if (!this.canFlush) throw this.unsupported('FLUSH');
    await this.submit(Command.FLUSH, 0, 0, 0, undefined, undefined);
  }

  /**
   * Waits for every request made so far to be answered, sends NBD_CMD_DISC and
   * closes the connection. Requests made after this reject.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.whenIdle();
      if (!this.failure && !this.socket.destroyed) {
        this.socket.end(encodeRequest({ flags: 0, type: Command.DISC, cookie: 0n, offset: 0, length: 0 }));
      }
      const timer = setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS);
      await this.socketClosed;
      clearTimeout(timer);
    })();
    return this.closing;
  }

  /** Drops the connection at once; requests in flight reject. */
  destroy(): void {
    this.fail(this.closedError());
    this.socket.destroy();
  }

  private hasFlag(flag: number): boolean {
    return (this.transmissionFlags & flag) !== 0;
  }

  private fuaFlag(flags: WriteFlags): number {
    if (!flags.fua) return 0;
    if (!this.canFua) throw this.unsupported('FUA');
    return CommandFlag.FUA;
  }

  private unsupported(what: string): NbdClientError {
    return new NbdClientError('unsupported', `the export at ${this.uri} does not support ${what}`, `do without ${what} on this export, or use a server that offers it`);
  }

  private submit(type: number, offset: number, length: number, flags: number, payload: Buffer | undefined, into: Buffer | undefined): Promise<Buffer | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(this.closedError());
    try {
      this.checkRequest(type, offset, length);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const request: Pending = { type, offset, length, flags, payload, into, cookie: 0n, read: undefined, error: undefined, resolve, reject };
      if (this.pending.size < this.maxInFlight && this.queued.length === 0) this.transmit(request);
      else this.queued.push(request);
    });
  }

  /** The spec's rules for what a client may send; breaking them is a bug in the caller, so it is a RangeError. */
  private checkRequest(type: number, offset: number, length: number): void {
    // A function, so the message is only built for a request that is refused.
    const what = (): string => `${describeRequest(type, offset, length)} on ${this.uri}`;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`${what()}: offset and length must be non-negative integers`);
    }
    if (type === Command.FLUSH) return;
    if (offset + length > this.size) throw new RangeError(`${what()}: past the end of the export (${this.size} bytes)`);
    if ((type === Command.READ || type === Command.WRITE) && length > this.blockSize.maximum) {
      throw new RangeError(`${what()}: more than the export's maximum payload of ${this.blockSize.maximum} bytes`);
    }
    if (length > 0xffffffff) throw new RangeError(`${what()}: longer than one request can say (4 GiB - 1)`);
    const min = this.blockSize.minimum;
    const endsAtExportEnd = offset + length === this.size;
    if (offset % min !== 0 || (length % min !== 0 && !endsAtExportEnd)) {
      throw new RangeError(`${what()}: not aligned to the export's minimum block size of ${min} bytes`);
    }
    if (this.readOnly && type !== Command.READ) {
      throw new NbdError(Errno.EPERM, `${what()} failed: the export is read-only`);
    }
  }

  private transmit(request: Pending): void {
    request.cookie = this.nextCookie++;
    if (request.type === Command.READ) {
      request.read = this.structuredReplies ? new ReadAssembly(request.offset, request.length, request.into) : undefined;
    }
    this.pending.set(request.cookie, request);
    const header = encodeRequest({ flags: request.flags, type: request.type, cookie: request.cookie, offset: request.offset, length: request.length });
    if (request.payload) {
      // Header and payload leave in one writev; the payload is not copied.
      this.socket.cork();
      this.socket.write(header);
      this.socket.write(request.payload);
      process.nextTick(() => this.socket.uncork());
    } else {
      // Not corked to batch with later requests: measured, that saves syscalls for small
      // reads but shifts when result buffers are freed, and with glibc's heap trimming
      // every 1 MiB pread() then faults in fresh pages (2x the CPU).
      this.socket.write(header);
    }
  }

  private protocolBroken(err: unknown): void {
    this.broken = true;
    const why = err instanceof Error ? err.message : String(err);
    this.fail(new NbdClientError('protocol', `the server at ${this.uri} broke the NBD protocol (${why}); disconnected`, 'this is a bug in the server; report it with the server\'s log', { cause: err }));
    this.socket.destroy();
  }

  private closedError(): NbdClientError {
    return new NbdClientError('closed', `the connection to ${this.uri} is closed`, 'make every request before closing the client');
  }

  private disconnected(cause: Error): NbdClientError {
    const inFlight = [...this.pending.values()];
    const last = inFlight[inFlight.length - 1];
    const detail = last ? ` with ${inFlight.length + this.queued.length} requests unanswered (e.g. ${describeRequest(last.type, last.offset, last.length)})` : '';
    return new NbdClientError(
      'disconnected',
      `the connection to ${this.uri} closed${detail}`,
      'see the server\'s log: it may have been stopped or have crashed; run the command again once it is back',
      { cause },
    );
  }

  private simpleReply(cookie: bigint, errno: number): Landing | undefined {
    const request = this.inFlight(cookie);
    if (errno !== 0) {
      this.take(cookie);
      this.settle(request, { errno, message: '' });
      return undefined;
    }
    if (request.type !== Command.READ) {
      this.take(cookie);
      request.resolve(undefined);
      return undefined;
    }
    if (this.structuredReplies) throw new ProtocolError('a simple reply with data to a READ after structured replies were negotiated');
    // Taken only once its data is in, so a connection lost meanwhile still fails it.
    const data = request.into ?? Buffer.allocUnsafe(request.length);
    return {
      into: data,
      done: () => {
        this.take(cookie);
        request.resolve(data);
      },
    };
  }

  private chunkHeader(header: ChunkHeader): void {
    const request = this.pending.get(header.cookie);
    if (!request) throw new ProtocolError(`a reply chunk for cookie ${header.cookie}, which no request in flight has`);
    const limit = request.type === Command.READ ? Math.max(request.length + 8, MAX_CONTROL_CHUNK) : MAX_CONTROL_CHUNK;
    if (header.length > limit) throw new ProtocolError(`a ${header.length}-byte reply chunk for ${describeRequest(request.type, request.offset, request.length)}`);
  }

  private dataChunk(header: ChunkHeader, offset: number, length: number): Landing {
    const request = this.inFlight(header.cookie);
    if (!request.read) throw new ProtocolError(`a content chunk in the reply to ${nameOf(Command, request.type)}`);
    return { into: request.read.receive(offset, length), done: () => this.chunkEnd(header, request) };
  }

  private chunk(header: ChunkHeader, chunk: ChunkPayload): void {
    const request = this.inFlight(header.cookie);
    switch (chunk.kind) {
      case 'none':
        if ((header.flags & ReplyFlag.DONE) === 0) throw new ProtocolError('a NONE chunk without the DONE flag');
        break;
      case 'data':
      case 'hole':
        if (!request.read) throw new ProtocolError(`a content chunk in the reply to ${nameOf(Command, request.type)}`);
        // The receiver lands OFFSET_DATA in place through dataChunk(); a decoded one is still put where it belongs.
        if (chunk.kind === 'data') chunk.data.copy(request.read.receive(chunk.offset, chunk.data.length));
        else request.read.hole(chunk.offset, chunk.length);
        break;
      case 'error':
        request.error ??= { errno: chunk.errno, message: chunk.message };
        break;
      case 'unknown':
        // Unknown error types still mean the request failed (spec); anything else is unintelligible.
        if (!chunk.isError) throw new ProtocolError(`an unknown reply chunk type ${chunk.type}`);
        request.error ??= { errno: chunk.payload.length >= 4 ? chunk.payload.readUInt32BE(0) : Errno.EIO, message: '' };
        break;
      case 'block-status':
        throw new ProtocolError('a BLOCK_STATUS chunk, which this client never asks for');
    }
    this.chunkEnd(header, request);
  }

  private chunkEnd(header: ChunkHeader, request: Pending): void {
    if ((header.flags & ReplyFlag.DONE) === 0) return;
    if (request.error) {
      this.take(header.cookie);
      this.settle(request, request.error);
      return;
    }
    // Before take(): a read with bytes missing throws, and must still be in flight to be failed.
    const data = request.read?.finish();
    this.take(header.cookie);
    request.resolve(data);
  }

  private inFlight(cookie: bigint): Pending {
    const request = this.pending.get(cookie);
    if (!request) throw new ProtocolError(`a reply for cookie ${cookie}, which no request in flight has`);
    return request;
  }

  /** Removes an answered request and lets a waiting one onto the wire. */
  private take(cookie: bigint): Pending {
    const request = this.inFlight(cookie);
    this.pending.delete(cookie);
    const next = this.queued.shift();
    if (next) this.transmit(next);
    if (this.pending.size === 0) for (const resolve of this.drained.splice(0)) resolve();
    return request;
  }

  private settle(request: Pending, error: { errno: number; message: string }): void {
    const known = (Object.values(Errno) as number[]).includes(error.errno);
    const errno = (known ? error.errno : Errno.EIO) as ErrnoValue;
    const name = known ? nameOf(Errno, errno) : `error ${error.errno} (not one the NBD spec defines; treated as EIO)`;
    const said = error.message ? `: ${error.message}` : '';
    request.reject(new NbdError(errno, `${describeRequest(request.type, request.offset, request.length)} on ${this.uri} failed with ${name}${said}`));
  }

  private whenIdle(): Promise<void> {
    if (this.pending.size === 0 && this.queued.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  /** The connection is unusable: every request, sent or waiting, rejects with `err`. */
  private fail(err: Error): void {
    this.failure ??= err;
    const all = [...this.pending.values(), ...this.queued];
    this.pending.clear();
    this.queued.length = 0;
    for (const request of all) request.reject(this.failure);
    for (const resolve of this.drained.splice(0)) resolve();
  }
}

/** "WRITE of 4096 bytes at offset 8192" — how requests are named in every message. */
export function describeRequest(type: number, offset: number, length: number): string {
  const name = nameOf(Command, type);
  if (type === Command.FLUSH) return name;
  return `${name} of ${length} bytes at offset ${offset}`;
}
