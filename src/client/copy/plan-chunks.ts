import type { CopyPlan } from './copy-plan.js';

/** One request's worth of a move: read [from, from+length) of the source, write it at `to`. */
export interface CopyChunk {
  /** Index of the move in the plan. */
  move: number;
  from: number;
  to: number;
  length: number;
}

/**
 * The moves cut into chunks of at most `requestSize` bytes, in plan order and
 * within a move in ascending source order — the order reads are issued in.
 * `skipBytes`: the plan's first bytes (in that order) are done already (a
 * resumed copy); moves keep their numbers. Lazy: a plan of a whole terabyte
 * disk never exists as an array of chunks.
 */
export function* planChunks(plan: CopyPlan, requestSize: number, skipBytes = 0): Generator<CopyChunk> {
  if (!Number.isSafeInteger(requestSize) || requestSize < 1) throw new RangeError(`request size must be a positive integer, got ${requestSize}`);
  let skip = skipBytes;
  for (let move = 0; move < plan.moves.length; move++) {
    const { from, to, length } = plan.moves[move];
    const start = Math.min(skip, length);
    skip -= start;
    for (let done = start; done < length; done += requestSize) {
      yield { move, from: from + done, to: to + done, length: Math.min(requestSize, length - done) };
    }
  }
}

export function planBytes(plan: CopyPlan): number {
  return plan.moves.reduce((sum, m) => sum + m.length, 0);
}
