import type { FinishProgress } from './finish-planner.js';
import type { Phase, RemapState } from './remap-state.js';

/** What `nbd-remapper status` shows: plain JSON. Block counts are in blocks of `blockSize` bytes. */
export type RemapStatus = {
  phase: Phase;
  blockSize: number;
  diskBlocks: number;
  destinationBlocks: number;
  safe: boolean;
  /** Disk blocks whose original is no longer needed. */
  released: number;
  /** Released blocks a checkpoint has confirmed. */
  confirmed: number;
  /** Unconfirmed originals already overwritten: lost if the copy has to be redone after a crash. */
  atRisk: number;
  /** Disk blocks whose original has been overwritten (landed data or spill slots). */
  originalsOverwritten: number;
  heldInRam: number;
  heldInRamBytes: number;
  heldAsZero: number;
  spilled: number;
  landed: number;
  cacheBytes: number;
  cacheLimitBytes: number;
  revisitCache: { hits: number; misses: number; entries: number; bytes: number; limitBytes: number };
  /** Destination writes refused for lack of RAM and slots. */
  enospc: number;
  lastEnospc: string | null;
  /** Some destination data has landed: from here on the old layout cannot be restored. */
  destinationLanded: boolean;
  sourceClients: number;
  destinationClients: number;
  /** During finish. */
  finish: FinishProgress | null;
  /** State records appended and committed (durable once issue 4's journal is in place). */
  stateRecords: { appended: number; committed: number };
};

export function statusOf(s: RemapState, finish: FinishProgress | null): RemapStatus {
  return {
    phase: s.phase,
    blockSize: s.B,
    diskBlocks: s.map.diskBlocks,
    destinationBlocks: s.map.destinationBlocks,
    safe: s.safe,
    released: s.released.count,
    confirmed: s.released.count - s.unconfirmed.count,
    atRisk: s.atRisk,
    originalsOverwritten: s.destroyed.count,
    heldInRam: s.ram.size,
    heldInRamBytes: s.ramBytes,
    heldAsZero: s.zeros.size,
    spilled: s.spill.size,
    landed: s.landed.count,
    cacheBytes: s.ramBytes,
    cacheLimitBytes: s.cacheBytes,
    revisitCache: { hits: s.revisit.hits, misses: s.revisit.misses, entries: s.revisit.entries, bytes: s.revisit.bytes, limitBytes: s.revisit.maxBytes },
    enospc: s.enospcCount,
    lastEnospc: s.lastEnospc ?? null,
    destinationLanded: s.anyLanded,
    sourceClients: s.sourceClients.size,
    destinationClients: s.destinationClients.size,
    finish,
    stateRecords: { appended: s.committer.lastSeq, committed: s.committer.committed },
  };
}
