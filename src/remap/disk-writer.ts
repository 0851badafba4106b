import type { CapturedChunk } from './capture-registry.js';
import type { TrackedIo } from './disk-io-tracker.js';
import type { RemapState } from './remap-state.js';
import { ZERO_CHUNK_BYTES, zeroes } from './zero-data.js';

/** Revisit-cache entries are at least this big (fewer, larger entries; one read each). */
const CAPTURE_CHUNK_BYTES = 64 * 1024;

function chunkStarts(start: number, end: number, step: number): number[] {
  const out: number[] = [];
  for (let p = start; p < end; p += step) out.push(p);
  return out;
}

/** A run of consecutive disk blocks to write: data back to back (one buffer or several), or zeroes. */
export interface WriteRun {
  disk: number;
  count: number;
  data: Buffer | readonly Buffer[] | 'zero';
}

/** A write decided in a synchronous step, to be carried out by `execute`. */
export interface PlannedWrite {
  readonly runs: readonly WriteRun[];
  readonly tracked: readonly TrackedIo[];
  readonly captures: ReadonlyArray<{ start: number; end: number; resolve(data: CapturedChunk[] | undefined): void; remove(): void }>;
  /** Commit through this journal sequence number before writing (0: no barrier). */
  readonly barrierSeq: number;
}

/**
 * Every disk write of the engine goes through here (the destroy protocol,
 * docs/remap-engine.md). `plan` is the decision step: it registers the write
 * with the I/O tracker, marks originals destroyed (counting the unconfirmed
 * ones as at risk), appends their `destroy` record and registers captures for
 * the revisit cache. `execute` then captures the originals, commits through
 * the barrier (the record that allows the overwrite is durable first), waits
 * for earlier overlapping I/O and writes.
 */
export class DiskWriter {
  constructor(private readonly s: RemapState) {}

  /**
   * `barrier`: the write reuses blocks freed by earlier records (or destroys
   * originals), so everything appended so far must be committed first. A
   * write of a block's own newer data to where it already lives passes false.
   */
  plan(runs: readonly WriteRun[], barrier: boolean): PlannedWrite {
    const s = this.s;
    const tracked: TrackedIo[] = [];
    const captures: Array<PlannedWrite['captures'][number]> = [];
    let destroyedAny = false;
    for (const run of runs) {
      const end = run.disk + run.count;
      tracked.push(s.io.register('write', run.disk, end));
      s.destroyed.forEachRun(false, run.disk, end, (a, b) => {
        destroyedAny = true;
        s.destroyed.setRange(a, b);
        s.atRisk += s.unconfirmed.countRange(a, b);
        s.committer.append({ type: 'destroy', start: a, count: b - a });
        // Not kept: originals of blocks the filesystem declared free (nobody should read them again), and
        // anything destroyed while finishing (the source has no clients and is about to go away).
        if (!s.revisit.enabled || s.phase === 'finishing') return;
        s.trimmed.forEachRun(false, a, b, (c0, c1) => captures.push({ start: c0, end: c1, ...s.captures.register(c0, c1) }));
      });
    }
    const barrierSeq = barrier || destroyedAny ? s.committer.lastSeq : 0;
    return { runs, tracked, captures, barrierSeq };
  }

  async execute(plan: PlannedWrite): Promise<void> {
    const s = this.s;
    try {
      await Promise.all(plan.tracked.map((t) => t.ready));
      if (plan.captures.length > 0) await Promise.all(plan.captures.map((c) => this.capture(c)));
      if (plan.barrierSeq > 0) await s.committer.commitThrough(plan.barrierSeq);
      await Promise.all(plan.runs.map((run) => this.writeRun(run)));
    } finally {
      for (const t of plan.tracked) t.done();
      for (const c of plan.captures) c.remove();
    }
  }

  /** Plan and execute in one go (for callers with nothing to decide in between). */
  write(runs: readonly WriteRun[], barrier: boolean): Promise<void> {
    return this.execute(this.plan(runs, barrier));
  }

  /** Reads the originals of a capture in chunks of at least 128 KiB, each kept as one revisit-cache entry. */
  private async capture(c: PlannedWrite['captures'][number]): Promise<void> {
    const s = this.s;
    const B = s.B;
    const chunkBlocks = Math.max(1, Math.floor(CAPTURE_CHUNK_BYTES / B));
    let chunks: CapturedChunk[];
    try {
      chunks = await Promise.all(
        chunkStarts(c.start, c.end, chunkBlocks).map(async (first) => {
          const last = Math.min(c.end, first + chunkBlocks) - 1;
          const data = s.revisit.buffer((last - first) * B + s.map.diskBlockLength(last));
          await s.device.readInto(data, first * B);
          s.revisit.put(first, data);
          return { start: first, data };
        }),
      );
    } catch (err) {
      s.log.warn(`could not keep the originals of disk blocks ${c.start}…${c.end - 1} for revisits: ${(err as Error).message}`);
      c.resolve(undefined);
      return;
    }
    c.resolve(chunks);
  }

  private async writeRun(run: WriteRun): Promise<void> {
    const s = this.s;
    const offset = run.disk * s.B;
    if (Buffer.isBuffer(run.data)) {
      await s.device.write(offset, run.data);
      return;
    }
    if (run.data !== 'zero') {
      await (s.device.writev !== undefined ? s.device.writev(offset, run.data) : s.device.write(offset, Buffer.concat(run.data)));
      return;
    }
    const end = (run.disk + run.count - 1) * s.B + s.map.diskBlockLength(run.disk + run.count - 1);
    if (s.device.writeZeroes !== undefined) {
      await s.device.writeZeroes(offset, end - offset);
      return;
    }
    for (let at = offset; at < end; at += ZERO_CHUNK_BYTES) {
      await s.device.write(at, zeroes(Math.min(ZERO_CHUNK_BYTES, end - at)));
    }
  }
}
