import { formatBytes } from './bytes.js';
import { formatRate } from './rate.js';

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** How a count of work is shown: its amounts, and a rate when one means something. */
export interface ProgressUnit {
  amounts(done: number, total: number): string;
  rate?(done: number, elapsedMs: number): string;
}

export const BYTES: ProgressUnit = {
  amounts: (done, total) => `${formatBytes(done)} of ${formatBytes(total)}`,
  rate: formatRate,
};

export const BLOCKS: ProgressUnit = {
  amounts: (done, total) => `${done}/${total} blocks`,
};

const REDRAW_MS = 100;
const LINE_EVERY_MS = 5000;
const BAR_WIDTH = 30;

/**
 * Progress of long work (copy, verify, finish): a bar redrawn in place on a
 * terminal; otherwise a plain line every few seconds, so a log stays
 * readable, one when the work completes, and one saying where it stopped if
 * it did not.
 */
export class ProgressDisplay {
  private readonly started: number;
  private lastShown: number;
  private shown = false;
  private completeShown = false;
  private lastDone = -1;
  private lastTotal = 0;

  constructor(
    private readonly out: ProgressStream,
    /** What the work is called on the bar and the lines. */
    private readonly label: string,
    private readonly unit: ProgressUnit = BYTES,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
    this.lastShown = this.started;
  }

  update(done: number, total: number): void {
    this.lastDone = done;
    this.lastTotal = total;
    const now = this.now();
    const elapsed = now - this.started;
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const complete = done >= total;
    const rate = this.unit.rate?.(done, elapsed);
    if (this.out.isTTY) {
      if (now - this.lastShown < REDRAW_MS && !complete) return;
      const filled = Math.round(fraction * BAR_WIDTH);
      const left = fraction > 0 && fraction < 1 ? `  ~${Math.ceil(((elapsed / fraction) * (1 - fraction)) / 1000)} s left` : '';
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${percentOf(fraction)}  ${this.unit.amounts(done, total)}${rate === undefined ? '' : `  ${rate}`}${left}\x1b[K`);
    } else {
      // The line at completion is always written (once): a log then says how much the work did.
      if (complete ? this.completeShown : now - this.lastShown < LINE_EVERY_MS) return;
      this.completeShown = complete;
      this.out.write(`${this.label}: ${this.unit.amounts(done, total)} (${percentOf(fraction)})${rate === undefined ? '' : `, ${rate}`}\n`);
    }
    this.lastShown = now;
    this.shown = true;
  }

  /** Ends the bar's line so what follows starts on a fresh one; in a log, says where unfinished work stopped. */
  end(): void {
    if (this.out.isTTY) {
      if (this.shown) this.out.write('\n');
      return;
    }
    if (this.lastDone >= 0 && this.lastDone < this.lastTotal) {
      this.out.write(`${this.label}: stopped at ${this.unit.amounts(this.lastDone, this.lastTotal)} (${percentOf(this.lastDone / this.lastTotal)})\n`);
    }
  }
}

function percentOf(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}
