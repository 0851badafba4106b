/**
 * Disjoint half-open runs [start, end) over a number line, each with a value,
 * kept sorted in chunked arrays so inserting or removing a run costs O(chunk)
 * rather than O(all runs). With `linear` values (an extent map d → s) a run's
 * value is the value of its first element and element x maps to
 * value + (x - start); adjacent runs merge when the values continue. Without
 * (an interval set) adjacent runs always merge.
 */
const MAX_LEAF = 256;

interface Leaf {
  starts: number[];
  ends: number[];
  values: number[];
}

export interface Run {
  start: number;
  end: number;
  value: number;
}

export class RunMap {
  private leaves: Leaf[] = [];
  private covered = 0;
  private runs = 0;

  constructor(private readonly linear: boolean) {}

  /** Total length covered by runs. */
  get size(): number {
    return this.covered;
  }

  get runCount(): number {
    return this.runs;
  }

  clear(): void {
    this.leaves = [];
    this.covered = 0;
    this.runs = 0;
  }

  /** The run containing x, or undefined. */
  find(x: number): Run | undefined {
    const at = this.locate(x);
    if (at === undefined) return undefined;
    const leaf = this.leaves[at.leaf];
    if (leaf.starts[at.index] > x) return undefined;
    return { start: leaf.starts[at.index], end: leaf.ends[at.index], value: leaf.values[at.index] };
  }

  /** The value at x (linear: shifted to x), or undefined when x is not covered. */
  valueAt(x: number): number | undefined {
    const run = this.find(x);
    if (run === undefined) return undefined;
    return this.linear ? run.value + (x - run.start) : run.value;
  }

  has(x: number): boolean {
    return this.find(x) !== undefined;
  }

  /** Runs overlapping [from, to), clipped to it (linear values shifted accordingly), in order. */
  forEachIn(from: number, to: number, fn: (start: number, end: number, value: number) => void): void {
    const pieces = this.collect(from, to);
    for (const run of pieces) fn(run.start, run.end, run.value);
  }

  /**
   * Like forEachIn, as an array (a snapshot: safe to modify the map while
   * using it); at most `limit` runs, the first ones (a block status answer
   * describes a bounded number of runs: collecting all of a fragmented range
   * to keep the first thousand cost seconds).
   */
  collect(from: number, to: number, limit = Infinity): Run[] {
    const out: Run[] = [];
    let at = this.locate(from);
    if (at === undefined) return out;
    let { leaf: li, index: i } = at;
    while (li < this.leaves.length) {
      const leaf = this.leaves[li];
      for (; i < leaf.starts.length; i++) {
        const start = leaf.starts[i];
        if (start >= to || out.length >= limit) return out;
        const s = Math.max(start, from);
        const e = Math.min(leaf.ends[i], to);
        out.push({ start: s, end: e, value: this.linear ? leaf.values[i] + (s - start) : leaf.values[i] });
      }
      li++;
      i = 0;
    }
    return out;
  }

  /** Length covered inside [from, to). */
  coveredIn(from: number, to: number): number {
    let n = 0;
    for (const run of this.collect(from, to)) n += run.end - run.start;
    return n;
  }

  /** Every run, in order. */
  *all(): IterableIterator<Run> {
    for (const leaf of this.leaves) {
      for (let i = 0; i < leaf.starts.length; i++) yield { start: leaf.starts[i], end: leaf.ends[i], value: leaf.values[i] };
    }
  }

  /** Makes [from, to) map to `value` (overwriting whatever was there). */
  assign(from: number, to: number, value = 0): void {
    if (from >= to) return;
    this.remove(from, to);
    this.insertDisjoint(from, to, value);
  }

  /** Removes [from, to) from every run. */
  remove(from: number, to: number): void {
    if (from >= to) return;
    const at = this.locate(from);
    if (at === undefined) return;
    let li = at.leaf;
    let i = at.index;
    while (li < this.leaves.length) {
      const leaf = this.leaves[li];
      if (i >= leaf.starts.length || leaf.starts[i] >= to) return;
      if (leaf.starts[i] < from) {
        const end = leaf.ends[i];
        if (end > to) {
          // The removed range lies inside one run: split it.
          const tailValue = this.linear ? leaf.values[i] + (to - leaf.starts[i]) : leaf.values[i];
          leaf.ends[i] = from;
          this.covered -= to - from;
          this.insertAt(li, i + 1, to, end, tailValue);
          return;
        }
        this.covered -= end - from;
        leaf.ends[i] = from;
        i++;
      }
      let j = i;
      while (j < leaf.starts.length && leaf.ends[j] <= to && leaf.starts[j] < to) {
        this.covered -= leaf.ends[j] - leaf.starts[j];
        j++;
      }
      if (j > i) {
        leaf.starts.splice(i, j - i);
        leaf.ends.splice(i, j - i);
        leaf.values.splice(i, j - i);
        this.runs -= j - i;
      }
      if (i < leaf.starts.length && leaf.starts[i] < to) {
        const cut = to - leaf.starts[i];
        this.covered -= cut;
        if (this.linear) leaf.values[i] += cut;
        leaf.starts[i] = to;
        return;
      }
      if (leaf.starts.length === 0) {
        this.leaves.splice(li, 1);
      } else {
        if (i < leaf.starts.length) return;
        li++;
      }
      i = 0;
    }
  }

  /** Position of the first run whose end is > x. */
  private locate(x: number): { leaf: number; index: number } | undefined {
    const leaves = this.leaves;
    let lo = 0;
    let hi = leaves.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const leaf = leaves[mid];
      if (leaf.ends[leaf.ends.length - 1] > x) hi = mid;
      else lo = mid + 1;
    }
    if (lo === leaves.length) return undefined;
    const ends = leaves[lo].ends;
    let a = 0;
    let b = ends.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (ends[mid] > x) b = mid;
      else a = mid + 1;
    }
    return { leaf: lo, index: a };
  }

  private continues(endOfPrev: number, valueOfPrev: number, startOfPrev: number, start: number, value: number): boolean {
    if (endOfPrev !== start) return false;
    return this.linear ? valueOfPrev + (endOfPrev - startOfPrev) === value : valueOfPrev === value;
  }

  /** Inserts a run that overlaps nothing, merging with its neighbours when the values continue. */
  private insertDisjoint(from: number, to: number, value: number): void {
    this.covered += to - from;
    if (this.leaves.length === 0) {
      this.leaves.push({ starts: [from], ends: [to], values: [value] });
      this.runs = 1;
      return;
    }
    const at = this.locate(from);
    let li: number;
    let i: number;
    if (at === undefined) {
      li = this.leaves.length - 1;
      i = this.leaves[li].starts.length;
    } else {
      li = at.leaf;
      i = at.index;
    }
    // Neighbours: the run before position (li, i) and the run at it.
    let prevLeaf = li;
    let prevIndex = i - 1;
    if (prevIndex < 0 && li > 0) {
      prevLeaf = li - 1;
      prevIndex = this.leaves[prevLeaf].starts.length - 1;
    }
    const next = this.leaves[li];
    const hasNext = i < next.starts.length;
    const prev = prevIndex >= 0 ? this.leaves[prevLeaf] : undefined;
    const mergePrev = prev !== undefined && this.continues(prev.ends[prevIndex], prev.values[prevIndex], prev.starts[prevIndex], from, value);
    const mergeNext = hasNext && this.continues(to, value, from, next.starts[i], next.values[i]);
    if (mergePrev && prev !== undefined) {
      if (mergeNext) {
        prev.ends[prevIndex] = next.ends[i];
        next.starts.splice(i, 1);
        next.ends.splice(i, 1);
        next.values.splice(i, 1);
        this.runs--;
        if (next.starts.length === 0) this.leaves.splice(li, 1);
      } else {
        prev.ends[prevIndex] = to;
      }
      return;
    }
    if (mergeNext) {
      next.starts[i] = from;
      next.values[i] = value;
      return;
    }
    this.insertAt(li, i, from, to, value);
  }

  private insertAt(li: number, i: number, start: number, end: number, value: number): void {
    const leaf = this.leaves[li];
    leaf.starts.splice(i, 0, start);
    leaf.ends.splice(i, 0, end);
    leaf.values.splice(i, 0, value);
    this.runs++;
    if (leaf.starts.length > MAX_LEAF) {
      const half = leaf.starts.length >>> 1;
      const right: Leaf = {
        starts: leaf.starts.splice(half),
        ends: leaf.ends.splice(half),
        values: leaf.values.splice(half),
      };
      this.leaves.splice(li + 1, 0, right);
    }
  }
}

/** A set of integers stored as runs: held zero extents, free blocks. */
export class IntervalSet {
  private readonly runs = new RunMap(false);

  get size(): number {
    return this.runs.size;
  }
  get runCount(): number {
    return this.runs.runCount;
  }
  has(x: number): boolean {
    return this.runs.has(x);
  }
  add(from: number, to: number): void {
    this.runs.assign(from, to, 0);
  }
  remove(from: number, to: number): void {
    this.runs.remove(from, to);
  }
  clear(): void {
    this.runs.clear();
  }
  /** Covered length inside [from, to). */
  coveredIn(from: number, to: number): number {
    return this.runs.coveredIn(from, to);
  }
  /** Runs inside [from, to), clipped, at most `limit` (the first); a snapshot. */
  runsIn(from: number, to: number, limit?: number): Array<{ start: number; end: number }> {
    return this.runs.collect(from, to, limit);
  }
  *all(): IterableIterator<{ start: number; end: number }> {
    yield* this.runs.all();
  }
}

/** A run-length map from integers to integers (dest block → slot): a sequential spill of millions of blocks is one run. */
export class ExtentMap {
  private readonly runs = new RunMap(true);

  get size(): number {
    return this.runs.size;
  }
  get runCount(): number {
    return this.runs.runCount;
  }
  get(x: number): number | undefined {
    return this.runs.valueAt(x);
  }
  has(x: number): boolean {
    return this.runs.has(x);
  }
  /** Maps x … x+count-1 to target … target+count-1. */
  set(x: number, count: number, target: number): void {
    this.runs.assign(x, x + count, target);
  }
  delete(x: number, count: number): void {
    this.runs.remove(x, x + count);
  }
  clear(): void {
    this.runs.clear();
  }
  /** Runs inside [from, to) as {start, end, value = target of start}, at most `limit` (the first); a snapshot. */
  runsIn(from: number, to: number, limit?: number): Run[] {
    return this.runs.collect(from, to, limit);
  }
  *all(): IterableIterator<Run> {
    yield* this.runs.all();
  }
}
