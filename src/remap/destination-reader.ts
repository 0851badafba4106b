import type { RemapState } from './remap-state.js';

interface DiskRead {
  diskOffset: number;
  bufferOffset: number;
  length: number;
  firstBlock: number;
  lastBlock: number;
}

/**
 * Reads of the destination (G3): each block from wherever its newest data is
 * — RAM, a zero extent, a slot, or its home. The location of every block is
 * decided in one synchronous step, RAM data is copied in that step, and the
 * disk reads are registered with the I/O tracker before the first await, so a
 * slot cannot be reused (nor a home overwritten) under this read.
 */
export class DestinationReader {
  constructor(private readonly s: RemapState) {}

  async readInto(buffer: Buffer, offset: number): Promise<void> {
    const s = this.s;
    if (s.phase === 'finished') return this.readPlain(buffer, offset);
    const B = s.B;
    const end = offset + buffer.length;
    const d0 = Math.floor(offset / B);
    const d1 = Math.ceil(end / B);
    const reads: DiskRead[] = [];
    const plainRegion = s.ram.size === 0 && s.zeros.size === 0 && s.spill.size === 0;
    if (plainRegion) {
      for (const run of s.map.homeRuns(d0, d1 - d0)) {
        const from = Math.max(offset, run.dest * B);
        const to = Math.min(end, (run.dest + run.count) * B);
        reads.push({ diskOffset: run.disk * B + (from - run.dest * B), bufferOffset: from - offset, length: to - from, firstBlock: run.disk, lastBlock: run.disk + run.count - 1 });
      }
    } else {
      let pending: DiskRead | undefined;
      for (let d = d0; d < d1; d++) {
        const blockStart = d * B;
        const from = Math.max(offset, blockStart);
        const to = Math.min(end, blockStart + s.map.destBlockLength(d));
        const inBlock = from - blockStart;
        const ram = s.ramData(d);
        if (ram !== undefined) {
          ram.copy(buffer, from - offset, inBlock, inBlock + (to - from));
          pending = undefined;
          continue;
        }
        if (s.zeros.has(d)) {
          buffer.fill(0, from - offset, to - offset);
          pending = undefined;
          continue;
        }
        const p = s.spill.get(d) ?? s.map.homeOf(d);
        const diskOffset = p * B + inBlock;
        if (pending !== undefined && pending.diskOffset + pending.length === diskOffset && pending.bufferOffset + pending.length === from - offset) {
          pending.length += to - from;
          pending.lastBlock = p;
          continue;
        }
        pending = { diskOffset, bufferOffset: from - offset, length: to - from, firstBlock: p, lastBlock: p };
        reads.push(pending);
      }
    }
    const tracked = reads.map((r) => s.io.register('read', r.firstBlock, r.lastBlock + 1));
    try {
      await Promise.all(
        reads.map(async (r, i) => {
          await tracked[i].ready;
          await s.device.readInto(buffer.subarray(r.bufferOffset, r.bufferOffset + r.length), r.diskOffset);
        }),
      );
    } finally {
      for (const t of tracked) t.done();
    }
  }

  /** The current content of destination block d as a new buffer (for read-modify-write). */
  async readBlock(d: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(this.s.map.destBlockLength(d));
    await this.readInto(buffer, d * this.s.B);
    return buffer;
  }

  /** After finish: the disk through the map, nothing else. */
  private async readPlain(buffer: Buffer, offset: number): Promise<void> {
    const s = this.s;
    await Promise.all(
      s.map.splitBytes(offset, buffer.length).map((piece) =>
        s.device.readInto(buffer.subarray(piece.destOffset - offset, piece.destOffset - offset + piece.length), piece.diskOffset),
      ),
    );
  }
}
