import { formatBytes } from '../../format/bytes.js';
import { formatRate } from './copy-rate.js';

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

const REDRAW_MS = 100;
const LINE_EVERY_MS = 5000;
const BAR_WIDTH = 30;

/**
 * Copy progress in bytes: a bar redrawn in place on a terminal; a plain line
 * every few seconds otherwise, so a log stays readable.
 */
export class CopyProgress {
  private readonly started: number;
  private lastShown: number;
  private shown = false;

  constructor(
    private readonly out: ProgressStream,
    private readonly now: () => number = Date.now,
    /** What the work is called on the bar and the lines (`verify` reads without copying). */
    private readonly label = 'copy',
  ) {
    this.started = now();
    this.lastShown = this.started;
  }

  update(done: number, total: number): void {
    const now = this.now();
    const elapsed = now - this.started;
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const percent = `${(fraction * 100).toFixed(1)}%`;
    const amounts = `${formatBytes(done)} of ${formatBytes(total)}`;
    if (this.out.isTTY) {
      if (now - this.lastShown < REDRAW_MS && done < total) return;
      const filled = Math.round(fraction * BAR_WIDTH);
      const left = fraction > 0 && fraction < 1 ? `  ~${Math.ceil(((elapsed / fraction) * (1 - fraction)) / 1000)} s left` : '';
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${percent}  ${amounts}  ${formatRate(done, elapsed)}${left}\x1b[K`);
    } else {
      if (now - this.lastShown < LINE_EVERY_MS) return;
      this.out.write(`${this.label}: ${amounts} (${percent}), ${formatRate(done, elapsed)}\n`);
    }
    this.lastShown = now;
    this.shown = true;
  }

  /** Ends the bar's line so what follows starts on a fresh one. */
  end(): void {
    if (this.out.isTTY && this.shown) this.out.write('\n');
  }
}
