import type { RemapState } from './remap-state.js';
import { IntervalSet } from './run-map.js';

/** The meta context that tells written destination blocks from unwritten ones (DestinationView). */
export const WRITTEN_CONTEXT = 'x-nbd-remapper:written';
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
  const written = new IntervalSet();
  for (const run of s.zeros.runsIn(d0, d1)) written.add(run.start, run.end);
  for (const run of s.spill.runsIn(d0, d1)) written.add(run.start, run.end);
  for (const home of s.map.homeRuns(d0, d1 - d0)) {
    s.landed.forEachRun(true, home.disk, home.disk + home.count, (a, b) => written.add(home.dest + (a - home.disk), home.dest + (b - home.disk)));
  }
  for (const d of s.ram.membersIn(d0, d1)) written.add(d, d + 1);
  return written.runsIn(d0, d1);
}
