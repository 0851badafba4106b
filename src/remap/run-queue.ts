/**
 * A FIFO of block runs: slot candidates in the order they were released.
 * Sequential releases extend the last run, so a queue of millions of blocks is
 * usually a handful of runs. Membership is checked lazily: `take` skips blocks
 * the caller no longer considers candidates, so the engine never has to find
 * and delete a block from the middle of a queue.
 */
export interface QueuedRun {
  start: number;
  count: number;
}

export class RunQueue {
  private starts: number[] = [];
  private counts: number[] = [];
  private head = 0;

  get isEmpty(): boolean {
    return this.head >= this.starts.length;
  }

  push(start: number, count: number): void {
    if (count <= 0) return;
    const last = this.starts.length - 1;
    if (last >= this.head && this.starts[last] + this.counts[last] === start) {
      this.counts[last] += count;
      return;
    }
    this.starts.push(start);
    this.counts.push(count);
  }

  /** Moves every run of `other` behind this queue's runs, emptying `other`. */
  appendAll(other: RunQueue): void {
    for (let i = other.head; i < other.starts.length; i++) this.push(other.starts[i], other.counts[i]);
    other.clear();
  }

  clear(): void {
    this.starts = [];
    this.counts = [];
    this.head = 0;
  }

  /**
   * Removes and returns the oldest run of up to `max` consecutive blocks that
   * satisfy `isCandidate`, discarding non-candidates before it. Undefined when
   * the queue holds no candidate.
   */
  take(max: number, isCandidate: (block: number) => boolean): QueuedRun | undefined {
    if (!this.dropLeadingNonCandidates(isCandidate)) return undefined;
    const i = this.head;
    const start = this.starts[i];
    let n = 1;
    while (n < max && n < this.counts[i] && isCandidate(start + n)) n++;
    this.starts[i] += n;
    this.counts[i] -= n;
    if (this.counts[i] === 0) {
      this.head++;
      this.compact();
    }
    return { start, count: n };
  }

  /**
   * Up to `max` candidate blocks from the front, as runs, left in the queue
   * (non-candidates before the first are dropped, as take would). Looks at
   * no more than 4 × max blocks: the caller only wants a window.
   */
  peek(max: number, isCandidate: (block: number) => boolean): QueuedRun[] {
    const out: QueuedRun[] = [];
    if (!this.dropLeadingNonCandidates(isCandidate)) return out;
    let left = max;
    let looked = 0;
    for (let i = this.head; i < this.starts.length && left > 0 && looked < 4 * max; i++) {
      const end = this.starts[i] + this.counts[i];
      for (let p = this.starts[i]; p < end && left > 0 && looked++ < 4 * max; p++) {
        if (!isCandidate(p)) continue;
        const last = out[out.length - 1];
        if (last !== undefined && last.start + last.count === p) last.count++;
        else out.push({ start: p, count: 1 });
        left--;
      }
    }
    return out;
  }

  /** Discards non-candidates at the front; false when the queue holds none but those. */
  private dropLeadingNonCandidates(isCandidate: (block: number) => boolean): boolean {
    while (this.head < this.starts.length) {
      const i = this.head;
      while (this.counts[i] > 0 && !isCandidate(this.starts[i])) {
        this.starts[i]++;
        this.counts[i]--;
      }
      if (this.counts[i] > 0) return true;
      this.head++;
      this.compact();
    }
    return false;
  }

  /** Drops consumed runs once they are most of the arrays. */
  private compact(): void {
    if (this.head < 1024 || this.head * 2 < this.starts.length) {
      if (this.head === this.starts.length) this.clear();
      return;
    }
    this.starts = this.starts.slice(this.head);
    this.counts = this.counts.slice(this.head);
    this.head = 0;
  }
}
