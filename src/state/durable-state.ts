import { BlockLayout } from '../remap/block-layout.js';
import type { RemapMap } from '../remap/map.js';
import type { SealSample, StateRecord } from '../remap/state-journal.js';

/** Where a held block's data lies in the state file. */
export interface HoldRef {
  position: number;
  length: number;
}

/**
 * What the committed records say, replayed: the state a crash leaves. The
 * journal keeps one up to date at every commit (its snapshots are written from
 * it) and recovery rebuilds one from the snapshot and the log; the engine is
 * then restored from it. The same BlockLayout as the engine's own state, plus
 * where held data lies in the file (`holds` are positions, not data).
 *
 * The replay mirrors the engine's transitions (docs/remap-engine.md §Records);
 * a record about a held block supersedes whatever held it before.
 */
export class DurableState extends BlockLayout {
  /** Destination blocks whose data is in the state file. Bounded by the cache: only RAM-held blocks are logged. */
  readonly holds = new Map<number, HoldRef>();
  samples: SealSample[] = [];
  /** The note of the last checkpoint that had one (the copier's progress). */
  checkpointNote: string | undefined;
  /** Records applied since the state was created (snapshots carry the count on). */
  records = 0;

  constructor(readonly map: RemapMap) {
    super(map.diskBlocks);
  }

  /** Applies one committed record. `hold` needs where its data is in the file. */
  apply(r: StateRecord, hold?: HoldRef): void {
    this.records++;
    switch (r.type) {
      case 'free':
        this.free.add(r.start, r.start + r.count);
        return;
      case 'unfree':
        this.free.remove(r.start, r.start + r.count);
        return;
      case 'seal':
        for (const run of [...this.free.all()]) {
          this.released.setRange(run.start, run.end);
          this.trimmed.setRange(run.start, run.end);
        }
        this.free.clear();
        this.samples = r.samples ?? [];
        this.phase = 'sealed';
        return;
      case 'release':
        this.released.forEachRun(false, r.start, r.start + r.count, (a, b) => {
          this.released.setRange(a, b);
          this.unconfirmed.setRange(a, b);
        });
        return;
      case 'release-hole':
        // Confirmed at once, as SourcePath.releaseHoles does.
        this.released.forEachRun(false, r.start, r.start + r.count, (a, b) => {
          this.released.setRange(a, b);
          this.holes.setRange(a, b);
        });
        return;
      case 'checkpoint':
        this.unconfirmed.clearAll();
        if (r.note !== undefined) this.checkpointNote = r.note;
        return;
      case 'destroy':
        this.destroyed.setRange(r.start, r.start + r.count);
        return;
      case 'zero':
        this.unhold(r.dest, r.count);
        this.zeros.add(r.dest, r.dest + r.count);
        return;
      case 'spill':
        this.unhold(r.dest, r.count);
        this.spill.set(r.dest, r.count, r.slot);
        this.slotOwner.set(r.slot, r.count, r.dest);
        return;
      case 'land':
        this.unhold(r.dest, r.count);
        for (const run of this.map.homeRuns(r.dest, r.count)) this.landed.setRange(run.disk, run.disk + run.count);
        this.anyLanded = true;
        return;
      case 'hold':
        this.unhold(r.dest, 1);
        if (hold === undefined) throw new Error('a hold record needs the position of its data');
        this.holds.set(r.dest, hold);
        return;
      case 'finish-begin':
        this.released.forEachRun(false, 0, this.map.diskBlocks, (a, b) => this.released.setRange(a, b));
        this.unconfirmed.clearAll();
        this.phase = 'finishing';
        return;
      case 'finished':
        this.phase = 'finished';
        return;
    }
  }

  /** Destination blocks [d, d+count) stop being held where they were: in the file, as zeroes, in slots, or landed. */
  private unhold(d: number, count: number): void {
    if (this.holds.size > 0) {
      if (this.holds.size < count) {
        for (const k of [...this.holds.keys()]) if (k >= d && k < d + count) this.holds.delete(k);
      } else {
        for (let k = d; k < d + count; k++) this.holds.delete(k);
      }
    }
    this.zeros.remove(d, d + count);
    for (const run of this.spill.runsIn(d, d + count)) {
      this.spill.delete(run.start, run.end - run.start);
      this.slotOwner.delete(run.value, run.end - run.start);
    }
    for (const run of this.map.homeRuns(d, count)) this.landed.clearRange(run.disk, run.disk + run.count);
  }

  /** Blocks whose original was destroyed while unconfirmed: what a redo of the copy from the last checkpoint would miss. */
  get atRisk(): number {
    let n = 0;
    this.destroyed.forEachRun(true, 0, this.map.diskBlocks, (a, b) => (n += this.unconfirmed.countRange(a, b)));
    return n;
  }

  get heldBlocks(): number {
    return this.holds.size + this.zeros.size + this.spill.size;
  }
}
