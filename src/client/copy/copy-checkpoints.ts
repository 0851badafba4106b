import { createHash } from 'node:crypto';
import { ControlClient } from '../../control/control-client.js';
import { formatBytes } from '../../format/bytes.js';
import type { CopyCheckpoints } from './copy-engine.js';
import type { CopyPlan } from './copy-plan.js';
import { planBytes } from './plan-chunks.js';

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

/**
 * A copy through the remapper whose control socket is `controlPath`: where
 * to resume (the bytes of the plan its last checkpoint confirmed, when that
 * checkpoint was this plan's), and the checkpoints to take as it goes. Under
 * --safe, held writes wait in the cache until a checkpoint: they are taken
 * at least every half cache.
 */
/**
 * How often to checkpoint. A --safe server (`safeCache`: its cache) destroys
 * no unconfirmed original, so what the copy writes between checkpoints must
 * fit half its cache; otherwise `wanted`. `why` explains a change.
 */
export function checkpointInterval(wanted: number, requestSize: number, safeCache: number | undefined): { every: number; why?: string } {
  if (safeCache === undefined || wanted <= safeCache / 2) return { every: wanted };
  const cache = formatBytes(safeCache);
  if (requestSize > safeCache / 2) {
    return {
      every: requestSize,
      why:
        `checkpointing after every request: the server runs with --safe and a ${cache} cache, and one request of ${formatBytes(requestSize)} is more than half of it; ` +
        `a --request-size of ${formatBytes(Math.max(1, Math.floor(safeCache / 2)))} or less (or a larger --cache on the server) leaves room for the writes between checkpoints`,
    };
  }
  const every = Math.floor(safeCache / 2 / requestSize) * requestSize;
  return { every, why: `checkpointing every ${formatBytes(every)}: the server runs with --safe and a ${cache} cache, which would fill before a checkpoint every ${formatBytes(wanted)}` };
}

export async function checkpointedCopy(
  controlPath: string,
  plan: CopyPlan,
  requestSize: number,
  wantedEvery: number,
  note: (line: string) => void,
): Promise<{ skipBytes: number; checkpoints: CopyCheckpoints }> {
  const control = new ControlClient(controlPath);
  const status = await control.status();
  const fingerprint = planFingerprint(plan);
  const total = planBytes(plan);
  let skipBytes = 0;
  const last = decodeCopyNote(status.checkpointNote);
  if (last !== undefined && last.plan === fingerprint && last.total === total) {
    skipBytes = last.done;
    note(
      last.done === total
        ? 'the last checkpoint says this copy is complete already: nothing to copy'
        : `resuming after the last checkpoint: ${formatBytes(last.done)} of ${formatBytes(total)} (${last.done} bytes) are copied already`,
    );
  } else if (last !== undefined) {
    note('the last checkpoint belongs to another copy plan: copying this one from its start');
  }
  const interval = checkpointInterval(wantedEvery, requestSize, status.safe === true && typeof status.cacheLimitBytes === 'number' ? status.cacheLimitBytes : undefined);
  if (interval.why !== undefined) note(interval.why);
  const every = interval.every;
  return {
    skipBytes,
    checkpoints: {
      every,
      confirm: async (done) => {
        await control.checkpoint(encodeCopyNote({ plan: fingerprint, done, total }));
      },
    },
  };
}
