import { Errno, NbdError } from 'nbd-protocol-ts';
import { fixOf } from '../../log/describe-failure.js';
import type { CopyChunk } from './plan-chunks.js';

export type CopyStep = 'read' | 'write' | 'flush';

/**
 * A copy that stopped: which step failed on which chunk, why (the server's
 * errno and message), and what the person can do about it. The advice knows
 * the remapper: a destination that is out of room or refuses writes is most
 * likely nbd-remapper short of cache, or not yet sealed.
 */
export class CopyFailure extends Error {
  override readonly name = 'CopyFailure';
  readonly fix: string;

  constructor(
    readonly step: CopyStep,
    readonly chunk: CopyChunk | undefined,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const errno = cause instanceof NbdError ? cause.errno : undefined;
    const [explanation, fix] = advise(step, errno, cause);
    super(`${whatFailed(step, chunk)}: ${reason}${explanation ? `\n  ${explanation}` : ''}`, { cause });
    this.fix = fix;
  }
}

function whatFailed(step: CopyStep, chunk: CopyChunk | undefined): string {
  const where = chunk ? ` (move ${chunk.move + 1}, source bytes ${chunk.from}..${chunk.from + chunk.length}, destination bytes ${chunk.to}..${chunk.to + chunk.length})` : '';
  if (step === 'read') return `copy stopped reading the source${where}`;
  if (step === 'write') return `copy stopped writing the destination${where}`;
  return 'copy could not flush the destination after writing everything';
}

function advise(step: CopyStep, errno: number | undefined, cause: unknown): [string | undefined, string] {
  if (step === 'write' && errno === Errno.ENOSPC) {
    return [
      'the destination has no room: if it is nbd-remapper, it ran out of cache and spill room (held writes filled --cache and no released block was left to spill into)',
      'check `nbd-remapper status` (held, spilled, ENOSPC count); restart `nbd-remapper serve` with a larger --cache, or copy in an order that reads a block before its new content arrives; then run the copy again',
    ];
  }
  if (step === 'write' && errno === Errno.EPERM) {
    return [
      'the destination refuses writes: if it is nbd-remapper, the source is probably not sealed yet',
      'run `nbd-remapper seal` (after fstrim of the old filesystems), then run the copy again',
    ];
  }
  if (step === 'read' && errno === Errno.EIO) {
    return [
      'if the source is nbd-remapper, the original of a block read again after it was overwritten may be gone',
      'see the source server\'s log, which names the block; copy each source range once, in order',
    ];
  }
  const ownFix = fixOf(cause);
  if (ownFix !== undefined) return [undefined, ownFix];
  if (step === 'flush') return [undefined, 'see the destination server\'s log: what was written may not be durable; run the copy again'];
  return [undefined, `see the ${step === 'read' ? 'source' : 'destination'} server's log for why, then run the copy again`];
}
