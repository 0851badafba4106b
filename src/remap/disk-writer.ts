import type { CapturedChunk } from './capture-registry.js';
import type { TrackedIo } from './disk-io-tracker.js';
import type { RemapState } from './remap-state.js';
import { zeroRange } from './block-device.js';

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
  /**
   * The write only destroys originals (every block it writes was never
   * destroyed before this plan, so no record points at it or freed it): the
   * barrier needs only the `destroy`/`release` records, not the `spill`/`land`
   * records pending ahead of them (`StateCommitter.commitPermissionsThrough`).
   */
  readonly permissionsOnly: boolean;
  /**
   * Blocks this write overwrites on the strength of a `destroy` record its
   * barrier commits, with that record's sequence number: those it destroys
   * itself and those destroyed ahead (not the ones `ahead` destroys for later).
   */
  readonly permits: ReadonlyArray<{ start: number; end: number; seq: number }>;
}

/**
 * Every disk write of the engine goes through here (the destroy protocol,
 * docs/remap-engine.md). `plan` is the decision step: it registers the write
 * with the I/O tracker, marks originals destroyed (counting the unconfirmed
 * ones as at risk), appends their `destroy` record and registers captures for
 * the revisit cache. `execute` then, side by side, commits through the
 * barrier (the record that allows the overwrite is durable first) and waits
 * for earlier overlapping I/O and captures the originals; then it writes.
 */
export class DiskWriter {
  constructor(private readonly s: RemapState) {}

  /**
   * `barrier`: the write reuses blocks freed by earlier records (or destroys
   * originals), so everything appended so far must be committed first. A
   * write of a block's own newer data to where it already lives passes false.
   */
  plan(runs: readonly WriteRun[], barrier: boolean, ahead: ReadonlyArray<{ start: number; end: number }> = []): PlannedWrite {
    const s = this.s;
    const tracked: TrackedIo[] = [];
    const captures: Array<PlannedWrite['captures'][number]> = [];
    let destroyedAny = false;
    // Blocks this write destroys, or that were destroyed ahead and not written since: they need only their permission.
    let freshBlocks = 0;
    let permitSeq = 0;
    let blocks = 0;
    // The originals of [a, b) are read for the revisit cache before this write overwrites them. Not kept:
    // originals of blocks the filesystem declared free (nobody should read them again), of holes (zeroes,
    // served as such), and anything destroyed while finishing (the source has no clients and is about to go away).
    const capture = (a: number, b: number): void => {
      if (!s.revisit.enabled || s.phase === 'finishing') return;
      s.trimmed.forEachRun(false, a, b, (t0, t1) =>
        s.holes.forEachRun(false, t0, t1, (c0, c1) => captures.push({ start: c0, end: c1, ...s.captures.register(c0, c1) })),
      );
    };
    const permits: Array<{ start: number; end: number; seq: number }> = [];
    const destroy = (a: number, b: number, isAhead: boolean): void => {
      s.destroyed.setRange(a, b);
      s.atRisk += s.unconfirmed.countRange(a, b);
      const seq = s.committer.append({ type: 'destroy', start: a, count: b - a });
      permitSeq = Math.max(permitSeq, seq);
      if (!isAhead) {
        permits.push({ start: a, end: b, seq });
        capture(a, b);
        return;
      }
      // Destroyed ahead: still on the disk, and source reads are served from it (SourcePath) until a write
      // is planned for the block; that write captures it (below), so the revisit cache holds only what is gone.
      s.destroyedAhead.assign(a, b, seq);
    };
    for (const run of runs) {
      const end = run.disk + run.count;
      blocks += run.count;
      tracked.push(s.io.register('write', run.disk, end));
      if (s.destroyedAhead.size > 0) {
        const ahead = s.destroyedAhead.collect(run.disk, end);
        if (ahead.length > 0) s.destroyedAhead.remove(run.disk, end);
        // Touching runs are one capture whatever their records: the chunks it reads do not depend on them.
        let from = -1;
        let to = -1;
        for (const r of ahead) {
          if (r.start !== to) {
            if (from >= 0) capture(from, to);
            from = r.start;
          }
          to = r.end;
          const last = permits[permits.length - 1];
          if (last !== undefined && last.end === r.start && last.seq === r.value) last.end = r.end;
          else permits.push({ start: r.start, end: r.end, seq: r.value });
          freshBlocks += r.end - r.start;
          permitSeq = Math.max(permitSeq, r.value);
        }
        if (from >= 0) capture(from, to);
      }
      s.destroyed.forEachRun(false, run.disk, end, (a, b) => {
        destroyedAny = true;
        freshBlocks += b - a;
        destroy(a, b, false);
      });
    }
    for (const r of ahead) s.destroyed.forEachRun(false, r.start, r.end, (a, b) => destroy(a, b, true));
    let barrierSeq = 0;
    let permissionsOnly = false;
    if (blocks > 0 && freshBlocks === blocks && permitSeq > 0) {
      // Every block written is destroyed by this plan or destroyed ahead and untouched since: no record
      // points at it or freed it, so only the permissions are needed (not the spill/land records ahead of them).
      barrierSeq = permitSeq;
      permissionsOnly = true;
    } else if (barrier || destroyedAny || permitSeq > 0) {
      // A block destroyed before this plan may be a slot or home freed by a record still pending: reusing it
      // needs everything committed.
      barrierSeq = s.committer.lastSeq;
    }
    return { runs, tracked, captures, barrierSeq, permissionsOnly, permits };
  }

  async execute(plan: PlannedWrite): Promise<void> {
    const s = this.s;
    // Capture buffers a source read may copy from until the capture is removed (RevisitCache.unpin).
    const pinned: Buffer[] = [];
    try {
      // The barrier and the captures both come before the write, in either order: they run side by side.
      const barrier =
        plan.barrierSeq === 0
          ? undefined
          : plan.permissionsOnly
            ? s.committer.commitPermissionsThrough(plan.barrierSeq)
            : s.committer.commitThrough(plan.barrierSeq);
      const captured = (async (): Promise<void> => {
        await Promise.all(plan.tracked.map((t) => t.ready));
        if (plan.captures.length > 0) await Promise.all(plan.captures.map((c) => this.capture(c, pinned)));
      })();
      // Both settle before anything is released (a failed barrier must not end the captures' tracked reads early).
      const [capturing, permitting] = await Promise.allSettled([captured, barrier]);
      if (permitting.status === 'rejected') {
        this.unpermitted(plan);
        throw permitting.reason;
      }
      if (capturing.status === 'rejected') throw capturing.reason;
      await Promise.all(plan.runs.map((run) => this.writeRun(run)));
    } finally {
      for (const t of plan.tracked) t.done();
      for (const c of plan.captures) c.remove();
      for (const buffer of pinned) s.revisit.unpin(buffer);
    }
  }

  /**
   * The barrier failed, so nothing was written and the `destroy` records the
   * write relied on may not be durable (a retryable failure commits them
   * later, a final one never). Its blocks stay destroyed, but as destroyed
   * ahead — also those it had taken from there: the next write to one of
   * them needs that record committed first (plain `destroyed` would let it
   * go without a barrier, over an original the state never allowed to be
   * overwritten), and source reads still find the original on the disk.
   */
  private unpermitted(plan: PlannedWrite): void {
    for (const d of plan.permits) this.s.destroyedAhead.assign(d.start, d.end, d.seq);
  }

  /** Plan and execute in one go (for callers with nothing to decide in between). */
  write(runs: readonly WriteRun[], barrier: boolean, ahead?: ReadonlyArray<{ start: number; end: number }>): Promise<void> {
    return this.execute(this.plan(runs, barrier, ahead));
  }

  /**
   * Reads the originals of a capture in chunks of up to the revisit cache's
   * chunkBlocks, each kept as one entry; the buffers taken go into `pinned`.
   * Returns only when every read has ended, failed or not: the write comes
   * after, and a read still running under it would keep destination data as
   * an original (G2). A chunk that could not be read is left out, so revisits
   * of its blocks miss (EIO) while the rest are served.
   */
  private async capture(c: PlannedWrite['captures'][number], pinned: Buffer[]): Promise<void> {
    const s = this.s;
    const B = s.B;
    const chunkBlocks = s.revisit.chunkBlocks;
    const starts = chunkStarts(c.start, c.end, chunkBlocks);
    const lastOf = (first: number): number => Math.min(c.end, first + chunkBlocks) - 1;
    const reads = await Promise.allSettled(
      starts.map(async (first): Promise<CapturedChunk> => {
        const last = lastOf(first);
        const data = s.revisit.buffer((last - first) * B + s.map.diskBlockLength(last));
        pinned.push(data);
        await s.device.readInto(data, first * B);
        s.revisit.put(first, data);
        return { start: first, data };
      }),
    );
    const chunks: CapturedChunk[] = [];
    const failed: string[] = [];
    let reason = '';
    reads.forEach((read, i) => {
      if (read.status === 'fulfilled') chunks.push(read.value);
      else {
        failed.push(`${starts[i]}…${lastOf(starts[i])}`);
        reason = (read.reason as Error).message;
      }
    });
    if (failed.length > 0) s.log.warn(`could not keep the originals of disk blocks ${failed.join(', ')} for revisits: ${reason}`);
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
    await zeroRange(s.device, offset, end - offset);
  }
}
