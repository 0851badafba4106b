import type { BlockDevice } from '../../../../src/remap/block-device.js';

const CHUNK = 4096;

/**
 * A huge disk that stores only what was written, in 4 KiB chunks (unwritten
 * bytes read as zero): a 1 TiB disk costs what its writes cost.
 */
export class SparseDevice implements BlockDevice {
  private readonly chunks = new Map<number, Buffer>();

  constructor(readonly size: number) {}

  get storedBytes(): number {
    return this.chunks.size * CHUNK;
  }

  async readInto(buffer: Buffer, offset: number): Promise<void> {
    this.forEachChunk(offset, buffer.length, (index, from, to, at) => {
      const chunk = this.chunks.get(index);
      if (chunk === undefined) buffer.fill(0, at, at + (to - from));
      else chunk.copy(buffer, at, from, to);
    });
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.forEachChunk(offset, data.length, (index, from, to, at) => {
      let chunk = this.chunks.get(index);
      if (chunk === undefined) {
        chunk = Buffer.alloc(CHUNK);
        this.chunks.set(index, chunk);
      }
      data.copy(chunk, from, at, at + (to - from));
    });
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.forEachChunk(offset, length, (index, from, to) => {
      if (from === 0 && to === CHUNK) this.chunks.delete(index);
      else this.chunks.get(index)?.fill(0, from, to);
    });
  }

  async sync(): Promise<void> {}

  /** fn(chunk index, start and end inside the chunk, position in the caller's buffer). */
  private forEachChunk(offset: number, length: number, fn: (index: number, from: number, to: number, at: number) => void): void {
    if (offset < 0 || offset + length > this.size) throw new RangeError(`I/O outside the device: ${offset}+${length}`);
    let at = 0;
    while (at < length) {
      const position = offset + at;
      const index = Math.floor(position / CHUNK);
      const from = position - index * CHUNK;
      const to = Math.min(CHUNK, from + (length - at));
      fn(index, from, to, at);
      at += to - from;
    }
  }
}
