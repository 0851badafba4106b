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
}

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
 * chunking. Memory held is bounded by one header plus maxPayload: an
 * oversized payload is skipped as its bytes arrive, so a hostile 4 GiB write
 * costs nothing. After a bad magic the stream is unrecoverable and every
 * later next() throws the same ProtocolError.
 */
export class RequestParser {
  private readonly queue = new ByteQueue();
  private readonly maxPayload: number;
  private readonly extended: boolean;
  private readonly headerLength: number;
  /** A decoded header whose payload has not fully arrived. */
  private awaitingPayload: { request: Request; length: number } | undefined;
  private discardRemaining = 0;
  private failure: ProtocolError | undefined;

  constructor(options: RequestParserOptions) {
    if (!Number.isSafeInteger(options.maxPayload) || options.maxPayload < 0) {
      throw new RangeError(`maxPayload must be a non-negative integer, got ${options.maxPayload}`);
    }
    this.maxPayload = options.maxPayload;
    this.extended = options.extendedHeaders ?? false;
    this.headerLength = requestHeaderLength(this.extended);
  }

  /** Bytes held for frames not yet complete (never includes discarded payload). */
  get buffered(): number {
    return this.queue.length;
  }

  push(chunk: Buffer): void {
    if (this.failure) return;
    this.queue.push(chunk);
    this.discardQueued();
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
      this.awaitingPayload = { request, length };
    }

    const { request, length } = this.awaitingPayload;
    if (this.queue.length < length) return undefined;
    this.awaitingPayload = undefined;
    return { request, payload: this.queue.take(length) };
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
