/** A half-open range of block numbers [start, end). */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/** Blocks per bucket. */
const BUCKET_BLOCKS = 256;
/** Entries spanning more buckets than this are kept apart (a whole-destination trim must not fill a million buckets). */
const WIDE_BUCKETS = 16;
/** List below, buckets above (with a gap, so a size hovering at the limit does not rebuild every time). */
const SWITCH_UP = 64;
const SWITCH_DOWN = 16;

/**
 * The ranges in flight (locks, disk I/O), found by overlap without scanning
 * them all. Finish moves thousands of runs per wave, each taking a lock and
 * registering I/O: with a plain list every one of them scanned every other
 * (measured: ~0.6 s of a 1 GiB finish in lock bookkeeping alone). Entries
 * sit in fixed-size buckets of the block numbers they cover; wide ones in a
 * list of their own that every lookup scans.
 */
export class RangeIndex<T extends Span> {
  /**
   * While few entries are in flight (a source read or two per request), a
   * plain list is cheaper than buckets: the index switches to buckets above
   * SWITCH_UP entries and back below SWITCH_DOWN.
   */
  private list: T[] | undefined = [];
  private readonly buckets = new Map<number, Set<T>>();
  private readonly wide = new Set<T>();
  private readonly all = new Set<T>();

  get size(): number {
    return this.list !== undefined ? this.list.length : this.all.size;
  }

  add(entry: T): void {
    if (this.list !== undefined) {
      this.list.push(entry);
      if (this.list.length > SWITCH_UP) {
        const entries = this.list;
        this.list = undefined;
        for (const e of entries) this.bucketAdd(e);
      }
      return;
    }
    this.bucketAdd(entry);
  }

  delete(entry: T): void {
    if (this.list !== undefined) {
      const at = this.list.indexOf(entry);
      if (at >= 0) this.list.splice(at, 1);
      return;
    }
    if (!this.all.delete(entry)) return;
    if (!this.wide.delete(entry)) {
      for (let b = bucketOf(entry.start), b1 = bucketOf(entry.end - 1); b <= b1; b++) {
        const set = this.buckets.get(b);
        if (set === undefined) continue;
        set.delete(entry);
        if (set.size === 0) this.buckets.delete(b);
      }
    }
    if (this.all.size < SWITCH_DOWN) {
      this.list = [...this.all];
      this.all.clear();
      this.wide.clear();
      this.buckets.clear();
    }
  }

  /** Calls `fn` for every entry overlapping [start, end), each once; stops early when `fn` returns true. */
  some(start: number, end: number, fn: (entry: T) => boolean = () => true): boolean {
    const overlaps = (e: T): boolean => e.start < end && start < e.end;
    if (this.list !== undefined) {
      for (const e of this.list) if (overlaps(e) && fn(e)) return true;
      return false;
    }
    for (const e of this.wide) if (overlaps(e) && fn(e)) return true;
    const q0 = bucketOf(start);
    const q1 = bucketOf(end - 1);
    if (end <= start || q1 - q0 + 1 > this.buckets.size) {
      // A query wider than the buckets in use: walk the entries instead.
      for (const e of this.all) if (!this.wide.has(e) && overlaps(e) && fn(e)) return true;
      return false;
    }
    for (let b = q0; b <= q1; b++) {
      const set = this.buckets.get(b);
      if (set === undefined) continue;
      for (const e of set) {
        // An entry in several buckets is reported from the first bucket both it and the query touch.
        if (b !== Math.max(q0, bucketOf(e.start))) continue;
        if (overlaps(e) && fn(e)) return true;
      }
    }
    return false;
  }

  /** Every entry overlapping [start, end). */
  overlapping(start: number, end: number): T[] {
    const out: T[] = [];
    this.some(start, end, (e) => {
      out.push(e);
      return false;
    });
    return out;
  }

  private bucketAdd(entry: T): void {
    this.all.add(entry);
    const b0 = bucketOf(entry.start);
    const b1 = bucketOf(entry.end - 1);
    // Empty entries too: they overlap by the same rule as the others (start < end' && start' < end), bucket or not.
    if (entry.end <= entry.start || b1 - b0 >= WIDE_BUCKETS) {
      this.wide.add(entry);
      return;
    }
    for (let b = b0; b <= b1; b++) {
      let set = this.buckets.get(b);
      if (set === undefined) this.buckets.set(b, (set = new Set()));
      set.add(entry);
    }
  }
}

function bucketOf(block: number): number {
  return Math.floor(block / BUCKET_BLOCKS);
}
