import { ProtocolError } from 'nbd-protocol-ts';

/**
 * Puts one READ back together from structured reply chunks (OFFSET_DATA and
 * OFFSET_HOLE), which may come in any order, in one buffer that data
 * chunks are received into directly. The spec forbids chunks outside the
 * request and chunks that overlap; a successful reply must cover every byte.
 * A server that breaks this gets a ProtocolError, never a buffer with bytes
 * nobody sent.
 */
export class ReadAssembly {
  /** Covered ranges [start, end) relative to the request, sorted and disjoint. */
  private readonly covered: Array<[number, number]> = [];
  private coveredBytes = 0;

  constructor(
    readonly offset: number,
    readonly length: number,
    /** The caller's memory for the result; made at the first chunk when undefined. */
    private buffer: Buffer | undefined,
  ) {
    if (buffer && buffer.length !== length) throw new RangeError(`a ${length}-byte read cannot land in a ${buffer.length}-byte buffer`);
  }

  /**
   * Claims an OFFSET_DATA chunk's range before its data arrives and returns
   * the memory the data is to be received into, so it is never copied.
   */
  receive(offset: number, length: number): Buffer {
    const start = this.claim(offset, length, 'data');
    return this.target().subarray(start, start + length);
  }

  hole(offset: number, length: number): void {
    const start = this.claim(offset, length, 'hole');
    this.target().fill(0, start, start + length);
  }

  /** The assembled bytes; only when every byte arrived. */
  finish(): Buffer {
    if (this.coveredBytes !== this.length) {
      throw new ProtocolError(`the server reported success for a ${this.length}-byte read at ${this.offset} but sent only ${this.coveredBytes} bytes`);
    }
    return this.buffer ?? Buffer.alloc(0);
  }

  private target(): Buffer {
    // Every byte is written by a chunk before finish() lets the buffer out, so it need not be zeroed.
    this.buffer ??= Buffer.allocUnsafe(this.length);
    return this.buffer;
  }

  /** Records [offset, offset+length) as covered; returns its start relative to the request. */
  private claim(offset: number, length: number, what: string): number {
    const start = offset - this.offset;
    const end = start + length;
    if (length < 1 || start < 0 || end > this.length) {
      throw new ProtocolError(`a ${what} chunk at ${offset}+${length} lies outside the read at ${this.offset}+${this.length}`);
    }
    // Binary search for the first covered range ending after `start`.
    let lo = 0;
    let hi = this.covered.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.covered[mid][1] <= start) lo = mid + 1;
      else hi = mid;
    }
    const next = this.covered[lo];
    if (next && next[0] < end) {
      throw new ProtocolError(`a ${what} chunk at ${offset}+${length} overlaps an earlier chunk of the read at ${this.offset}+${this.length}`);
    }
    this.covered.splice(lo, 0, [start, end]);
    this.coveredBytes += length;
    return start;
  }
}
