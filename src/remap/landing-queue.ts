import { PagedBitmap } from './paged-bitmap.js';

/**
 * RAM-held destination blocks whose homes can take them, oldest first. An
 * insertion-ordered Map would do, but V8 leaves a hole for every deleted
 * entry and each new iteration walks them all again: taking victims from the
 * front then costs O(all deletions). Here the order lives in an array whose
 * consumed front is cut off, and membership in a bitmap (every held block
 * enters and leaves a queue: a Set's hashing was ~5% of a migration's CPU);
 * entries deleted in the middle are skipped when reached.
 */
export class LandingQueue {
  private readonly members: PagedBitmap;
  private order: number[] = [];
  private head = 0;

  /** `blocks`: the destination's block count (members are block numbers below it). */
  constructor(blocks: number) {
    this.members = new PagedBitmap(blocks);
  }

  get size(): number {
    return this.members.count;
  }

  has(d: number): boolean {
    return this.members.get(d);
  }

  add(d: number): void {
    if (!this.members.set(d)) return;
    this.order.push(d);
    // Stale entries pile up when blocks leave from the middle: rebuild before they dominate.
    if (this.order.length - this.head > 4 * this.members.count + 1024) this.compact();
  }

  delete(d: number): void {
    this.members.clear(d);
  }

  clear(): void {
    this.members.clearAll();
    this.order = [];
    this.head = 0;
  }

  /** Members, oldest first. The queue may change while this runs. */
  *values(): IterableIterator<number> {
    for (let i = this.head; i < this.order.length; i++) {
      const d = this.order[i];
      if (!this.members.get(d)) {
        if (i === this.head) this.head++;
        continue;
      }
      yield d;
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) this.compact();
  }

  private compact(): void {
    const seen = new Set<number>();
    this.order = this.order.slice(this.head).filter((d) => {
      if (!this.members.get(d) || seen.has(d)) return false;
      seen.add(d);
      return true;
    });
    this.head = 0;
  }
}
