import { BlockSet } from './block-table.js';

/**
 * RAM-held destination blocks whose homes can take them, oldest first. An
 * insertion-ordered Map would do, but V8 leaves a hole for every deleted
 * entry and each new iteration walks them all again: taking victims from the
 * front then costs O(all deletions). Here the order lives in an array whose
 * consumed front is cut off, and membership in a Set; entries deleted in the
 * middle are skipped when reached. (A bitmap for membership saved ~5% of a
 * migration's CPU but costs 4 KiB per 128 MiB of destination holding a queued
 * block — up to 32 MiB per queue on 1 TiB — where a Set follows the cache.)
 */
export class LandingQueue {
  private readonly members = new BlockSet();
  private order: number[] = [];
  private head = 0;

  get size(): number {
    return this.members.size;
  }

  has(d: number): boolean {
    return this.members.has(d);
  }

  add(d: number): void {
    if (this.members.has(d)) return;
    this.members.add(d);
    this.order.push(d);
    // Stale entries pile up when blocks leave from the middle: rebuild before they dominate.
    if (this.order.length - this.head > 4 * this.members.size + 1024) this.compact();
  }

  delete(d: number): void {
    this.members.delete(d);
  }

  clear(): void {
    this.members.clear();
    this.order = [];
    this.head = 0;
  }

  /** Members, oldest first. The queue may change while this runs. */
  *values(): IterableIterator<number> {
    for (let i = this.head; i < this.order.length; i++) {
      const d = this.order[i];
      if (!this.members.has(d)) {
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
      if (!this.members.has(d) || seen.has(d)) return false;
      seen.add(d);
      return true;
    });
    this.head = 0;
  }
}
