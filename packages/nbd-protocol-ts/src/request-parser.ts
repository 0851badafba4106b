import { Command, CommandFlag, EXTENDED_REQUEST_MAGIC, REQUEST_MAGIC } from './constants.js';
import { ByteQueue } from './byte-queue.js';
import { ProtocolError } from './protocol-errors.js';
import { decodeRequest, requestHeaderLength } from './request-codec.js';
import type { Request } from './types.js';

export interface RequestParserOptions {
  /** Largest payload (WRITE data) that is buffered; a longer one is dropped as it arrives. */
  maxPayload: number;
  /** The client negotiated NBD_OPT_EXTENDED_HEADERS: every request has the 32-byte header. */
  extendedHeaders?: boolean;
  /** Size of the memory receiveBuffer() offers for headers and small payloads. Default 16 KiB. */
  scratchBytes?: number;
  /**
   * Memory for a payload that did not arrive whole in one chunk (Buffer.allocUnsafe by default):
   * a server may hand out reused buffers, and take them back once the request is done.
   */
  allocatePayload?: (length: number) => Buffer;
}

/**
 * A payload with at least this much still to come is received straight into
 * its own buffer; less is cheaper to receive into scratch together with the
 * requests that follow it (one recv for many small writes) and copy out.
 */
const DIRECT_MINIMUM = 16 * 1024;
const DEFAULT_SCRATCH_BYTES = 16 * 1024;

export interface RequestFrame {
  request: Request;
  /** The request's payload: always present for WRITE (empty when length is 0), absent for commands without one. */
  payload?: Buffer;
  /**
   * The payload was longer than maxPayload and is being thrown away unread;
   * the server must fail the request (EINVAL/EOVERFLOW), the stream stays in sync.
   */
  payloadDiscarded?: true;
}

const EMPTY = Buffer.alloc(0);

/**
 * Turns the transmission-phase byte stream into request frames, whatever the
 * chunking. Bytes come in two ways: push() of chunks someone else received,
 * or receiveBuffer()/received() for a reader that lets us choose the memory
 * of each recv (Node's `onread`), so that a large WRITE payload is received
 * in place, never gathered from chunks. Memory held is bounded by one header
 * plus maxPayload: an oversized payload is skipped as its bytes arrive, so a
 * hostile 4 GiB write costs nothing. After a bad magic the stream is
 * unrecoverable and every later next() throws the same ProtocolError.
 */
export class RequestParser {
  /** Received bytes not yet framed (headers, and payload bytes that came with them). */
  private readonly queue = new ByteQueue();
  private readonly maxPayload: number;
  private readonly extended: boolean;
  private readonly headerLength: number;
  private readonly scratchBytes: number;
  private readonly allocatePayload: (length: number) => Buffer;
  private scratch: Buffer | undefined;
  /** What receiveBuffer() last handed out: scratch, or the rest of this payload. */
  private issued: 'scratch' | { payload: Buffer; filled: number } | undefined;
  /** A decoded header whose payload has not fully arrived, and the payload's own buffer, filled from the front. */
  private awaitingPayload: { request: Request; payload: Buffer; filled: number } | undefined;
  private discardRemaining = 0;
  private failure: ProtocolError | undefined;

  constructor(options: RequestParserOptions) {
    if (!Number.isSafeInteger(options.maxPayload) || options.maxPayload < 0) {
      throw new RangeError(`maxPayload must be a non-negative integer, got ${options.maxPayload}`);
    }
    this.maxPayload = options.maxPayload;
    this.extended = options.extendedHeaders ?? false;
    this.headerLength = requestHeaderLength(this.extended);
    this.scratchBytes = options.scratchBytes ?? DEFAULT_SCRATCH_BYTES;
    this.allocatePayload = options.allocatePayload ?? ((length) => Buffer.allocUnsafe(length));
    if (!Number.isSafeInteger(this.scratchBytes) || this.scratchBytes < 1) {
      throw new RangeError(`scratchBytes must be a positive integer, got ${options.scratchBytes}`);
    }
  }

  /** Bytes held for frames not yet complete (never includes discarded payload). */
  get buffered(): number {
    return this.queue.length + (this.awaitingPayload?.filled ?? 0);
  }

  /** A chunk of the stream; the parser may keep it (zero copy), so its memory must not be reused. */
  push(chunk: Buffer): void {
    if (this.failure) return;
    this.queue.push(chunk);
    this.discardQueued();
  }

  /**
   * Where the next bytes of the stream should be received: the rest of the
   * payload being assembled when enough of it is still to come, else scratch
   * memory that received() copies from. Never empty. Report what landed with
   * received() before asking again.
   */
  receiveBuffer(): Buffer {
    const awaiting = this.awaitingPayload;
    if (awaiting && this.queue.length === 0 && awaiting.payload.length - awaiting.filled >= DIRECT_MINIMUM) {
      this.issued = awaiting;
      return awaiting.payload.subarray(awaiting.filled);
    }
    this.issued = 'scratch';
    this.scratch ??= Buffer.allocUnsafeSlow(this.scratchBytes);
    return this.scratch;
  }

  /** `bytes` of the stream landed at the start of the buffer receiveBuffer() last returned. */
  received(bytes: number): void {
    const issued = this.issued;
    this.issued = undefined;
    if (issued === undefined) throw new Error('RequestParser.received() without a receiveBuffer() before it');
    if (bytes === 0 || this.failure) return;
    if (issued !== 'scratch') {
      issued.filled += bytes;
      return;
    }
    const awaiting = this.awaitingPayload;
    let landed = (this.scratch as Buffer).subarray(0, bytes);
    if (awaiting && this.queue.length === 0) {
      // The tail of a payload: straight into it, one copy.
      const n = landed.copy(awaiting.payload, awaiting.filled);
      awaiting.filled += n;
      landed = landed.subarray(n);
    }
    // Scratch is overwritten by the next recv: what is kept must be a copy.
    if (landed.length > 0) this.push(Buffer.from(landed));
  }

  /**
   * The header next() would decode next, without taking it: for a server
   * that decides from a request's size whether to take it now (memory). Only
   * when the whole header has arrived and no payload is being assembled or
   * skipped; a header with a bad magic is left for next() to reject.
   */
  peekRequest(): Request | undefined {
    if (this.failure || this.awaitingPayload || this.discardRemaining > 0) return undefined;
    if (this.queue.length < this.headerLength) return undefined;
    const header = this.queue.peek(this.headerLength);
    if (header.readUInt32BE(0) !== (this.extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC)) return undefined;
    return decodeRequest(header);
  }

  /**
   * Whether next() has a frame to return now (or an error to throw): a
   * request whose header and payload have both arrived. For a server that
   * stops receiving and serves what it has (shutdown).
   */
  hasCompleteRequest(): boolean {
    if (this.failure) return true;
    if (this.awaitingPayload) return this.awaitingPayload.filled + this.queue.length >= this.awaitingPayload.payload.length;
    const skipped = Math.min(this.discardRemaining, this.queue.length);
    if (this.discardRemaining > skipped) return false;
    const available = this.queue.length - skipped;
    if (available < this.headerLength) return false;
    const header = this.queue.peek(skipped + this.headerLength).subarray(skipped);
    if (header.readUInt32BE(0) !== (this.extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC)) return true;
    const length = this.payloadLength(decodeRequest(header));
    return length === 0 || length > this.maxPayload || available >= this.headerLength + length;
  }

  next(): RequestFrame | undefined {
    if (this.failure) throw this.failure;
    this.discardQueued();
    if (this.discardRemaining > 0) return undefined;

    if (!this.awaitingPayload) {
      if (this.queue.length < 4) return undefined;
      this.checkMagic(this.queue.peek(4).readUInt32BE(0));
      if (this.queue.length < this.headerLength) return undefined;
      const request = decodeRequest(this.queue.take(this.headerLength));
      const length = this.payloadLength(request);
      if (length === 0) return request.type === Command.WRITE ? { request, payload: EMPTY } : { request };
      if (length > this.maxPayload) {
        this.discardRemaining = length;
        this.discardQueued();
        return { request, payloadDiscarded: true };
      }
      if (this.queue.length >= length) return { request, payload: this.queue.take(length) };
      this.awaitingPayload = { request, payload: this.allocatePayload(length), filled: 0 };
    }

    const awaiting = this.awaitingPayload;
    awaiting.filled += this.queue.takeInto(awaiting.payload, awaiting.filled);
    if (awaiting.filled < awaiting.payload.length) return undefined;
    this.awaitingPayload = undefined;
    return { request: awaiting.request, payload: awaiting.payload };
  }

  /**
   * WRITE always carries `length` bytes. With extended headers any request
   * flagged PAYLOAD_LEN (BLOCK_STATUS with a context filter) carries `length`
   * bytes too; honouring the flag on every command keeps the framing in sync
   * even when the command itself is then refused.
   */
  private payloadLength(request: Request): number {
    if (request.type === Command.WRITE) return request.length;
    if (this.extended && (request.flags & CommandFlag.PAYLOAD_LEN) !== 0) return request.length;
    return 0;
  }

  private checkMagic(magic: number): void {
    const expected = this.extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC;
    if (magic === expected) return;
    const hint =
      magic === EXTENDED_REQUEST_MAGIC
        ? ' (an extended header, but extended headers were not negotiated)'
        : magic === REQUEST_MAGIC
          ? ' (a compact header, but extended headers were negotiated)'
          : '';
    this.failure = new ProtocolError(`bad request magic 0x${magic.toString(16).padStart(8, '0')}${hint}`);
    throw this.failure;
  }

  private discardQueued(): void {
    if (this.discardRemaining === 0) return;
    const n = Math.min(this.discardRemaining, this.queue.length);
    this.queue.skip(n);
    this.discardRemaining -= n;
  }
}
