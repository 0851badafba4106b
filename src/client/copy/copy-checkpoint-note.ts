import { createHash } from 'node:crypto';
import type { CopyPlan } from './copy-plan.js';

/**
 * What a copy leaves with each checkpoint of the remapper it copies through:
 * which plan, and how many of its bytes (in plan order) are copied, flushed
 * and confirmed. The state keeps the last one, so a copy run again after a
 * crash resumes there — re-reading confirmed source blocks could fail, since
 * their originals may be overwritten by then.
 */
export interface CopyCheckpointNote {
  /** sha256 of the plan's moves: a note of another plan is not this copy's. */
  plan: string;
  done: number;
  total: number;
}

export function planFingerprint(plan: CopyPlan): string {
  return createHash('sha256')
    .update(JSON.stringify(plan.moves.map((m) => [m.from, m.to, m.length])))
    .digest('hex');
}

export function encodeCopyNote(note: CopyCheckpointNote): string {
  return JSON.stringify({ copy: note });
}

/** The copy note in a checkpoint's note, or undefined when it is none (no note, or another tool's). */
export function decodeCopyNote(text: unknown): CopyCheckpointNote | undefined {
  if (typeof text !== 'string') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const c = (value as { copy?: Partial<CopyCheckpointNote> } | null)?.copy;
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof c?.plan !== 'string' || !count(c.done) || !count(c.total) || c.done > c.total) return undefined;
  return { plan: c.plan, done: c.done, total: c.total };
}
