import { silentLogger, type Logger } from '../log/logger.js';
import type { BlockDevice } from './block-device.js';
import { RemapMap } from './map.js';
import { RemapEngine } from './remap-engine.js';
import type { RestoredState } from './restore-state.js';
import { MemoryStateJournal, type StateJournal } from './state-journal.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CACHE_BYTES, DEFAULT_KEPT_EDGE_BYTES, DEFAULT_REVISIT_CACHE_BYTES } from './defaults.js';

export { DEFAULT_BLOCK_SIZE, DEFAULT_CACHE_BYTES, DEFAULT_REVISIT_CACHE_BYTES };

export interface RemapperOptions {
  device: BlockDevice;
  /** Default: identity over the whole disk. */
  map?: RemapMap;
  /** B; must equal map.blockSize when both are given. Default 4096. */
  blockSize?: number;
  /** RAM for held destination data (≥ one block). Default 256 MiB. */
  cacheBytes?: number;
  /** Originals kept for source revisits. Default 64 MiB; 0 disables. */
  revisitCacheBytes?: number;
  /** Default: an in-memory journal (no durability). */
  journal?: StateJournal;
  log?: Logger;
  /** Never destroy an unconfirmed original (ENOSPC instead). */
  safe?: boolean;
  /** Bytes at each end of the disk that are nobody's home yet take spilled data only when declared free. Default 1 MiB (DEFAULT_KEPT_EDGE_BYTES). */
  keptEdgeBytes?: number;
  /** Resume from the committed state of a durable journal (see src/state, openMigration). */
  restore?: RestoredState;
  /** Tests: see StateCommitterOptions. */
  backgroundCommitRecords?: number;
  /** Tests: see StateCommitterOptions. */
  slowCommitMs?: number;
  /** Tests: the most slot and RAM data one finish wave moves (FinishPlanner's WAVE_BYTES by default). */
  finishWaveBytes?: number;
}

/** The remapping engine over one disk, with its `source` and `destination` views. */
export function createRemapper(options: RemapperOptions): RemapEngine {
  const blockSize = options.blockSize ?? options.map?.blockSize ?? DEFAULT_BLOCK_SIZE;
  const map = options.map ?? RemapMap.identity(options.device.size, blockSize);
  if (map.blockSize !== blockSize) throw new RangeError(`block size ${blockSize} differs from the map's block size ${map.blockSize}`);
  if (map.diskSize !== options.device.size) {
    throw new RangeError(`the map was validated for a disk of ${map.diskSize} bytes, but the disk has ${options.device.size}`);
  }
  const cacheBytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
  if (!Number.isSafeInteger(cacheBytes) || cacheBytes < blockSize) {
    throw new RangeError(`the cache (${cacheBytes} bytes) must hold at least one block (${blockSize} bytes): finish needs it to break cycles of slots`);
  }
  return new RemapEngine({
    device: options.device,
    map,
    cacheBytes,
    revisitCacheBytes: options.revisitCacheBytes ?? DEFAULT_REVISIT_CACHE_BYTES,
    journal: options.journal ?? new MemoryStateJournal(),
    log: options.log ?? silentLogger,
    safe: options.safe ?? false,
    keptEdgeBytes: options.keptEdgeBytes ?? DEFAULT_KEPT_EDGE_BYTES,
    restore: options.restore,
    backgroundCommitRecords: options.backgroundCommitRecords,
    slowCommitMs: options.slowCommitMs,
    finishWaveBytes: options.finishWaveBytes,
  });
}
