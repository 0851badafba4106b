import { RangeIndex, type Span } from './range-index.js';

interface BlockRun {
  start: number;
  end: number;
}

/**
 * Source reads sent from the page cache whose clients may not have read them
 * yet (SourceView.fileSpan), by the disk blocks they cover. The socket holds
 * the disk's pages, not a copy, until then: a destination write landing on
 * those bytes before the client reads would put destination data into a
 * source reply (G2). So while any reply covers a block, that block is not
 * released (it cannot be written), seal waits until there are none, and so
 * does finish.
 */
export class UnreadSourceReplies {
  private readonly spans = new RangeIndex<Span>();
  private waiters: Array<() => void> = [];

  /** Replies counted without their blocks (before sealing nothing is released, so only their number matters). */
  private uncovered = 0;

  get count(): number {
    return this.spans.size + this.uncovered;
  }

  /**
   * A reply covering disk blocks [start, end), or one whose blocks need not
   * be known (no range: before sealing): the returned function says it has
   * been read (or can no longer be), once.
   */
  take(range?: { start: number; end: number }): () => void {
    const span: Span | undefined = range === undefined ? undefined : { start: range.start, end: range.end };
    if (span === undefined) this.uncovered++;
    else this.spans.add(span);
    let taken = false;
    return () => {
      if (taken) return;
      taken = true;
      if (span === undefined) this.uncovered--;
      else this.spans.delete(span);
      if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
    };
  }

  /** Whether an unread reply covers any block of [start, end). */
  covers(start: number, end: number): boolean {
    return this.spans.size > 0 && this.spans.some(start, end);
  }

  /** Splits [start, end) into the runs no unread reply covers and those one does. */
  split(start: number, end: number): { free: BlockRun[]; covered: BlockRun[] } {
    if (!this.covers(start, end)) return { free: [{ start, end }], covered: [] };
    const free: BlockRun[] = [];
    const covered: BlockRun[] = [];
    const push = (list: BlockRun[], a: number, b: number): void => {
      const last = list[list.length - 1];
      if (last !== undefined && last.end === a) last.end = b;
      else list.push({ start: a, end: b });
    };
    const overlapping = this.spans.overlapping(start, end).sort((x, y) => x.start - y.start);
    let at = start;
    for (const span of overlapping) {
      const a = Math.max(at, span.start);
      const b = Math.min(end, span.end);
      if (b <= at) continue;
      if (a > at) push(free, at, a);
      push(covered, a, b);
      at = b;
    }
    if (at < end) push(free, at, end);
    return { free, covered };
  }

  /** True once there are none, false if some are still unread after `graceMs`. */
  async noneWithin(graceMs: number): Promise<boolean> {
    if (this.count === 0) return true;
    let wake: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const none = await Promise.race([
      new Promise<true>((resolve) => {
        wake = () => resolve(true);
        this.waiters.push(wake);
      }),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    this.waiters = this.waiters.filter((w) => w !== wake);
    return none;
  }
}
