import type { DiskWriter, WriteRun } from './disk-writer.js';
import type { RangeLock } from './range-locks.js';
import type { RemapState } from './remap-state.js';

export interface FinishProgress {
  done: number;
  total: number;
}

/** One move of held data to its homes: destination blocks [dest, dest+count) → disk blocks [home, home+count). */
interface Move {
  kind: 'ram' | 'zero' | 'slot';
  dest: number;
  home: number;
  count: number;
  /** For slot moves: where the data is now. */
  slot: number;
  lock: RangeLock;
}

/** RAM blocks moved by one write at most. */
const RAM_RUN_BLOCKS = 256;

/** Slot and RAM bytes one wave moves at most (bounds the memory a wave's reads take). */
export const WAVE_BYTES = 16 * 1024 * 1024;

/**
 * Lands everything held (docs/remap-engine.md §Finish planner) in waves: each
 * wave moves the held blocks whose homes are not slots, then commits, which
 * frees their slots for the next wave. A home that is a slot still waiting to
 * move is never written, so chains resolve link by link; when nothing can move
 * but data is held, the slots form cycles and some of their blocks are read
 * into RAM to break them.
 */
/** Finish stopped between waves because the server is stopping: resumable, nothing half done. */
export class FinishStoppedError extends Error {
  override readonly name = 'FinishStoppedError';
  readonly fix = 'start the server again with the same --state and run `nbd-remapper finish` again: it resumes where it stopped';
  constructor(progress: FinishProgress) {
    super(`finish stopped because the server is stopping, after ${progress.done} of ${progress.total} held block(s) landed`);
  }
}

export class FinishPlanner {
  private done = 0;
  private waveArena: Buffer | undefined;
  private stopRequested = false;

  constructor(
    private readonly s: RemapState,
    private readonly disk: DiskWriter,
    private readonly waveBytes = WAVE_BYTES,
  ) {}

  /** Makes run() stop before its next wave (a server that is stopping must not close the state under it). */
  requestStop(): void {
    this.stopRequested = true;
  }

  get progress(): FinishProgress {
    return { done: this.done, total: this.done + this.s.heldBlocks };
  }

  /**
   * Runs until nothing is held and no destination write is in flight, then
   * calls `settled` in that same synchronous step (so no write can slip in
   * between: the caller switches the destination to a plain view there).
   */
  async run(onProgress: (progress: FinishProgress) => void, settled: () => void): Promise<void> {
    const s = this.s;
    this.stopRequested = false;
    onProgress(this.progress);
    let focus: Array<{ dest: number; count: number }> | undefined;
    let seenVersion = s.heldVersion;
    // Set while new destination requests are held back for the settle (RangeLocks.holdNewLocks).
    let letThrough: (() => void) | undefined;
    try {
      for (;;) {
        // Between waves: what moved is committed, so stopping here leaves nothing half done.
        if (this.stopRequested) throw new FinishStoppedError(this.progress);
        if (s.heldBlocks === 0) {
          if (s.locks.heldCount === 0) {
            // Nothing is held again: the wave arena's memory goes with the caches' (releaseCacheMemory).
            this.waveArena = undefined;
            settled();
            return;
          }
          // Only requests already in flight can hold data again: the ones arriving meanwhile wait, so a
          // client that always has another request coming cannot keep finish from settling, then find the plain view.
          letThrough ??= s.locks.holdNewLocks();
          await s.locks.whenFree(0, s.map.destinationBlocks);
          continue;
        }
        // A request in flight held data again: let the others through, and move it.
        letThrough?.();
        letThrough = undefined;
        if (s.heldVersion !== seenVersion) {
          focus = undefined;
          seenVersion = s.heldVersion;
        }
        const { moves, busy, truncated } = this.collect(focus);
        if (moves.length === 0) {
          if (focus !== undefined) {
            focus = undefined;
            continue;
          }
          if (busy) {
            // Held data whose lock a client write holds: wait for that write (I/O in flight).
            await s.locks.whenFree(0, s.map.destinationBlocks);
            continue;
          }
          const freed = await this.breakCycles();
          if (freed.length === 0) {
            if (s.locks.heldCount > 0) {
              await s.locks.whenFree(0, s.map.destinationBlocks);
              continue;
            }
            if (s.retainedBytes > 0) {
              // RAM a FLUSH's commit still writes from: it comes back when that commit is done.
              await s.whenPinsReleased();
              continue;
            }
            throw new Error(`finish cannot make progress: ${s.heldBlocks} blocks held, none movable and no RAM free to break a cycle`);
          }
          await s.committer.commitThrough();
          focus = this.ownersOf(freed);
          seenVersion = s.heldVersion;
          continue;
        }
        // Writes that find no room meanwhile wait for this wave: it gives back RAM and slots (RemapState.beginRoomMove).
        const moved = s.beginRoomMove();
        let freed: Array<{ start: number; count: number }>;
        try {
          freed = await this.execute(moves);
          await s.committer.commitThrough();
        } finally {
          moved();
        }
        onProgress(this.progress);
        focus = truncated ? undefined : this.ownersOf(freed);
        seenVersion = s.heldVersion;
      }
    } finally {
      letThrough?.();
    }
  }

  /** Held blocks (in `focus`, or all) whose homes are not slots, with their locks taken (busy ones skipped). */
  private collect(focus: Array<{ dest: number; count: number }> | undefined): { moves: Move[]; busy: boolean; truncated: boolean } {
    const s = this.s;
    const moves: Move[] = [];
    let busy = false;
    let bytes = 0;
    const B = s.B;
    const full = (): boolean => bytes >= this.waveBytes;
    const consider = (kind: Move['kind'], dest: number, count: number, slot: number): void => {
      for (const run of s.map.homeRuns(dest, count)) {
        s.slotted.forEachRun(false, run.disk, run.disk + run.count, (a, b) => {
          if (kind !== 'zero' && full()) return;
          const d = run.dest + (a - run.disk);
          // A wave's data stays within its budget however long the run: the rest waits for the next wave.
          const n = kind === 'zero' ? b - a : Math.min(b - a, Math.ceil((this.waveBytes - bytes) / B));
          const lock = s.locks.tryAcquire(d, d + n);
          if (lock === undefined) {
            busy = true;
            return;
          }
          s.landed.setRange(a, a + n);
          moves.push({ kind, dest: d, home: a, count: n, slot: slot + (d - dest), lock });
          if (kind !== 'zero') bytes += n * B;
        });
      }
    };
    const ranges = focus ?? [{ dest: 0, count: s.map.destinationBlocks }];
    for (const range of ranges) {
      const lo = range.dest;
      const hi = range.dest + range.count;
      if (s.ram.size > 0) {
        const keys = s.ram.membersIn(lo, hi).sort((a, b) => a - b);
        // Consecutive RAM blocks move together (consider() splits them where their homes stop being consecutive or free).
        for (let i = 0; i < keys.length && !full(); ) {
          let j = i + 1;
          while (j < keys.length && keys[j] === keys[j - 1] + 1 && j - i < RAM_RUN_BLOCKS) j++;
          consider('ram', keys[i], j - i, 0);
          i = j;
        }
      }
      for (const run of s.zeros.runsIn(lo, hi)) consider('zero', run.start, run.end - run.start, 0);
      for (const run of s.spill.runsIn(lo, hi)) consider('slot', run.start, run.end - run.start, run.value);
    }
    return { moves, busy, truncated: full() };
  }

  /**
   * Memory for a wave's slot reads and a cycle break's, reused by every wave
   * (each is written, or copied into RAM, before the next is read): a finish
   * moving 1 GiB out of slots otherwise faulted in 1 GiB of fresh buffers.
   */
  private arena(bytes: number): Buffer {
    if (this.waveArena === undefined || this.waveArena.length < bytes) {
      this.waveArena = Buffer.allocUnsafeSlow(Math.max(bytes, Math.min(this.waveBytes, this.s.map.destinationBlocks * this.s.B)));
    }
    return this.waveArena;
  }

  /**
   * Reads each slot run, one after another in the arena, once earlier I/O on
   * its blocks is done. The reads are registered before this returns, in the
   * caller's synchronous step.
   */
  private readSlots(runs: ReadonlyArray<{ dest: number; slot: number; count: number }>): Promise<Buffer[]> {
    const s = this.s;
    const B = s.B;
    let used = 0;
    const reads = runs.map((run) => {
      const bytes = (run.count - 1) * B + s.map.destBlockLength(run.dest + run.count - 1);
      const buffer = this.arena(used + bytes).subarray(used, used + bytes);
      used += bytes;
      return { buffer, at: run.slot * B, io: s.io.register('read', run.slot, run.slot + run.count) };
    });
    return Promise.all(
      reads.map(async (r) => {
        try {
          await r.io.ready;
          await s.device.readInto(r.buffer, r.at);
        } finally {
          r.io.done();
        }
        return r.buffer;
      }),
    ).catch((err: unknown) => {
      // A read may still be in flight into the arena: the next wave gets fresh memory.
      this.waveArena = undefined;
      throw err;
    });
  }

  /** Writes every move, updates the state, returns the slot runs it freed. */
  private async execute(moves: Move[]): Promise<Array<{ start: number; count: number }>> {
    const s = this.s;
    const runs: WriteRun[] = [];
    for (const m of moves) {
      if (m.kind === 'zero') {
        runs.push({ disk: m.home, count: m.count, data: 'zero' });
      } else if (m.kind === 'ram') {
        const buffers: Buffer[] = [];
        for (let k = 0; k < m.count; k++) buffers.push(s.ramData(m.dest + k) as Buffer);
        runs.push({ disk: m.home, count: m.count, data: buffers.length === 1 ? buffers[0] : buffers });
      }
    }
    try {
      // Slot data is read first; the homes are reserved (landed) and the blocks locked, so nothing else targets them meanwhile.
      const fromSlots = moves.filter((m) => m.kind === 'slot');
      const buffers = await this.readSlots(fromSlots);
      fromSlots.forEach((m, i) => runs.push({ disk: m.home, count: m.count, data: buffers[i] }));
      await this.disk.write(runs, true);
    } catch (err) {
      // A read or write of this wave may still be in flight into the arena: the next wave gets fresh memory.
      this.waveArena = undefined;
      for (const m of moves) if (s.isHeld(m.dest)) s.landed.clearRange(m.home, m.home + m.count);
      for (const m of moves) m.lock.release();
      throw err;
    }
    const freed: Array<{ start: number; count: number }> = [];
    for (const m of moves) {
      s.committer.append({ type: 'land', dest: m.dest, count: m.count });
      if (m.kind === 'ram') for (let k = 0; k < m.count; k++) s.ramDrop(m.dest + k);
      else if (m.kind === 'zero') s.zeros.remove(m.dest, m.dest + m.count);
      else {
        s.spill.delete(m.dest, m.count);
        s.freeSlots(m.slot, m.count);
        freed.push({ start: m.slot, count: m.count });
      }
      this.done += m.count;
      m.lock.release();
    }
    s.anyLanded = true;
    return freed;
  }

  /**
   * Nothing can move, yet data is held: every held block is in a slot that is
   * another held block's home (held homes are distinct, so if all are slots
   * there is no RAM or zero item left), i.e. the slots form cycles. Reads up
   * to a wave's worth of slot blocks (as much as the free RAM takes) into RAM,
   * logs them (`hold`, since their slots are about to be reused) and frees
   * their slots. A wave's worth is enough: each cycle opened becomes a chain
   * that the following waves move link by link, at most a wave at a time; a
   * larger break would only log more data (and read it into fresh memory).
   */
  private async breakCycles(): Promise<Array<{ start: number; count: number }>> {
    const s = this.s;
    const B = s.B;
    let room = Math.max(0, Math.floor(Math.min(s.cacheBytes - s.ramInUseBytes, this.waveBytes) / B));
    // Runs of consecutive slots, each read in one go and locked as one (block by block, a 64 MiB cache meant 16k reads).
    const picked: Array<{ dest: number; slot: number; count: number; lock: RangeLock }> = [];
    for (const run of s.spill.all()) {
      for (let d = run.start; d < run.end && room > 0; ) {
        const count = Math.min(run.end - d, room);
        const lock = s.locks.tryAcquire(d, d + count) ?? (count > 1 ? s.locks.tryAcquire(d, d + 1) : undefined);
        if (lock === undefined) {
          d++;
          continue;
        }
        const n = lock.end - lock.start;
        picked.push({ dest: d, slot: run.value + (d - run.start), count: n, lock });
        room -= n;
        d += n;
      }
      if (room === 0) break;
    }
    const freed: Array<{ start: number; count: number }> = [];
    try {
      const buffers = await this.readSlots(picked);
      for (const [i, item] of picked.entries()) {
        const buffer = buffers[i];
        // A client write may have filled RAM meanwhile: take only what fits; the rest stays in its slot.
        let taken = 0;
        let bytes = 0;
        while (taken < item.count && s.hasRoomFor(bytes + s.map.destBlockLength(item.dest + taken))) {
          bytes += s.map.destBlockLength(item.dest + taken);
          taken++;
        }
        if (taken === 0) continue;
        s.spill.delete(item.dest, taken);
        // Copied out of the arena into RAM's own buffers; the `hold` records write from those until committed.
        for (let k = 0; k < taken; k++) s.ramAdmit(item.dest + k, buffer.subarray(k * B, k * B + s.map.destBlockLength(item.dest + k)));
        s.persistHeld(item.dest, item.dest + taken);
        s.freeSlots(item.slot, taken);
        freed.push({ start: item.slot, count: taken });
      }
    } finally {
      for (const { lock } of picked) lock.release();
    }
    return freed;
  }

  /** Destination runs whose homes are the given disk runs (the next links of the chains). */
  private ownersOf(runs: Array<{ start: number; count: number }>): Array<{ dest: number; count: number }> {
    const out: Array<{ dest: number; count: number }> = [];
    for (const run of runs) for (const owner of this.s.map.ownerRuns(run.start, run.count)) out.push({ dest: owner.dest, count: owner.count });
    return out;
  }
}
