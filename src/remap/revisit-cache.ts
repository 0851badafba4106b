import { LRUCache } from 'lru-cache';
import { reserveInTurns, touchedBuffer } from './reserved-memory.js';
import { RunMap } from './run-map.js';

/** About the most one capture reads into one buffer (whole blocks: see chunkBlocks), so the size of one entry at most. */
const CHUNK_BYTES = 64 * 1024;
/** Spares kept beyond maxBytes at most, in chunks (see recycle). */
const SPARE_SLACK_CHUNKS = 64;

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
   * Buffers for the next captures, by length: taken up front (reserve) and
   * recycled from evicted entries, since a migration would otherwise allocate,
   * and collect, every byte it overwrites. Entries and spares together stay
   * within maxBytes plus SPARE_SLACK_CHUNKS chunks. An evicted buffer may
   * still be in a pending callback that copies out of it, so it becomes a
   * spare only after the next turn of the event loop.
   */
  private readonly spares = new Map<number, Buffer[]>();
  private spareBytes = 0;
  private quarantine: Buffer[] = [];
  /**
   * Buffers handed to captures that are still registered (CaptureRegistry):
   * a source read may copy out of one until its capture is removed, after the
   * destroying write, however long that write takes — so an evicted one is
   * recycled only when unpinned. The value says whether it was evicted meanwhile.
   */
  private readonly pinned = new Map<Buffer, boolean>();
  private releaseScheduled = false;
  /** Given up for good (release): nothing is kept or taken any more. */
  private released = false;
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

  /** Captured chunks held (one LRU entry each). */
  get entries(): number {
    return this.lru?.size ?? 0;
  }

  /** Disk blocks whose originals are held: what a revisit can be served from. */
  get originals(): number {
    return this.index.size;
  }

  /** Blocks one capture reads into one buffer at most: one entry each. */
  get chunkBlocks(): number {
    return Math.max(1, Math.floor(CHUNK_BYTES / this.blockSize));
  }

  /** Bytes of spare buffers: memory the cache owns but does not fill yet. */
  get spareBufferBytes(): number {
    return this.spareBytes;
  }

  /**
   * Takes the cache's memory now (see reserved-memory.ts): spare buffers of
   * a whole chunk (chunkBlocks), touched, until entries and spares fill
   * maxBytes. Returns the bytes taken.
   */
  reserve(): Promise<number> {
    const bytes = this.chunkBlocks * this.blockSize;
    return reserveInTurns(() => {
      if (this.lru === undefined || this.released || this.bytes + this.spareBytes + bytes > this.maxBytes) return 0;
      this.keepSpare(touchedBuffer(bytes));
      return bytes;
    });
  }

  /**
   * A buffer for a capture of `length` bytes: a spare one when there is one of
   * that size. It stays pinned, never reused for another capture, until the
   * capture gives it back with unpin().
   */
  buffer(length: number): Buffer {
    let buffer = this.spares.get(length)?.pop();
    if (buffer === undefined) buffer = Buffer.allocUnsafeSlow(length);
    else this.spareBytes -= length;
    this.pinned.set(buffer, false);
    return buffer;
  }

  /** The capture that took `buffer` is over: no source read copies out of it any more through that capture. */
  unpin(buffer: Buffer): void {
    const evicted = this.pinned.get(buffer);
    this.pinned.delete(buffer);
    if (evicted === true) this.recycle(buffer);
  }

  private keepSpare(buffer: Buffer): void {
    const list = this.spares.get(buffer.length);
    if (list === undefined) this.spares.set(buffer.length, [buffer]);
    else list.push(buffer);
    this.spareBytes += buffer.length;
  }

  private recycle(chunk: Buffer): void {
    if (this.released) return;
    if (this.pinned.has(chunk)) {
      this.pinned.set(chunk, true);
      return;
    }
    this.quarantine.push(chunk);
    if (this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() => {
      this.releaseScheduled = false;
      // Entries and spares stay within maxBytes, except for a few chunks: a capture takes its buffer before
      // its entry evicts another, so a full cache would otherwise allocate every buffer and drop every evicted one.
      const room = Math.max(this.maxBytes - this.bytes, Math.min(this.maxBytes, SPARE_SLACK_CHUNKS * this.chunkBlocks * this.blockSize));
      for (const buffer of this.quarantine) if (this.spareBytes + buffer.length <= room) this.keepSpare(buffer);
      this.quarantine = [];
    });
  }

  /** Keeps `originals`: the bytes of consecutive blocks from `start` (the buffer is kept, not copied). */
  put(start: number, originals: Buffer): void {
    if (this.lru === undefined || this.released || originals.length > this.maxBytes) return;
    this.lru.set(start, originals);
    // Index after set: a chunk too big for the cache is disposed at once.
    if (this.lru.has(start)) this.index.assign(start, start + Math.ceil(originals.length / this.blockSize), start);
  }

  /**
   * Drops every original and spare buffer for good, so their memory goes
   * back: for when no source read can come any more (after finish).
   */
  release(): void {
    this.released = true;
    this.lru?.clear();
    this.spares.clear();
    this.spareBytes = 0;
    this.quarantine = [];
    this.pinned.clear();
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
