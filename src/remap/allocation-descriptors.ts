import { AllocationFlag, type StatusDescriptor } from 'nbd-protocol-ts';
import type { BlockDevice } from './block-device.js';
import type { BytePiece } from './map.js';
import { MAX_STATUS_RUNS } from './run-descriptors.js';

/**
 * base:allocation of consecutive export byte pieces from the device's hole
 * map (all data when the device cannot tell). Adjacent descriptors with the
 * same flags merge; together they cover exactly the pieces — or, once the
 * device has described MAX_STATUS_RUNS extents, the pieces up to there (the
 * spec lets an answer cover less than asked): a fragmented image of a
 * terabyte would otherwise cost millions of seeks and descriptors for one
 * request.
 */
export async function allocationDescriptors(device: BlockDevice, pieces: readonly BytePiece[]): Promise<StatusDescriptor[]> {
  const out: StatusDescriptor[] = [];
  const push = (length: number, flags: number): void => append(out, length, flags);
  let budget = MAX_STATUS_RUNS;
  for (const piece of pieces) {
    if (device.allocation === undefined) {
      push(piece.length, 0);
      continue;
    }
    const extents = await device.allocation(piece.diskOffset, piece.length, budget);
    let covered = 0;
    for (const e of extents) {
      const length = Math.min(e.length, piece.length - covered);
      push(length, e.data ? 0 : AllocationFlag.HOLE | AllocationFlag.ZERO);
      covered += length;
    }
    budget -= extents.length;
    // The device stopped at the budget: the answer ends here.
    if (budget <= 0 && covered < piece.length) return out;
    // Whatever the device did not describe counts as data.
    push(piece.length - covered, 0);
    if (budget <= 0) return out;
  }
  return out;
}

/**
 * `descriptors` (from `offset`, back to back) with the byte ranges of `holes`
 * (sorted, disjoint, inside them) reported as HOLE|ZERO; neighbours with the
 * same flags merged.
 */
export function withHoles(descriptors: readonly StatusDescriptor[], offset: number, holes: ReadonlyArray<{ start: number; end: number }>): StatusDescriptor[] {
  const out: StatusDescriptor[] = [];
  let h = 0;
  let at = offset;
  for (const d of descriptors) {
    const end = at + d.length;
    while (at < end) {
      while (h < holes.length && holes[h].end <= at) h++;
      const hole = holes[h];
      if (hole === undefined || hole.start >= end) {
        append(out, end - at, d.flags);
        at = end;
      } else if (hole.start > at) {
        append(out, hole.start - at, d.flags);
        at = hole.start;
      } else {
        const to = Math.min(end, hole.end);
        append(out, to - at, AllocationFlag.HOLE | AllocationFlag.ZERO);
        at = to;
      }
    }
  }
  return out;
}

/** The first `length` bytes of back-to-back `descriptors`. */
export function clipDescriptors(descriptors: readonly StatusDescriptor[], length: number): StatusDescriptor[] {
  const out: StatusDescriptor[] = [];
  let left = length;
  for (const d of descriptors) {
    if (left <= 0) break;
    out.push({ length: Math.min(d.length, left), flags: d.flags });
    left -= d.length;
  }
  return out;
}

/** Adds `length` bytes of `flags`, merged into the last descriptor when its flags are the same. */
function append(out: StatusDescriptor[], length: number, flags: number): void {
  if (length <= 0) return;
  const last = out[out.length - 1];
  if (last !== undefined && last.flags === flags) last.length += length;
  else out.push({ length, flags });
}
