const EMPTY = Buffer.alloc(0);

/** Compact the chunk list once this many consumed slots have piled up at its front. */
const COMPACT_AFTER = 64;

/**
 * Bytes received from a stream, kept as the chunks they arrived in. Reading
 * n bytes that lie inside one chunk is a zero-copy subarray; reading across
 * chunks copies exactly the n bytes once. Nothing is ever re-concatenated as
 * more data arrives, so framing a stream costs O(bytes), not O(bytes²).
 *
 * Returned buffers may share memory with pushed chunks: a pusher must not
 * reuse a chunk's memory after pushing it (socket 'data' chunks are fresh).
 */
export class ByteQueue {
  private chunks: (Buffer | undefined)[] = [];
  private head = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The first n bytes, left in the queue. */
  peek(n: number): Buffer {
    return this.gather(n);
  }

  /** Removes and returns the first n bytes. */
  take(n: number): Buffer {
    const out = this.gather(n);
    this.drop(n);
    return out;
  }

  /** Moves as many of the first bytes as fit into target[at…]; returns how many. */
  takeInto(target: Buffer, at: number): number {
    const n = Math.min(this.size, target.length - at);
    this.copyFront(target, at, n);
    if (n > 0) this.drop(n);
    return n;
  }

  /** Removes the first n bytes without looking at them. */
  skip(n: number): void {
    this.check(n);
    this.drop(n);
  }

  /** Removes and returns everything queued. */
  takeAll(): Buffer {
    return this.take(this.size);
  }

  private check(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.size) {
      throw new RangeError(`cannot read ${n} bytes from a queue holding ${this.size}`);
    }
  }

  private gather(n: number): Buffer {
    this.check(n);
    if (n === 0) return EMPTY;
    const first = this.chunks[this.head] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    this.copyFront(out, 0, n);
    return out;
  }

  /** Copies the first n queued bytes (n ≤ length) to target[at…], leaving them queued. */
  private copyFront(target: Buffer, at: number, n: number): void {
    let copied = 0;
    for (let i = this.head; copied < n; i++) {
      const chunk = this.chunks[i] as Buffer;
      copied += chunk.copy(target, at + copied, 0, Math.min(chunk.length, n - copied));
    }
  }

  private drop(n: number): void {
    this.size -= n;
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[this.head] as Buffer;
      if (chunk.length <= left) {
        left -= chunk.length;
        this.chunks[this.head] = undefined;
        this.head++;
      } else {
        this.chunks[this.head] = chunk.subarray(left);
        left = 0;
      }
    }
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
