import type { RemapMap } from '../../../../src/remap/map.js';
import type { StateJournal, StateRecord } from '../../../../src/remap/state-journal.js';

/**
 * A durable-looking journal that replays what is committed, so the device
 * can check each write against the state a crash would leave:
 * - `destroyed`: blocks whose `destroy` record is committed (the permission to overwrite);
 * - `released`: what the committed records say is released;
 * - `slotOf` / `ownerOf`: committed spills not yet superseded.
 * It also checks that a `release` names only blocks a client asked to read in
 * full (`mayRelease`) and that the data a `spill`/`land` record points at —
 * the writes completed when the engine appended it (`pointedAt`, captured by
 * the harness) — was synced before the record reached the journal.
 */
export class CheckingJournal implements StateJournal {
  readonly durable = true;
  readonly committed: StateRecord[] = [];
  readonly violations: string[] = [];
  readonly destroyed = new Set<number>();
  readonly released = new Set<number>();
  readonly slotOf = new Map<number, number>();
  readonly ownerOf = new Map<number, number>();
  private readonly free = new Set<number>();
  private batch: StateRecord[] = [];
  mayRelease: ((block: number) => boolean) | undefined;
  /** Whether block p may be released as a hole: a block-status request of source covered it whole while it was one. */
  mayReleaseHole: ((block: number) => boolean) | undefined;
  /** Per record: the disk blocks it points at and their write generation when the engine appended it. */
  readonly pointedAt = new WeakMap<StateRecord, Map<number, number>>();
  syncedGeneration: ((block: number) => number) | undefined;

  constructor(private readonly map: RemapMap) {}

  append(record: StateRecord): void {
    this.batch.push(record);
    const pointed = this.pointedAt.get(record);
    if (pointed === undefined || this.syncedGeneration === undefined) return;
    for (const [block, generation] of pointed) {
      if (this.syncedGeneration(block) < generation) this.violations.push(`${record.type} record reached the journal before the data it points at (disk block ${block}) was synced`);
    }
  }

  /** The disk blocks a record points at. */
  blocksOf(record: StateRecord): number[] {
    if (record.type === 'spill') return Array.from({ length: record.count }, (_, k) => record.slot + k);
    if (record.type === 'land') return Array.from({ length: record.count }, (_, k) => this.map.homeOf(record.dest + k));
    return [];
  }

  async commit(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    for (const r of batch) this.apply(r);
  }

  private apply(r: StateRecord): void {
    this.committed.push(r);
    switch (r.type) {
      case 'free':
        for (let k = 0; k < r.count; k++) this.free.add(r.start + k);
        return;
      case 'unfree':
        for (let k = 0; k < r.count; k++) this.free.delete(r.start + k);
        return;
      case 'seal':
        for (const p of this.free) this.released.add(p);
        return;
      case 'release':
        for (let k = 0; k < r.count; k++) {
          const p = r.start + k;
          if (this.mayRelease !== undefined && !this.mayRelease(p)) this.violations.push(`block ${p} released although no client read it in full`);
          this.released.add(p);
        }
        return;
      case 'release-hole':
        // Told to a client by a block-status reply, not read: the original is zeroes.
        for (let k = 0; k < r.count; k++) {
          const p = r.start + k;
          if (this.mayReleaseHole !== undefined && !this.mayReleaseHole(p)) this.violations.push(`block ${p} released as a hole although no block-status request covered it as one`);
          this.released.add(p);
        }
        return;
      case 'finish-begin':
        for (let p = 0; p < this.map.diskBlocks; p++) this.released.add(p);
        return;
      case 'destroy':
        for (let k = 0; k < r.count; k++) {
          const p = r.start + k;
          if (!this.released.has(p)) this.violations.push(`destroy of block ${p} committed before a committed record released it`);
          this.destroyed.add(p);
        }
        return;
      case 'spill':
        for (let k = 0; k < r.count; k++) this.setSlot(r.dest + k, r.slot + k);
        return;
      case 'land':
      case 'zero':
        for (let k = 0; k < r.count; k++) this.setSlot(r.dest + k, undefined);
        return;
      case 'hold':
        this.setSlot(r.dest, undefined);
        return;
      default:
    }
  }

  private setSlot(d: number, slot: number | undefined): void {
    const old = this.slotOf.get(d);
    if (old !== undefined) {
      this.slotOf.delete(d);
      if (this.ownerOf.get(old) === d) this.ownerOf.delete(old);
    }
    if (slot !== undefined) {
      this.slotOf.set(d, slot);
      this.ownerOf.set(slot, d);
    }
  }
}
