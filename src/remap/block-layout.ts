import { PagedBitmap } from './paged-bitmap.js';
import { ExtentMap, IntervalSet } from './run-map.js';

export type Phase = 'unsealed' | 'sealed' | 'finishing' | 'finished';

/**
 * Where every block stands: the sparse per-block facts that the engine keeps
 * live (RemapState) and the journal replays from committed records
 * (DurableState), so that recovery puts the one where the other left off.
 * Bitmaps, interval sets and run-length maps: never an object per block.
 */
export class BlockLayout {
  phase: Phase = 'unsealed';
  /** Disk blocks the filesystem declared free before sealing (source TRIM). */
  readonly free = new IntervalSet();
  readonly released: PagedBitmap;
  /** Released because the filesystem declared them free (source TRIM before sealing): their originals are not kept for revisits. */
  readonly trimmed: PagedBitmap;
  /** Released because a block-status reply of source called them a hole: their originals are zeroes. */
  readonly holes: PagedBitmap;
  readonly unconfirmed: PagedBitmap;
  readonly destroyed: PagedBitmap;
  readonly landed: PagedBitmap;
  /** Destination blocks held as zeroes. */
  readonly zeros = new IntervalSet();
  /** Destination block → the slot (disk block) holding its data. */
  readonly spill = new ExtentMap();
  /** Slot → the destination block whose data it holds: the inverse of `spill`. */
  readonly slotOwner = new ExtentMap();
  anyLanded = false;

  constructor(diskBlocks: number) {
    this.released = new PagedBitmap(diskBlocks);
    this.trimmed = new PagedBitmap(diskBlocks);
    this.holes = new PagedBitmap(diskBlocks);
    this.unconfirmed = new PagedBitmap(diskBlocks);
    this.destroyed = new PagedBitmap(diskBlocks);
    this.landed = new PagedBitmap(diskBlocks);
  }
}
