import { reserveInTurns, touchedBuffer } from './reserved-memory.js';

/** RAM-held blocks are carved from slabs of this size. */
const SLAB_BYTES = 1024 * 1024;

/** Cells shorter than a block (the destination's short last block) are numbered from here, apart from the carved ones. */
const SHORT_CELLS = 2 ** 40;

/**
 * The RAM cache's memory, as cells of one block carved from slabs: a held
 * block is a cell number — a small integer the block table stores as is —
 * rather than a Buffer object of its own. A view per held block cost ~90
 * bytes of heap (a full 1 GiB cache of 4 KiB blocks: 23 MiB; of 512-byte
 * blocks: 180 MiB), all of it old-generation objects for the collector to
 * trace. Views are made when data moves in or out, and die young.
 *
 * Cell c is block c % cellsPerSlab of slab ⌊c / cellsPerSlab⌋. Cells come
 * back as spares and are reused first in, first out: blocks dropped together
 * (a landed run) come back in order for blocks admitted together, so the next
 * victim run is again one piece of memory (one pwrite, not a pwritev).
 * Slabs are never freed while cells may be in use; `release` lets go of all.
 */
export class RamCells {
  private slabs: Buffer[] = [];
  private readonly cellsPerSlab: number;
  /** Cells of the last slab carved so far. */
  private carved = 0;
  private spares: number[] = [];
  private spareHead = 0;
  /** Slabs taken ahead (reserve), not carved yet. */
  private reserved: Buffer[] = [];
  private reservedBytes = 0;
  private readonly shortCells = new Map<number, Buffer>();
  private nextShort = SHORT_CELLS;
  private released = false;

  constructor(
    private readonly B: number,
    private readonly cacheBytes: number,
  ) {
    this.cellsPerSlab = Math.max(1, Math.floor(SLAB_BYTES / B));
  }

  /** A cell for `length` bytes (a block, or the short last one): a spare, else carved; its bytes are whatever it held. */
  take(length: number): number {
    if (length !== this.B) {
      const cell = this.nextShort++;
      this.shortCells.set(cell, Buffer.allocUnsafeSlow(length));
      return cell;
    }
    if (this.spareHead < this.spares.length) {
      const cell = this.spares[this.spareHead++];
      if (this.spareHead === this.spares.length) {
        this.spares = [];
        this.spareHead = 0;
      } else if (this.spareHead > 1024 && this.spareHead * 2 > this.spares.length) {
        this.spares = this.spares.slice(this.spareHead);
        this.spareHead = 0;
      }
      return cell;
    }
    const last = this.slabs[this.slabs.length - 1];
    if (last === undefined || this.carved * this.B === last.length) {
      const reserved = this.reserved.pop();
      if (reserved !== undefined) this.reservedBytes -= reserved.length;
      this.slabs.push(reserved ?? Buffer.allocUnsafeSlow(Math.max(this.B, Math.floor(Math.min(SLAB_BYTES, this.cacheBytes) / this.B) * this.B)));
      this.carved = 0;
    }
    return (this.slabs.length - 1) * this.cellsPerSlab + this.carved++;
  }

  /** The cell's bytes (a view: it stays valid while the cell is not given back). */
  view(cell: number): Buffer {
    if (cell >= SHORT_CELLS) return this.shortCells.get(cell) as Buffer;
    const slab = this.slabs[Math.floor(cell / this.cellsPerSlab)];
    const at = (cell % this.cellsPerSlab) * this.B;
    return slab.subarray(at, at + this.B);
  }

  lengthOf(cell: number): number {
    return cell >= SHORT_CELLS ? (this.shortCells.get(cell) as Buffer).length : this.B;
  }

  /** A cell nothing uses any more: a block cell becomes a spare, a short one is freed. */
  giveBack(cell: number): void {
    if (cell >= SHORT_CELLS) {
      this.shortCells.delete(cell);
      return;
    }
    if (!this.released) this.spares.push(cell);
  }

  /** Memory owned but not holding data: spares, the uncarved rest of the last slab, slabs reserved ahead. */
  get unusedBytes(): number {
    const last = this.slabs[this.slabs.length - 1];
    return (this.spares.length - this.spareHead) * this.B + (last === undefined ? 0 : last.length - this.carved * this.B) + this.reservedBytes;
  }

  /**
   * Takes memory ahead (see reserved-memory.ts), touched, in slabs, until
   * `inUseBytes()` (held data and what commits still hold) plus unusedBytes
   * fill the cache. Returns the bytes taken.
   */
  reserve(inUseBytes: () => number): Promise<number> {
    return reserveInTurns(() => {
      if (this.released) return 0;
      const bytes = Math.floor(Math.min(SLAB_BYTES, this.cacheBytes - inUseBytes() - this.unusedBytes) / this.B) * this.B;
      if (bytes <= 0) return 0;
      this.reserved.push(touchedBuffer(bytes));
      this.reservedBytes += bytes;
      return bytes;
    });
  }

  /** Lets go of every slab, for good (after finish nothing is held again): no cell may be in use. */
  release(): void {
    this.released = true;
    this.slabs = [];
    this.carved = 0;
    this.spares = [];
    this.spareHead = 0;
    this.reserved = [];
    this.reservedBytes = 0;
    this.shortCells.clear();
  }
}
