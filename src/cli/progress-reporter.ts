/**
 * Progress of long work: a redrawn bar on a terminal, a plain line every few
 * seconds (and at the end) otherwise, so logs stay readable.
 */
export class ProgressReporter {
  private lastPrint = 0;
  private lastDone = -1;
  private total = 0;
  private readonly started = Date.now();

  constructor(
    private readonly label: string,
    private readonly out: NodeJS.WriteStream,
  ) {}

  update(done: number, total: number): void {
    this.total = total;
    this.lastDone = done;
    const now = Date.now();
    if (this.out.isTTY) {
      if (now - this.lastPrint < 100 && done < total) return;
      this.lastPrint = now;
      const width = 30;
      const fraction = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(fraction * width);
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1)}% ${done}/${total} blocks ${this.eta(fraction)}`);
    } else if (now - this.lastPrint >= 5000 || done === total) {
      this.lastPrint = now;
      this.out.write(`${this.label}: ${done}/${total} blocks (${total > 0 ? ((done / total) * 100).toFixed(1) : '100.0'}%)\n`);
    }
  }

  end(): void {
    if (this.out.isTTY && this.lastDone >= 0) this.out.write('\n');
    else if (!this.out.isTTY && this.lastDone >= 0 && this.lastDone !== this.total) this.out.write(`${this.label}: stopped at ${this.lastDone}/${this.total} blocks\n`);
  }

  private eta(fraction: number): string {
    if (fraction <= 0 || fraction >= 1) return '';
    const elapsed = (Date.now() - this.started) / 1000;
    return `~${Math.ceil((elapsed / fraction) * (1 - fraction))}s left`;
  }
}
