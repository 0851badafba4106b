import { MapError } from './map-error.js';

/** One extent of a map, in bytes: destination [destOffset, destOffset+length) lives at disk [diskOffset, …). */
export interface MapExtent {
  destOffset: number;
  length: number;
  diskOffset: number;
}

/** A run of destination blocks whose homes are consecutive disk blocks. */
export interface HomeRun {
  dest: number;
  disk: number;
  count: number;
}

/** A byte range of the destination and where it lives on the disk. */
export interface BytePiece {
  destOffset: number;
  diskOffset: number;
  length: number;
}

export const MIN_BLOCK_SIZE = 512;
/**
 * Extents a map may have once adjacent ones are merged. A map places
 * partitions, so real ones have a few; the bound keeps the state file's header
 * (which records the map) and the server's start-up memory (~1 KiB per extent
 * while the map is read) small.
 */
export const MAX_MAP_EXTENTS = 100_000;
export const MAX_BLOCK_SIZE = 65536;

export function validateBlockSize(blockSize: number): void {
  const ok = Number.isInteger(blockSize) && blockSize >= MIN_BLOCK_SIZE && blockSize <= MAX_BLOCK_SIZE && (blockSize & (blockSize - 1)) === 0;
  if (!ok) {
    throw new MapError(
      `block size ${blockSize} is not a power of two from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}`,
      'block-size',
      undefined,
      'use --block-size 4096 (the default) or another power of two in that range',
    );
  }
}

/**
 * The same map with each run of extents that continue one another both in the
 * destination and on the disk made one extent: a map generated block by block
 * costs what its shape costs, not what its listing does.
 */
export function mergeAdjacentExtents(extents: readonly MapExtent[]): MapExtent[] {
  const merged: MapExtent[] = [];
  for (const e of extents) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last.destOffset + last.length === e.destOffset && last.diskOffset + last.length === e.diskOffset) {
      last.length += e.length;
    } else {
      merged.push({ destOffset: e.destOffset, length: e.length, diskOffset: e.diskOffset });
    }
  }
  return merged;
}

function describe(e: MapExtent): string {
  return `(destOffset ${e.destOffset}, length ${e.length}, diskOffset ${e.diskOffset})`;
}

/**
 * A validated map, with the lookups the engine needs in block units:
 * home(d), its inverse, and range splitting. Extents are kept in destination
 * order; a second index orders them by disk position.
 */
export class RemapMap {
  readonly destinationSize: number;
  readonly diskBlocks: number;
  readonly destinationBlocks: number;
  private readonly destStart: number[];
  private readonly diskStart: number[];
  private readonly blocks: number[];
  /** Extent indices ordered by disk position. */
  private readonly byDisk: number[];
  private lastHit = 0;

  private constructor(
    /** The map's extents, adjacent ones merged (what the state records and compares). */
    readonly extents: readonly MapExtent[],
    readonly diskSize: number,
    readonly blockSize: number,
    /** How many extents the map listed before merging. */
    readonly listedExtents: number,
  ) {
    const B = blockSize;
    this.destinationSize = extents.reduce((sum, e) => sum + e.length, 0);
    this.diskBlocks = Math.ceil(diskSize / B);
    this.destinationBlocks = Math.ceil(this.destinationSize / B);
    this.destStart = extents.map((e) => e.destOffset / B);
    this.diskStart = extents.map((e) => e.diskOffset / B);
    this.blocks = extents.map((e) => Math.ceil(e.length / B));
    this.byDisk = extents.map((_, i) => i).sort((a, b) => this.diskStart[a] - this.diskStart[b]);
  }

  /** Validates `extents` against the disk (DESIGN §2); throws MapError naming the extent and the rule. */
  static fromExtents(extents: readonly MapExtent[], diskSize: number, blockSize: number): RemapMap {
    validateBlockSize(blockSize);
    if (!Number.isSafeInteger(diskSize) || diskSize <= 0) throw new RangeError(`invalid disk size ${diskSize}`);
    if (extents.length === 0) {
      throw new MapError('map has no extents', 'no-extents', undefined, 'list at least one extent, e.g. {"extents":[{"destOffset":0,"length":<disk size>,"diskOffset":0}]}');
    }
    const B = blockSize;
    let expected = 0;
    extents.forEach((e, i) => {
      for (const field of ['destOffset', 'length', 'diskOffset'] as const) {
        const v = e[field];
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || (field === 'length' && v === 0)) {
          throw new MapError(
            `map extent ${i}: ${field} must be a ${field === 'length' ? 'positive' : 'non-negative'} integer number of bytes, got ${JSON.stringify(v)}`,
            'not-a-number',
            i,
            'give destOffset, length and diskOffset as plain byte counts',
          );
        }
      }
      if (e.destOffset > expected) {
        throw new MapError(
          `map extent ${i} ${describe(e)}: gap in the destination: bytes ${expected}…${e.destOffset - 1} belong to no extent`,
          'gap',
          i,
          `start extent ${i} at destOffset ${expected}, or add an extent for the gap; extents are listed in destination order`,
        );
      }
      if (e.destOffset < expected) {
        throw new MapError(
          `map extent ${i} ${describe(e)}: overlaps extent ${i - 1} in the destination (which ends at ${expected})`,
          'overlap-destination',
          i,
          `start extent ${i} at destOffset ${expected}; extents are listed in destination order`,
        );
      }
      const endsAtDiskEnd = e.diskOffset + e.length === diskSize;
      const lengthAligned = e.length % B === 0 || (endsAtDiskEnd && i === extents.length - 1);
      if (e.destOffset % B !== 0 || e.diskOffset % B !== 0 || !lengthAligned) {
        throw new MapError(
          `map extent ${i} ${describe(e)}: not aligned to the block size ${B}` +
            (e.length % B !== 0 && endsAtDiskEnd ? ' (only the last extent may end unaligned at the end of the disk)' : ''),
          'unaligned',
          i,
          `make destOffset, diskOffset and length multiples of ${B}; only the destination's last extent may end at the disk's end (${diskSize}) with a shorter length`,
        );
      }
      if (e.diskOffset + e.length > diskSize) {
        throw new MapError(
          `map extent ${i} ${describe(e)}: ends at disk byte ${e.diskOffset + e.length}, past the end of the disk (${diskSize} bytes)`,
          'out-of-disk',
          i,
          'keep every extent inside the disk',
        );
      }
      expected = e.destOffset + e.length;
    });
    const order = extents.map((_, i) => i).sort((a, b) => extents[a].diskOffset - extents[b].diskOffset);
    for (let k = 1; k < order.length; k++) {
      const prev = extents[order[k - 1]];
      const cur = extents[order[k]];
      if (cur.diskOffset < prev.diskOffset + prev.length) {
        const [i, j] = [order[k - 1], order[k]].sort((a, b) => a - b);
        throw new MapError(
          `map extent ${j} ${describe(extents[j])}: overlaps extent ${i} ${describe(extents[i])} on the disk`,
          'overlap-disk',
          j,
          'two destination ranges cannot live in the same disk bytes: move one of them',
        );
      }
    }
    const merged = mergeAdjacentExtents(extents);
    if (merged.length > MAX_MAP_EXTENTS) {
      throw new MapError(
        `map has ${merged.length} extents once adjacent ones are merged (${extents.length} listed); at most ${MAX_MAP_EXTENTS} are supported`,
        'too-many-extents',
        undefined,
        'map whole partitions or other large ranges, not files or blocks: the filesystems on the destination place the files',
      );
    }
    return new RemapMap(merged, diskSize, blockSize, extents.length);
  }

  /** Parses a map file's JSON text (or its parsed value). */
  static parse(input: string | unknown, diskSize: number, blockSize: number): RemapMap {
    let value: unknown = input;
    if (typeof input === 'string') {
      try {
        value = JSON.parse(input);
      } catch (err) {
        throw new MapError(`map is not valid JSON: ${(err as Error).message}`, 'not-json', undefined, 'write the map as {"extents":[{"destOffset":…,"length":…,"diskOffset":…}]}');
      }
    }
    const extents = (value as { extents?: unknown } | null)?.extents;
    if (!Array.isArray(extents)) {
      throw new MapError('map has no "extents" array', 'no-extents', undefined, 'write the map as {"extents":[{"destOffset":…,"length":…,"diskOffset":…}]}');
    }
    const parsed = extents.map((e, i) => {
      if (typeof e !== 'object' || e === null) {
        throw new MapError(`map extent ${i}: not an object`, 'not-a-number', i, 'each extent is {"destOffset":…,"length":…,"diskOffset":…}');
      }
      const o = e as Record<string, unknown>;
      return { destOffset: o.destOffset, length: o.length, diskOffset: o.diskOffset } as MapExtent;
    });
    return RemapMap.fromExtents(parsed, diskSize, blockSize);
  }

  /** The default map: the destination is the disk. */
  static identity(diskSize: number, blockSize: number): RemapMap {
    return RemapMap.fromExtents([{ destOffset: 0, length: diskSize, diskOffset: 0 }], diskSize, blockSize);
  }

  toJSON(): { extents: MapExtent[] } {
    return { extents: this.extents.map((e) => ({ ...e })) };
  }

  /** Bytes in disk block p (B, or less for the disk's short last block). */
  diskBlockLength(p: number): number {
    return Math.min(this.blockSize, this.diskSize - p * this.blockSize);
  }

  /** Bytes in destination block d (equals its home's length). */
  destBlockLength(d: number): number {
    return Math.min(this.blockSize, this.destinationSize - d * this.blockSize);
  }

  /** The disk block destination block d maps to. */
  homeOf(d: number): number {
    const i = this.extentOfDest(d);
    return this.diskStart[i] + (d - this.destStart[i]);
  }

  /** The destination block whose home is disk block p, or -1. */
  destOf(p: number): number {
    const i = this.extentOfDisk(p);
    return i < 0 ? -1 : this.destStart[i] + (p - this.diskStart[i]);
  }

  isHome(p: number): boolean {
    return this.extentOfDisk(p) >= 0;
  }

  /** Splits destination blocks [dest, dest+count) into runs with consecutive homes. */
  homeRuns(dest: number, count: number): HomeRun[] {
    const out: HomeRun[] = [];
    let d = dest;
    const end = dest + count;
    while (d < end) {
      const i = this.extentOfDest(d);
      const n = Math.min(end, this.destStart[i] + this.blocks[i]) - d;
      out.push({ dest: d, disk: this.diskStart[i] + (d - this.destStart[i]), count: n });
      d += n;
    }
    return out;
  }

  /** The parts of disk blocks [disk, disk+count) that are homes, as runs (dest ↔ disk). */
  ownerRuns(disk: number, count: number): HomeRun[] {
    const out: HomeRun[] = [];
    const end = disk + count;
    let k = this.firstByDiskEndingAfter(disk);
    for (; k < this.byDisk.length; k++) {
      const i = this.byDisk[k];
      const s = this.diskStart[i];
      if (s >= end) break;
      const from = Math.max(s, disk);
      const to = Math.min(s + this.blocks[i], end);
      if (from < to) out.push({ dest: this.destStart[i] + (from - s), disk: from, count: to - from });
    }
    return out;
  }

  /** Splits disk blocks [disk, disk+count) into alternating runs of homes and non-homes. */
  forEachHomeSplit(disk: number, count: number, fn: (start: number, count: number, isHome: boolean) => void): void {
    let at = disk;
    for (const run of this.ownerRuns(disk, count)) {
      if (run.disk > at) fn(at, run.disk - at, false);
      fn(run.disk, run.count, true);
      at = run.disk + run.count;
    }
    if (at < disk + count) fn(at, disk + count - at, false);
  }

  /** Byte-level split of a destination range into disk pieces (for the plain view after finish). */
  splitBytes(offset: number, length: number): BytePiece[] {
    const out: BytePiece[] = [];
    const B = this.blockSize;
    let at = offset;
    const end = offset + length;
    while (at < end) {
      const i = this.extentOfDest(Math.floor(at / B));
      const e = this.extents[i];
      const n = Math.min(end, e.destOffset + e.length) - at;
      out.push({ destOffset: at, diskOffset: e.diskOffset + (at - e.destOffset), length: n });
      at += n;
    }
    return out;
  }

  private extentOfDest(d: number): number {
    const hit = this.lastHit;
    if (d >= this.destStart[hit] && d < this.destStart[hit] + this.blocks[hit]) return hit;
    let lo = 0;
    let hi = this.destStart.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.destStart[mid] <= d) lo = mid;
      else hi = mid - 1;
    }
    if (d < 0 || d >= this.destStart[lo] + this.blocks[lo]) throw new RangeError(`destination block ${d} is outside the map`);
    this.lastHit = lo;
    return lo;
  }

  /** Index (into extents) of the extent holding disk block p, or -1. */
  private extentOfDisk(p: number): number {
    const k = this.firstByDiskEndingAfter(p);
    if (k >= this.byDisk.length) return -1;
    const i = this.byDisk[k];
    return this.diskStart[i] <= p ? i : -1;
  }

  /** Position in byDisk of the first extent whose disk range ends after p. */
  private firstByDiskEndingAfter(p: number): number {
    let lo = 0;
    let hi = this.byDisk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const i = this.byDisk[mid];
      if (this.diskStart[i] + this.blocks[i] > p) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
