import type { RemapState } from './remap-state.js';

/** The meta context that tells written destination blocks from unwritten ones (DestinationView). */
export const WRITTEN_CONTEXT = 'nbd-remapper:written';
/** Its flag: the block holds data written through `destination` (after finish: every block); clear, it reads its home's current content (G3), which can change without a write to it. */
export const WRITTEN_FLAG = 1;

/**
 * Destination blocks in [d0, d1) that hold data written through
 * `destination`, wherever it is — RAM, a zero extent, a slot, or landed at
 * its home — as sorted, disjoint, merged runs. Work is bounded by the runs
 * and by the RAM-held blocks, never by a per-block walk of a large range.
 */
export function writtenRuns(s: RemapState, d0: number, d1: number): Array<{ start: number; end: number }> {
  if (d1 <= d0) return [];
  const pieces: Array<{ start: number; end: number }> = [];
  for (const run of s.zeros.runsIn(d0, d1)) pieces.push({ start: run.start, end: run.end });
  for (const run of s.spill.runsIn(d0, d1)) pieces.push({ start: run.start, end: run.end });
  for (const home of s.map.homeRuns(d0, d1 - d0)) {
    s.landed.forEachRun(true, home.disk, home.disk + home.count, (a, b) => {
      pieces.push({ start: home.dest + (a - home.disk), end: home.dest + (b - home.disk) });
    });
  }
  if (s.ram.size > 0) {
    if (s.ram.size < d1 - d0) {
      for (const d of s.ram.keys()) if (d >= d0 && d < d1) pieces.push({ start: d, end: d + 1 });
    } else {
      for (let d = d0; d < d1; d++) if (s.ram.has(d)) pieces.push({ start: d, end: d + 1 });
    }
  }
  pieces.sort((a, b) => a.start - b.start);
  const merged: Array<{ start: number; end: number }> = [];
  for (const piece of pieces) {
    const last = merged[merged.length - 1];
    if (last !== undefined && piece.start <= last.end) last.end = Math.max(last.end, piece.end);
    else merged.push({ ...piece });
  }
  return merged;
}
