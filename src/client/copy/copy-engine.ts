import { isAllZero } from '../../format/zero-data.js';
import { planBytes, planChunks, type CopyChunk } from './plan-chunks.js';
import type { CopyPlan } from './copy-plan.js';
import { CopyFailure } from './copy-failure.js';

/** The reading side of a copy (an NbdClient is one). */
export interface CopySource {
  /** Fills all of `into` from `offset`. */
  preadInto(into: Buffer, offset: number): Promise<void>;
}

/** The writing side of a copy (an NbdClient is one). */
export interface CopyDestination {
  readonly canWriteZeroes: boolean;
  readonly canFlush: boolean;
  pwrite(offset: number, data: Buffer): Promise<void>;
  zero(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
}

export interface CopyOptions {
  /** Largest chunk, in bytes. */
  requestSize: number;
  /** Chunks between their read being issued and their write being answered, at most. */
  maxInFlight: number;
  onProgress?(copiedBytes: number, totalBytes: number): void;
  /** The plan's first bytes are copied already (a resumed copy): they are skipped. */
  skipBytes?: number;
  checkpoints?: CopyCheckpoints;
}

/**
 * Every `every` bytes of the plan, and at the end: once everything read so
 * far is written and the destination flushed, `confirm(doneBytes)` runs
 * before the next read (a checkpoint of the source's server). Nothing is
 * read past the mark before it returns, so what it confirms is exactly the
 * plan's first `doneBytes`.
 */
export interface CopyCheckpoints {
  every: number;
  confirm(doneBytes: number): Promise<void>;
}

export interface CopySummary {
  totalBytes: number;
  /** Bytes of the plan skipped as copied by an earlier run (resumed after its last checkpoint). */
  skippedBytes: number;
  /** Checkpoints taken. */
  checkpoints: number;
  /** Bytes sent as data. */
  dataBytes: number;
  /** Bytes that were all zero and sent as WRITE_ZEROES. */
  zeroBytes: number;
  chunks: number;
  /** False when the destination offers no FLUSH. */
  flushed: boolean;
  elapsedMs: number;
}

/**
 * Runs a plan: for each chunk, read the source, then write the destination —
 * as WRITE_ZEROES when the data is all zero and the destination can (cheap
 * for the remapper, which holds zeroes as extents). Reads are issued strictly
 * in plan order, since the remapper releases source blocks as they are read;
 * at most `maxInFlight` chunks are between read and written at any time. On
 * the first failure no new chunk starts; the ones in flight finish, then the
 * failure is thrown. After the last write is answered, the destination is
 * flushed.
 */
export async function copyByPlan(source: CopySource, destination: CopyDestination, plan: CopyPlan, options: CopyOptions): Promise<CopySummary> {
  if (!Number.isInteger(options.maxInFlight) || options.maxInFlight < 1) throw new RangeError(`maxInFlight must be a positive integer, got ${options.maxInFlight}`);
  const started = Date.now();
  const skippedBytes = Math.min(options.skipBytes ?? 0, planBytes(plan));
  const totalBytes = planBytes(plan) - skippedBytes;
  // A chunk's buffer is reused once its write is answered: a copy allocates
  // (and the kernel faults in) at most maxInFlight buffers, not one per chunk.
  const buffers: Buffer[] = [];
  const summary = { totalBytes, skippedBytes, dataBytes: 0, zeroBytes: 0, chunks: 0, checkpoints: 0 };
  let active = 0;
  let failure: CopyFailure | undefined;
  let wake: (() => void) | undefined;
  const slotFreed = (): Promise<void> => new Promise((resolve) => (wake = resolve));

  const copyChunk = async (chunk: CopyChunk, data: Buffer): Promise<void> => {
    try {
      await source.preadInto(data, chunk.from);
    } catch (err) {
      throw new CopyFailure('read', chunk, err);
    }
    const allZero = destination.canWriteZeroes && isAllZero(data);
    try {
      if (allZero) await destination.zero(chunk.to, chunk.length);
      else await destination.pwrite(chunk.to, data);
    } catch (err) {
      throw new CopyFailure('write', chunk, err);
    }
    if (allZero) summary.zeroBytes += chunk.length;
    else summary.dataBytes += chunk.length;
    summary.chunks++;
    options.onProgress?.(summary.dataBytes + summary.zeroBytes, totalBytes);
  };

  const flush = async (): Promise<boolean> => {
    if (!destination.canFlush) return false;
    try {
      await destination.flush();
    } catch (err) {
      throw new CopyFailure('flush', undefined, err);
    }
    return true;
  };
  const every = options.checkpoints?.every ?? Infinity;
  if (!(every > 0)) throw new RangeError(`checkpoints.every must be positive, got ${every}`);
  /** Plan bytes whose read has been issued, counting the skipped ones. */
  let issued = skippedBytes;
  let nextMark = skippedBytes + every;
  const checkpoint = async (): Promise<void> => {
    while (active > 0) await slotFreed();
    if (failure) throw failure;
    await flush();
    await options.checkpoints?.confirm(issued);
    summary.checkpoints++;
  };

  for (const chunk of planChunks(plan, options.requestSize, skippedBytes)) {
    if (issued >= nextMark && options.checkpoints) {
      await checkpoint();
      nextMark = issued + every;
    }
    while (active >= options.maxInFlight && !failure) await slotFreed();
    if (failure) break;
    issued += chunk.length;
    active++;
    const buffer = buffers.pop() ?? Buffer.allocUnsafe(options.requestSize);
    // preadInto is called synchronously here, so reads go out in plan order.
    copyChunk(chunk, buffer.subarray(0, chunk.length))
      .catch((err: unknown) => {
        failure ??= err instanceof CopyFailure ? err : new CopyFailure('write', chunk, err);
      })
      .finally(() => {
        buffers.push(buffer);
        active--;
        wake?.();
      });
  }
  while (active > 0) await slotFreed();
  if (failure) throw failure;

  const flushed = await flush();
  if (options.checkpoints) {
    await options.checkpoints.confirm(issued);
    summary.checkpoints++;
  }
  return { ...summary, flushed, elapsedMs: Date.now() - started };
}
