import type { BlockDevice } from '../../../../src/remap/block-device.js';

/** A small deterministic PRNG (mulberry32), so a failing fast-check seed replays the same interleaving. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes from a seed (cheap, reproducible test data). */
export function patternBytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  const next = prng(seed);
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/**
 * A disk in memory, instrumented for the model tests: every write passes
 * `writeGate` first (the G1 and slot-reuse checks; it throws to fail the
 * operation and records the violation), every I/O calls `onIo` (the G4
 * check), and each block counts its completed writes (`generation`) and the
 * generation the last sync made durable (`syncedGeneration`). With a `random`
 * source, each I/O yields a random number of event-loop turns before it
 * takes effect, so concurrent operations interleave differently per seed.
 * A write takes effect atomically at one instant, like a sector on a real disk.
 */
export class MemoryDevice implements BlockDevice {
  readonly bytes: Buffer;
  private readonly generations = new Map<number, number>();
  private readonly synced = new Map<number, number>();
  /** Blocks that are holes, as in a sparse image: zeroes, reported as such until written. */
  private readonly holeBlocks = new Set<number>();
  writeGate: ((offset: number, length: number) => void) | undefined;
  onIo: (() => void) | undefined;
  writes = 0;
  syncs = 0;

  constructor(
    readonly size: number,
    private readonly blockSize: number,
    private readonly random?: () => number,
  ) {
    this.bytes = Buffer.alloc(size);
  }

  async readInto(buffer: Buffer, offset: number): Promise<void> {
    this.checkRange(offset, buffer.length);
    await this.yieldSome();
    this.onIo?.();
    this.bytes.copy(buffer, 0, offset, offset + buffer.length);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.checkRange(offset, data.length);
    await this.yieldSome();
    this.onIo?.();
    this.writeGate?.(offset, data.length);
    data.copy(this.bytes, offset);
    this.writes++;
    for (let b = Math.floor(offset / this.blockSize); b * this.blockSize < offset + data.length; b++) this.holeBlocks.delete(b);
    for (let b = Math.floor(offset / this.blockSize); b * this.blockSize < offset + data.length; b++) this.generations.set(b, this.generation(b) + 1);
  }

  /** One write of several buffers back to back (like pwritev); the model tests switch it off for half the runs. */
  writev: ((offset: number, buffers: readonly Buffer[]) => Promise<void>) | undefined = (offset, buffers) => this.write(offset, Buffer.concat(buffers));

  /** Makes blocks holes: zeroes, which `allocation` reports as a hole until a write touches them. */
  punchHoles(blocks: Iterable<number>): void {
    for (const b of blocks) {
      this.bytes.fill(0, b * this.blockSize, Math.min(this.size, (b + 1) * this.blockSize));
      this.holeBlocks.add(b);
    }
  }

  isHole(b: number): boolean {
    return this.holeBlocks.has(b);
  }

  /** The hole map, as a file's SEEK_HOLE/SEEK_DATA would give it. */
  async allocation(offset: number, length: number): Promise<Array<{ offset: number; length: number; data: boolean }>> {
    this.checkRange(offset, length);
    await this.yieldSome();
    const out: Array<{ offset: number; length: number; data: boolean }> = [];
    for (let at = offset; at < offset + length; ) {
      const b = Math.floor(at / this.blockSize);
      const to = Math.min(offset + length, (b + 1) * this.blockSize);
      const data = !this.holeBlocks.has(b);
      const last = out[out.length - 1];
      if (last !== undefined && last.data === data) last.length += to - at;
      else out.push({ offset: at, length: to - at, data });
      at = to;
    }
    return out;
  }

  /** A sync makes durable the writes completed when it was called. */
  async sync(): Promise<void> {
    const covered = new Map(this.generations);
    await this.yieldSome();
    this.onIo?.();
    for (const [b, g] of covered) if (g > this.syncedGeneration(b)) this.synced.set(b, g);
    this.syncs++;
  }

  /** Writes to block b completed so far. */
  generation(b: number): number {
    return this.generations.get(b) ?? 0;
  }

  syncedGeneration(b: number): number {
    return this.synced.get(b) ?? 0;
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`device I/O outside the disk: offset ${offset}, length ${length}, size ${this.size}`);
    }
  }

  private async yieldSome(): Promise<void> {
    if (this.random === undefined) return;
    const turns = Math.floor(this.random() * 4);
    for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
