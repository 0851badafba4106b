import { describeFailure } from '../log/describe-failure.js';
import type { Logger } from '../log/logger.js';
import type { BlockDevice } from '../remap/block-device.js';
import { createRemapper, DEFAULT_BLOCK_SIZE } from '../remap/create-remapper.js';
import { RemapMap } from '../remap/map.js';
import type { RemapEngine } from '../remap/remap-engine.js';
import { isRetryableCommitFailure } from '../remap/state-journal.js';
import { hashBlock } from '../remap/seal-samples.js';
import type { DurableState } from './durable-state.js';
import { FileStateJournal, type FileJournalOptions, type OpenedState } from './file-state-journal.js';
import type { StateFs } from './state-fs.js';
import { identityDifferences, identityOf } from './state-identity.js';
import { StateError, StateMismatchError, StateUnusableError } from './state-errors.js';

/** The state file next to an image file: `DISK.remap-state`. */
export function defaultStatePath(diskPath: string): string {
  return `${diskPath}.remap-state`;
}

/**
 * The state path to use: the one given, else the default next to an image
 * file. A block device has no "next to" that survives (/dev is a tmpfs), so
 * there it must be given.
 */
export function resolveStatePath(o: { diskPath: string; isBlockDevice: boolean; statePath?: string }): string {
  if (o.statePath !== undefined) return o.statePath;
  if (o.isBlockDevice) {
    throw new StateError(
      `${o.diskPath} is a block device: the state file cannot live next to it`,
      'pass --state PATH on a file system that is NOT on this disk (e.g. --state /root/sdb.remap-state); keep it until finish completes',
    );
  }
  return defaultStatePath(o.diskPath);
}

/** The disk as the state functions need it: the engine's device, and its path for messages. */
export type MigrationDisk = BlockDevice & { readonly path?: string };

export interface OpenMigrationOptions {
  disk: MigrationDisk;
  diskPath: string;
  statePath: string;
  /** Default on a new migration: identity. On resume: the state's map (a map given must equal it). */
  map?: RemapMap;
  blockSize?: number;
  cacheBytes?: number;
  revisitCacheBytes?: number;
  safe?: boolean;
  log: Logger;
  /** Tests: the file system model and a small compaction threshold. */
  fs?: StateFs;
  compactBytes?: number;
  /** Tests: commit in the background once this many records wait (default 4096). */
  backgroundCommitRecords?: number;
  /** Tests: see RemapperOptions.keptEdgeBytes (a small disk is all edge by default). */
  keptEdgeBytes?: number;
  /** Tests: how often close() tries again while the state's file system is full (default CLOSE_RETRY_MS). */
  closeRetryMs?: number;
}

export interface OpenedMigration {
  engine: RemapEngine;
  /** True when an existing state was recovered (the migration continues where it stopped). */
  resumed: boolean;
  /**
   * Carries RAM-held data into the state, commits, closes the state file. The
   * disk stays open (the caller owns it). When the commit finds the state's
   * file system full and `giveUp` is given, it tries again every
   * CLOSE_RETRY_MS until it succeeds or `giveUp` settles (then it fails):
   * stopping must not drop held data over a full disk somebody can clear.
   */
  close(giveUp?: Promise<unknown>): Promise<void>;
}

/** How often a stop that found the state's file system full tries again. */
export const CLOSE_RETRY_MS = 5000;

const WRONG_STATE_FIX =
  'pass the --state file that belongs to this disk (each disk has its own; for an image file the default is DISK.remap-state next to it). ' +
  'Never start a new migration over a disk whose migration has not finished: its blocks are partly moved';

/**
 * Starts a migration with a durable state, or resumes the one recorded in
 * `statePath`. On resume the state must belong to this disk (size, block
 * size, sealed samples) and map (when `--map` is given; omitted, the state's
 * map is used); otherwise a StateMismatchError says what differs.
 */
export async function openMigration(o: OpenMigrationOptions): Promise<OpenedMigration> {
  const journalOptions: FileJournalOptions = { fs: o.fs, log: o.log, compactBytes: o.compactBytes };
  const opened = await FileStateJournal.open(o.statePath, journalOptions);
  if (opened !== undefined) {
    try {
      await checkBelongs(opened, o.disk, o.diskPath, o.statePath, o.map, o.blockSize);
      const cacheBytes = o.cacheBytes;
      const held = heldBytes(opened);
      if (cacheBytes !== undefined && held > cacheBytes) {
        throw new StateUnusableError(
          `the state ${o.statePath} holds ${held} bytes of destination data for RAM, more than the cache of ${cacheBytes} bytes`,
          `run with --cache ${held} or more (a cache at least as large as the one the migration ran with)`,
        );
      }
      const engine = createRemapper({
        device: o.disk,
        map: opened.map,
        cacheBytes,
        revisitCacheBytes: o.revisitCacheBytes,
        journal: opened.journal,
        log: o.log,
        safe: o.safe,
        restore: { state: opened.state, holds: opened.holds },
        backgroundCommitRecords: o.backgroundCommitRecords,
        keptEdgeBytes: o.keptEdgeBytes,
      });
      const st = opened.state;
      o.log.info(
        `resumed the migration in ${o.statePath}: phase ${st.phase}, ${st.released.count} block(s) released, ${st.destroyed.count} original(s) overwritten, ` +
          `${st.heldBlocks} destination block(s) held (${st.holds.size} in RAM from the state, ${st.spill.size} in slots, ${st.zeros.size} as zeroes)` +
          (st.atRisk > 0 ? `, ${st.atRisk} original(s) at risk` : ''),
      );
      engine.takeCacheMemoryInBackground();
      return { engine, resumed: true, close: closer(engine, opened.journal, o.log, o.closeRetryMs ?? CLOSE_RETRY_MS) };
    } catch (err) {
      await opened.journal.close().catch(() => undefined);
      throw err;
    }
  }
  const map = o.map ?? RemapMap.identity(o.disk.size, o.blockSize ?? DEFAULT_BLOCK_SIZE);
  if (map.diskSize !== o.disk.size) throw new RangeError(`the map was validated for a disk of ${map.diskSize} bytes, but ${o.diskPath} has ${o.disk.size}`);
  const journal = await FileStateJournal.create(o.statePath, identityOf(map, o.diskPath), map, journalOptions);
  try {
    const engine = createRemapper({
      device: o.disk,
      map,
      cacheBytes: o.cacheBytes,
      revisitCacheBytes: o.revisitCacheBytes,
      journal,
      log: o.log,
      safe: o.safe,
      backgroundCommitRecords: o.backgroundCommitRecords,
      keptEdgeBytes: o.keptEdgeBytes,
    });
    o.log.info(`new migration: state in ${o.statePath}`);
    return { engine, resumed: false, close: closer(engine, journal, o.log, o.closeRetryMs ?? CLOSE_RETRY_MS) };
  } catch (err) {
    await journal.close().catch(() => undefined);
    throw err;
  }
}

export interface FinishOfflineOptions {
  disk: MigrationDisk;
  statePath: string;
  log: Logger;
  onProgress?: (p: { done: number; total: number }) => void;
  /** RAM for breaking cycles of slots; raised to what the state holds. Default 64 MiB. */
  cacheBytes?: number;
  fs?: StateFs;
  compactBytes?: number;
  /** Tests: commit in the background once this many records wait (default 4096). */
  backgroundCommitRecords?: number;
}

/**
 * Completes (or resumes) finish without a server: lands everything the state
 * holds. Safe to run again after a crash at any point of it.
 */
export async function finishOffline(o: FinishOfflineOptions): Promise<void> {
  const diskPath = o.disk.path ?? 'the disk';
  const opened = await FileStateJournal.open(o.statePath, { fs: o.fs, log: o.log, compactBytes: o.compactBytes });
  if (opened === undefined) {
    throw new StateError(`there is no state file at ${o.statePath}: no migration to finish`, 'pass the --state PATH the server ran with (for an image file the default is DISK.remap-state next to it)');
  }
  try {
    await checkBelongs(opened, o.disk, diskPath, o.statePath, undefined, undefined);
    if (opened.state.phase === 'unsealed') {
      throw new StateError(
        `the migration in ${o.statePath} was never sealed: there is nothing to finish`,
        'serve the disk, seal the source, copy the data, then finish',
      );
    }
    const B = opened.map.blockSize;
    const engine = createRemapper({
      device: o.disk,
      map: opened.map,
      cacheBytes: Math.max(o.cacheBytes ?? 64 * 1024 * 1024, heldBytes(opened) + B),
      revisitCacheBytes: 0,
      journal: opened.journal,
      log: o.log,
      restore: { state: opened.state, holds: opened.holds },
      backgroundCommitRecords: o.backgroundCommitRecords,
    });
    await engine.finish(o.onProgress);
  } finally {
    await opened.journal.close();
  }
}

function heldBytes(opened: OpenedState): number {
  let n = 0;
  for (const data of opened.holds.values()) n += data.length;
  return n;
}

function closer(engine: RemapEngine, journal: FileStateJournal, log: Logger, retryMs: number): (giveUp?: Promise<unknown>) => Promise<void> {
  let closing: Promise<void> | undefined;
  return (giveUp) => {
    closing ??= (async () => {
      try {
        // A clean stop loses nothing: RAM-held data goes into the state.
        for (;;) {
          try {
            await engine.destination.flush();
            return;
          } catch (err) {
            if (!isRetryableCommitFailure(err) || giveUp === undefined) throw err;
            log.warn(
              `cannot stop yet: what is held in RAM does not fit in the state file. ${describeFailure(err)}. ` +
                `Trying again every ${retryMs / 1000} s; another SIGINT, SIGTERM or SIGHUP stops without it (lost, as in a crash: it was never FLUSHed)`,
            );
            let gaveUp = false;
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([new Promise((wake) => (timer = setTimeout(wake, retryMs))), giveUp.then(() => (gaveUp = true))]);
            clearTimeout(timer);
            if (gaveUp) throw err;
          }
        }
      } finally {
        await journal.close();
      }
    })();
    return closing;
  };
}

async function checkBelongs(opened: OpenedState, disk: MigrationDisk, diskPath: string, statePath: string, map: RemapMap | undefined, blockSize: number | undefined): Promise<void> {
  const differences = identityDifferences(opened.identity, { size: disk.size, path: diskPath }, map, blockSize);
  if (differences.length === 0) differences.push(...(await sampleDifferences(disk, opened.map, opened.state)));
  if (differences.length === 0) return;
  const mapOnly = differences.every((d) => d.startsWith('the map given'));
  const blockSizeOnly = differences.length === 1 && opened.identity.diskSize === disk.size && (map?.blockSize ?? blockSize) !== opened.identity.blockSize;
  throw new StateMismatchError(
    statePath,
    differences,
    mapOnly
      ? 'omit --map to resume with the map recorded in the state, or pass the map this migration started with; a different layout needs a new migration after this one finishes'
      : blockSizeOnly
        ? `pass --block-size ${opened.identity.blockSize}, the block size this migration started with (or leave --block-size and --map out: resuming takes both from the state)`
        : WRONG_STATE_FIX,
  );
}

/** Sampled originals that are not destroyed must be unchanged since sealing (only after sealing are they fixed). */
async function sampleDifferences(disk: BlockDevice, map: RemapMap, state: DurableState): Promise<string[]> {
  if (state.phase !== 'sealed' && state.phase !== 'finishing') return [];
  for (const sample of state.samples) {
    if (sample.block >= map.diskBlocks || state.destroyed.get(sample.block)) continue;
    const data = Buffer.alloc(map.diskBlockLength(sample.block));
    await disk.readInto(data, sample.block * map.blockSize);
    if (hashBlock(data) !== sample.hash) {
      return [`disk block ${sample.block} no longer holds the content it had when the source was sealed, and the state never allowed it to be overwritten: the state belongs to another disk, or something else wrote to this one`];
    }
  }
  return [];
}
