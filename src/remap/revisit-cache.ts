import { LRUCache } from 'lru-cache';
import { RunMap } from './run-map.js';

/**
 * Originals of disk blocks that have been overwritten, for source reads that
 * come back to them (G2). Filled when an original is about to be destroyed,
 * so what it holds is exactly the originals that are gone. Bounded in bytes;
 * a zero size disables it (every revisit of a destroyed block is a miss).
 *
 * An entry is one captured chunk of consecutive blocks (the capture reads
 * them in one go), so filling costs one LRU entry per chunk rather than a
 * copy and an entry per block. Chunks never overlap: a block is destroyed once.
 */
export class RevisitCache {
  private readonly lru: LRUCache<number, Buffer> | undefined;
  /** Disk block → first block of the chunk that holds it. */
  private readonly index = new RunMap(false);
  /**
   * Evicted chunk buffers, reused by the next captures (a migration would
   * otherwise allocate, and collect, every byte it overwrites). An evicted
   * buffer may still be in a pending callback that copies out of it, so it
   * becomes reusable only after the next turn of the event loop.
   */
  private spare: Buffer[] = [];
  private quarantine: Buffer[] = [];
  private releaseScheduled = false;
  hits = 0;
  misses = 0;

  constructor(
    readonly maxBytes: number,
    private readonly blockSize: number,
  ) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`invalid revisit cache size ${maxBytes}`);
    this.lru =
      maxBytes > 0
        ? new LRUCache<number, Buffer>({
            maxSize: maxBytes,
            sizeCalculation: (chunk) => Math.max(1, chunk.length),
            dispose: (chunk, start) => {
              this.index.remove(start, start + Math.ceil(chunk.length / this.blockSize));
              this.recycle(chunk);
            },
          })
        : undefined;
  }

  get enabled(): boolean {
    return this.lru !== undefined;
  }

  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  get entries(): number {
    return this.lru?.size ?? 0;
  }

  /** A buffer for a capture of `length` bytes: a recycled one when there is one of that size. */
  buffer(length: number): Buffer {
    const last = this.spare[this.spare.length - 1];
    if (last !== undefined && last.length === length) return this.spare.pop() as Buffer;
    return Buffer.allocUnsafeSlow(length);
  }

  private recycle(chunk: Buffer): void {
    // Keep no more spares than the cache could hold: they replace entries one for one.
    if (this.spare.length + this.quarantine.length >= 64) return;
    this.quarantine.push(chunk);
    if (this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() => {
      this.releaseScheduled = false;
      this.spare.push(...this.quarantine);
      this.quarantine = [];
    });
  }

  /** Keeps `originals`: the bytes of consecutive blocks from `start` (the buffer is kept, not copied). */
  put(start: number, originals: Buffer): void {
    if (this.lru === undefined || originals.length > this.maxBytes) return;
    this.lru.set(start, originals);
    // Index after set: a chunk too big for the cache is disposed at once.
    if (this.lru.has(start)) this.index.assign(start, start + Math.ceil(originals.length / this.blockSize), start);
  }

  /** Copies the original bytes [from, to) of `block` into `target` at `at`; false (and a miss counted) when it is gone. */
  copyOut(block: number, from: number, to: number, target: Buffer, at: number): boolean {
    const start = this.index.valueAt(block);
    const chunk = start === undefined ? undefined : this.lru?.get(start);
    if (start === undefined || chunk === undefined) {
      this.misses++;
      return false;
    }
    this.hits++;
    const offset = (block - start) * this.blockSize;
    chunk.copy(target, at, offset + from, offset + to);
    return true;
  }
}
