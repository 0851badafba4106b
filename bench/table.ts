/** Collecting samples across rounds and printing Markdown tables of medians, ratios and targets. */

export class Samples {
  private readonly values = new Map<string, number[]>();

  add(key: string, value: number): void {
    const list = this.values.get(key) ?? [];
    list.push(value);
    this.values.set(key, list);
  }

  /** Median of what was recorded under key (NaN when nothing was). */
  median(key: string): number {
    const xs = [...(this.values.get(key) ?? [])].sort((a, b) => a - b);
    if (xs.length === 0) return NaN;
    const mid = Math.floor(xs.length / 2);
    return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
  }

  all(key: string): readonly number[] {
    return this.values.get(key) ?? [];
  }
}

/** A ratio target: ours/peer must be at least (`min`) or at most (`max`) the bound. */
export interface Target {
  kind: 'min' | 'max';
  bound: number;
}

export const atLeast = (bound: number): Target => ({ kind: 'min', bound });
export const atMost = (bound: number): Target => ({ kind: 'max', bound });

export function describeTarget(target: Target | undefined): string {
  if (!target) return '—';
  return `${target.kind === 'min' ? '≥' : '≤'} ${target.bound.toFixed(2)}`;
}

export function verdict(ratio: number, target: Target | undefined): string {
  if (!target) return '—';
  if (!Number.isFinite(ratio)) return 'n/a';
  const met = target.kind === 'min' ? ratio >= target.bound : ratio <= target.bound;
  return met ? 'yes' : '**NO**';
}

export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

export const formatRatio = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

export function printTable(title: string, header: string[], rows: string[][], notes: string[] = []): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(`\n### ${title}\n`);
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
  if (notes.length > 0) console.log('');
  for (const note of notes) console.log(`${note}`);
}

/** A line to stderr: progress that must not mix into the tables on stdout. */
export function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}
