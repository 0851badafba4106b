import { fixOf, messageOf } from '../log/describe-failure.js';
import type { FinishProgress } from './finish-planner.js';
import type { Phase } from './block-layout.js';
import type { RemapState } from './remap-state.js';
import type { JournalInfo } from './state-journal.js';

/** What survives a crash right now, and what does not (docs/durability.md). */
export type DurabilityStatus = {
  /** The state file, or null when the journal keeps nothing across a crash (no --state). */
  journal: JournalInfo | null;
  /** RAM-held destination blocks written since the last FLUSH: lost on a crash until the next FLUSH or FUA. */
  heldInRamVolatile: number;
  /** RAM-held destination blocks whose data is in the state file already. */
  heldInRamDurable: number;
  /** State records appended but not committed yet. */
  recordsVolatile: number;
  /** Originals overwritten before a checkpoint confirmed them: redoing the copy from the last checkpoint cannot read them. */
  originalsAtRisk: number;
  /**
   * Why state commits fail, or null: `final` — they stopped (a restart resumes
   * from the last one); otherwise the last one failed and the next FLUSH tries again.
   */
  failure: { message: string; fix: string; final: boolean } | null;
  /** Advice when something is blocked or at risk, or null. */
  hint: string | null;
};

/** What `nbd-remapper status` shows: plain JSON. Block counts are in blocks of `blockSize` bytes. */
export type RemapStatus = {
  phase: Phase;
  blockSize: number;
  diskBlocks: number;
  destinationBlocks: number;
  safe: boolean;
  /** Before sealing: disk blocks declared free by a TRIM of source (fstrim, blkdiscard), released when sealed. */
  declaredFree: number;
  /** Disk blocks whose original is no longer needed. */
  released: number;
  /** Of those, blocks a block-status reply told a client are a hole (their originals are zeroes). */
  releasedAsHoles: number;
  /** Released blocks a checkpoint has confirmed. */
  confirmed: number;
  /** Unconfirmed originals already overwritten: lost if the copy has to be redone after a crash. */
  atRisk: number;
  /** The note of the last checkpoint that had one (a copier's progress: `nbd-remapper copy --control` resumes after it), or null. */
  checkpointNote: string | null;
  /** Disk blocks whose original has been overwritten (landed data or spill slots). */
  originalsOverwritten: number;
  heldInRam: number;
  heldInRamBytes: number;
  heldAsZero: number;
  spilled: number;
  landed: number;
  cacheBytes: number;
  cacheLimitBytes: number;
  /** `originals`: disk blocks whose originals are kept; `entries`: the captured chunks that hold them. */
  revisitCache: { hits: number; misses: number; entries: number; originals: number; bytes: number; limitBytes: number };
  /** Destination writes refused for lack of RAM and slots. */
  enospc: number;
  lastEnospc: string | null;
  /** Some destination data has landed: from here on the old layout cannot be restored. */
  destinationLanded: boolean;
  sourceClients: number;
  destinationClients: number;
  /** During finish. */
  finish: FinishProgress | null;
  /** State records appended and committed (committed ones are durable when `durability.journal` is set). */
  stateRecords: { appended: number; committed: number };
  durability: DurabilityStatus;
};

export function statusOf(s: RemapState, finish: FinishProgress | null): RemapStatus {
  return {
    phase: s.phase,
    blockSize: s.B,
    diskBlocks: s.map.diskBlocks,
    destinationBlocks: s.map.destinationBlocks,
    safe: s.safe,
    declaredFree: s.free.size,
    released: s.released.count,
    releasedAsHoles: s.holes.count,
    confirmed: s.released.count - s.unconfirmed.count,
    atRisk: s.atRisk,
    checkpointNote: s.checkpointNote ?? null,
    originalsOverwritten: s.destroyed.count,
    heldInRam: s.ram.size,
    heldInRamBytes: s.ramBytes,
    heldAsZero: s.zeros.size,
    spilled: s.spill.size,
    landed: s.landed.count,
    cacheBytes: s.ramInUseBytes,
    cacheLimitBytes: s.cacheBytes,
    revisitCache: { hits: s.revisit.hits, misses: s.revisit.misses, entries: s.revisit.entries, originals: s.revisit.originals, bytes: s.revisit.bytes, limitBytes: s.revisit.maxBytes },
    enospc: s.enospcCount,
    lastEnospc: s.lastEnospc ?? null,
    destinationLanded: s.anyLanded,
    sourceClients: s.sourceClients.size,
    destinationClients: s.destinationClients.size,
    finish,
    stateRecords: { appended: s.committer.lastSeq, committed: s.committer.committed },
    durability: durabilityOf(s),
  };
}

function durabilityOf(s: RemapState): DurabilityStatus {
  const journal = s.committer.durable ? (s.committer.journalInfo() ?? null) : null;
  const volatile = s.committer.durable ? s.ramDirty.size : s.ram.size;
  let hint: string | null = null;
  if (s.safeBlocked && s.phase === 'sealed') {
    hint = '--safe refuses to overwrite originals not confirmed yet: sync the new filesystems, then run `nbd-remapper checkpoint`';
  } else if (s.atRisk > 0) {
    hint = `${s.atRisk} original(s) overwritten before a checkpoint: run \`nbd-remapper checkpoint\` after syncing the new filesystems`;
  } else if (!s.committer.durable && s.phase !== 'finished') {
    hint = 'no state file: nothing survives a crash';
  }
  const final = s.committer.failed !== undefined;
  const failed = final ? s.committer.failed : s.committer.lastRetryableFailure;
  const failure =
    failed === undefined
      ? null
      : {
          message: messageOf(failed),
          fix: fixOf(failed) ?? (final ? 'see the server log; restart the server: it resumes from the last commit' : 'see the server log'),
          final,
        };
  return {
    journal,
    failure,
    heldInRamVolatile: volatile,
    heldInRamDurable: s.ram.size - volatile,
    recordsVolatile: s.committer.lastSeq - s.committer.committed,
    originalsAtRisk: s.atRisk,
    hint,
  };
}
