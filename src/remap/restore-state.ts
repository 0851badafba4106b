import type { DurableState } from '../state/durable-state.js';
import type { RemapState } from './remap-state.js';

/** A committed state recovered from a journal, and the data of the blocks it holds in the journal. */
export interface RestoredState {
  state: DurableState;
  holds: ReadonlyMap<number, Buffer>;
}

/**
 * Puts a fresh engine state where the committed records left the last one
 * (docs/durability.md §Recovery). Only the durable facts come back; what was
 * volatile is gone, and the rebuilt parts are conservative:
 * - `destroyed` is what committed `destroy` records say: a destroy committed
 *   for a write that never happened still counts (a source read gets EIO,
 *   never a guess); the revisit cache is empty, so every destroyed block's
 *   source read fails with EIO — never destination data (G2);
 * - slot candidates are queued in block order (release order is not kept);
 * - RAM gets back the data held in the journal, already logged.
 */
export function restoreState(s: RemapState, r: RestoredState): void {
  const d = r.state;
  const n = s.map.diskBlocks;
  if (d.map.diskBlocks !== n || d.map.destinationBlocks !== s.map.destinationBlocks) throw new RangeError('the restored state belongs to another map');
  let holdBytes = 0;
  for (const data of r.holds.values()) holdBytes += data.length;
  if (holdBytes > s.cacheBytes) throw new RangeError(`the state holds ${holdBytes} bytes of destination data in RAM; the cache (${s.cacheBytes} bytes) is smaller`);

  s.phase = d.phase;
  for (const run of d.free.all()) s.free.add(run.start, run.end);
  const copy = (from: DurableState['released'], to: RemapState['released']): void => from.forEachRun(true, 0, n, (a, b) => to.setRange(a, b));
  copy(d.released, s.released);
  copy(d.trimmed, s.trimmed);
  copy(d.holes, s.holes);
  copy(d.unconfirmed, s.unconfirmed);
  copy(d.destroyed, s.destroyed);
  copy(d.landed, s.landed);
  for (const run of d.zeros.all()) s.zeros.add(run.start, run.end);
  for (const run of d.spill.all()) {
    const count = run.end - run.start;
    s.spill.set(run.start, count, run.value);
    s.slotOwner.set(run.value, count, run.start);
    s.slotted.setRange(run.value, run.value + count);
  }
  s.atRisk = d.atRisk;
  s.checkpointNote = d.checkpointNote;
  s.anyLanded = d.anyLanded || d.landed.count > 0;

  // Slot candidates: originals already gone first (recycled), then by class; `take` skips what is no longer free.
  d.destroyed.forEachRun(true, 0, n, (a, b) => s.recycled.push(a, b - a));
  s.released.forEachRun(true, 0, n, (a, b) => {
    s.destroyed.forEachRun(false, a, b, (c, e) => {
      s.unconfirmed.forEachRun(false, c, e, (f, g) => s.offerAsSlots(f, g, true));
      s.unconfirmed.forEachRun(true, c, e, (f, g) => s.offerAsSlots(f, g, false));
    });
  });

  for (const [dest, data] of r.holds) s.ramAdmit(dest, data, true);
}
