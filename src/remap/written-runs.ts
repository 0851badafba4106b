import type { RemapState } from './remap-state.js';
import { IntervalSet } from './run-map.js';

/** The meta context that tells written destination blocks from unwritten ones (DestinationView). */
export const WRITTEN_CONTEXT = 'x-nbd-remapper:written';
/** Its flag: the block holds data written through `destination` (after finish: every block); clear, it reads its home's current content (G3), which can change without a write to it. */
export const WRITTEN_FLAG = 1;

/**
 * Destination blocks in [d0, d1) that hold data written through
 * `destination`, wherever it is — RAM, a zero extent, a slot, or landed at
 * its home — as sorted, disjoint, merged runs, complete up to `end` (≤ d1).
 * With a `limit`, each place is asked for that many runs at most, and `end`
 * stops where the first of them was cut short: a block status answer that
 * describes `limit` runs costs that much, however fragmented the range (it
 * collected every run of 2^20 blocks, ~1 s on an event loop every client
 * shares). Work is bounded by the runs and by the RAM-held blocks, never by
 * a per-block walk of a large range.
 */
export function writtenRuns(s: RemapState, d0: number, d1: number, limit = Infinity): { runs: Array<{ start: number; end: number }>; end: number } {
  if (d1 <= d0) return { runs: [], end: d1 };
  let end = d1;
  const asked = limit === Infinity ? Infinity : limit + 1;
  const cutAfter = (runs: ReadonlyArray<{ end: number }>): void => {
    if (runs.length >= asked) end = Math.min(end, runs[runs.length - 1].end);
  };
  const written = new IntervalSet();
  const zeros = s.zeros.runsIn(d0, d1, asked);
  cutAfter(zeros);
  for (const run of zeros) written.add(run.start, run.end);
  const spilled = s.spill.runsIn(d0, d1, asked);
  cutAfter(spilled);
  for (const run of spilled) written.add(run.start, run.end);
  let landedRuns = 0;
  for (const home of s.map.homeRuns(d0, d1 - d0)) {
    if (home.dest >= end) break;
    s.landed.forEachRun(true, home.disk, home.disk + home.count, (a, b) => {
      written.add(home.dest + (a - home.disk), home.dest + (b - home.disk));
      if (++landedRuns < asked) return;
      end = Math.min(end, home.dest + (b - home.disk));
      return false;
    });
  }
  for (const d of s.ram.membersIn(d0, d1)) written.add(d, d + 1);
  return { runs: written.runsIn(d0, end), end };
}
