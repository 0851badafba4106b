import { UnreadSourceReplies } from './unread-source-replies.js';
import { Errno, NbdError } from 'nbd-protocol-ts';
import { describeFailure } from '../log/describe-failure.js';
import { LogThrottle } from '../log/log-throttle.js';
import type { Logger } from '../log/logger.js';
import type { BlockDevice } from './block-device.js';
import { BlockLayout } from './block-layout.js';
import { BlockMap, BlockSet } from './block-table.js';
import { CaptureRegistry } from './capture-registry.js';
import { DiskIoTracker } from './disk-io-tracker.js';
import { LandingQueue } from './landing-queue.js';
import type { RemapMap } from './map.js';
import { PagedBitmap } from './paged-bitmap.js';
import { RangeLocks } from './range-locks.js';
import { RamCells } from './ram-cells.js';
import { RevisitCache } from './revisit-cache.js';
import { RunMap } from './run-map.js';
import { RunQueue } from './run-queue.js';
import { StateCommitter } from './state-committer.js';
import type { StateJournal } from './state-journal.js';

export interface RemapStateOptions {
  device: BlockDevice;
  map: RemapMap;
  cacheBytes: number;
  revisitCacheBytes: number;
  journal: StateJournal;
  log: Logger;
  safe: boolean;
  /** Bytes at each end of the disk that take spilled data only when declared free (DEFAULT_KEPT_EDGE_BYTES). */
  keptEdgeBytes: number;
  /** Tests: see StateCommitterOptions. */
  backgroundCommitRecords?: number;
  /** Commits at least this slow are logged (StateCommitter's SLOW_COMMIT_MS by default). */
  slowCommitMs?: number;
}

/** Where a destination block's newest data is. */
export type Location =
  | { kind: 'ram'; data: Buffer }
  | { kind: 'zero' }
  | { kind: 'slot'; slot: number }
  | { kind: 'home'; home: number };

/** ` to PATH` for a message about the state file, when it has one. */
const where = (path: string | undefined): string => (path === undefined ? '' : ` to ${path}`);

/**
 * The engine's state (docs/remap-engine.md §State) — the block layout it
 * shares with the journal's replay (DurableState), plus what lives only in
 * the running engine — and the synchronous steps that change it. Nothing here awaits: callers decide in one synchronous
 * step and do their I/O afterwards.
 */
export class RemapState extends BlockLayout {
  readonly map: RemapMap;
  readonly B: number;
  readonly device: BlockDevice;
  readonly log: Logger;
  readonly safe: boolean;
  readonly cacheBytes: number;
  /** Disk blocks at each end that are kept unless declared free (offerAsSlots). */
  private readonly keptEdgeBlocks: number;

  /** Set while seal() waits for source writes in flight: new ones are refused already. */
  sealing = false;
  /** Source reads sent from the page cache that their clients may not have read yet, by block: their blocks stay unreleased, and seal and finish wait for them. */
  readonly unreadSourceReplies = new UnreadSourceReplies();

  /** Disk blocks taken as slots: those in slotOwner, and those reserved for a spill still being written. Live only: recovery rebuilds it from spill. */
  readonly slotted: PagedBitmap;

  /** RAM-held destination blocks: d → its cell in `cells`. */
  readonly ram = new BlockMap<number>();
  /** The RAM cache's memory. */
  readonly cells: RamCells;
  ramBytes = 0;
  /**
   * RAM-held blocks whose newest data is not in the journal yet: a crash
   * loses them. A FLUSH (or FUA) carries them into the journal as `hold`
   * records; bounded by `ram`. A set, not a bitmap: its memory follows the
   * cache, while a bitmap over a 1 TiB destination costs 4 KiB for every
   * 128 MiB that holds a dirty block (mkfs touches them all: 32 MiB).
   */
  readonly ramDirty = new BlockSet();
  /**
   * RAM cells a `hold` record writes from, until its commit is done (how
   * many records each): changed only through a copy, reused only afterwards.
   */
  private readonly pinnedForJournal = new Map<number, number>();
  /** Cells let go of while pinned: no longer held data, but still memory until unpinned (then they become spares). */
  private readonly releasedWhilePinned = new Set<number>();
  /**
   * Bytes of releasedWhilePinned. They count against the cache like held
   * data (G4 bounds the memory, not only what it holds): a write that needs
   * them waits for the commit using them (ramInUseBytes, whenPinsReleased).
   */
  retainedBytes = 0;
  private pinWaiters: Array<() => void> = [];
  /**
   * Engine I/O in flight that gives RAM or a slot back when it ends: landings
   * of held data (a rewrite that lands at once, an eviction) and finish's
   * waves. A write that finds no room while one is in flight waits for it —
   * I/O in flight, so G9 allows it — rather than fail with ENOSPC a moment
   * before the room is there.
   */
  private roomMovesInFlight = 0;
  private roomWaiters: Array<() => void> = [];
  /** The last `hold` record written from a pinned cell: committing through it unpins them all. */
  private pinnedThroughSeq = 0;
  /** RAM-held blocks whose home can take them, in the order they became landable. */
  readonly landableConfirmed = new LandingQueue();
  readonly landableUnconfirmed = new LandingQueue();

  /** Slot candidates by class, each in release order. */
  readonly recycled = new RunQueue();
  readonly confirmedNonHome = new RunQueue();
  readonly confirmedHome = new RunQueue();
  readonly unconfirmedNonHome = new RunQueue();
  readonly unconfirmedHome = new RunQueue();

  readonly revisit: RevisitCache;
  readonly committer: StateCommitter;
  readonly locks = new RangeLocks();
  readonly io = new DiskIoTracker();
  readonly captures = new CaptureRegistry();

  atRisk = 0;
  /**
   * From finish's settling until its `finished` record is committed: the
   * destination is a plain view already, but a write to the disk must wait
   * for that commit (I/O in flight) — written before it, a crash would leave
   * a `finishing` state with a block changed that no record destroyed, which
   * recovery takes for another disk. Rejected if the commit fails.
   */
  finishedDurable: Promise<void> | undefined;
  /** The note of the last committed checkpoint that had one: where a copier that crashed resumes. */
  checkpointNote: string | undefined;
  /**
   * Disk blocks destroyed ahead of their write (`DiskWriter.plan`'s `ahead`),
   * not written since, with the sequence number of their `destroy` record:
   * no record points at them or freed them, so their write needs only that
   * permission committed, and their originals are still on the disk (source
   * reads get them there). Also the blocks of a write whose barrier failed
   * (DiskWriter.unpermitted). Bounded by the destroy-ahead window plus the
   * writes that failed so.
   */
  readonly destroyedAhead = new RunMap(false);
  /** --safe refused a write since the last checkpoint because only unconfirmed originals were left (status hints at a checkpoint). */
  safeBlocked = false;
  enospcCount = 0;
  lastEnospc: string | undefined;
  /** Bumped whenever client writes change held data (the finish planner rescans then). */
  heldVersion = 0;
  readonly sourceClients = new Set<string>();
  readonly destinationClients = new Set<string>();
  sourceWritesInFlight = 0;

  readonly enospcLog: LogThrottle;
  private readonly slowCommitLog: LogThrottle;
  readonly unsealedWriteLog: LogThrottle;
  readonly revisitMissLog: LogThrottle;

  constructor(options: RemapStateOptions) {
    super(options.map.diskBlocks);
    this.map = options.map;
    this.B = options.map.blockSize;
    this.device = options.device;
    this.log = options.log;
    this.safe = options.safe;
    this.cacheBytes = options.cacheBytes;
    this.keptEdgeBlocks = Math.ceil(options.keptEdgeBytes / this.B);
    this.cells = new RamCells(this.B, options.cacheBytes);
    this.slotted = new PagedBitmap(options.map.diskBlocks);
    this.revisit = new RevisitCache(options.revisitCacheBytes, this.B);
    this.committer = new StateCommitter(options.journal, options.device, {
      backgroundCommitRecords: options.backgroundCommitRecords,
      onFailure: (err, final) =>
        final
          ? this.log.error(`state commits have stopped: FLUSH fails and nothing written from now on becomes durable. ${describeFailure(err)}`)
          : this.log.warn(`a state commit failed; FLUSH fails until one succeeds (each tries again), and nothing held is lost meanwhile. ${describeFailure(err)}`),
      onSlowCommit: (ms, records) =>
        this.slowCommitLog.note(
          `a state commit took ${(ms / 1000).toFixed(1)} s (${records} record(s)${where(this.committer.journalInfo()?.path)}), and so did the FLUSH or writes waiting for it: the kernel client fails a request that waits past its timeout (nbd-client -t) and the filesystem above shuts down. Put --state on a faster disk, or give a smaller --cache (a FLUSH writes what is held in RAM into the state file)`,
        ),
      slowCommitMs: options.slowCommitMs,
    });
    this.enospcLog = new LogThrottle((m) => this.log.warn(m));
    this.slowCommitLog = new LogThrottle((m) => this.log.warn(m));
    this.unsealedWriteLog = new LogThrottle((m) => this.log.warn(m));
    this.revisitMissLog = new LogThrottle((m) => this.log.warn(m));
  }

  // ---- predicates -------------------------------------------------------

  /** A released block that neither a slot nor landed data occupies. */
  isFreeBlock = (p: number): boolean => this.released.get(p) && !this.slotted.get(p) && !this.landed.get(p);

  /** A free block that can hold any destination block: the disk's short last block cannot. */
  private isSlotCandidate = (p: number): boolean => this.isFreeBlock(p) && this.map.diskBlockLength(p) === this.B;

  /**
   * Destination data for home p may be written there at once: p is released,
   * not a slot, and destroying it costs nothing at risk (its original is
   * confirmed or already gone; everything is confirmed once finishing).
   */
  canLandAt(p: number): boolean {
    if (!this.released.get(p) || this.slotted.get(p)) return false;
    return this.phase === 'finishing' || !this.unconfirmed.get(p) || this.destroyed.get(p);
  }

  locationOf(d: number): Location {
    const data = this.ramData(d);
    if (data !== undefined) return { kind: 'ram', data };
    if (this.zeros.has(d)) return { kind: 'zero' };
    const slot = this.spill.get(d);
    if (slot !== undefined) return { kind: 'slot', slot };
    return { kind: 'home', home: this.map.homeOf(d) };
  }

  /** d's newest data is held (RAM, zero extent or slot), not at its home. */
  isHeld(d: number): boolean {
    return this.ram.has(d) || this.zeros.has(d) || this.spill.has(d);
  }

  get heldBlocks(): number {
    return this.ram.size + this.zeros.size + this.spill.size;
  }

  // ---- RAM ----------------------------------------------------------------

  /**
   * d's newest data becomes a RAM copy of `data` (the caller checked the
   * room, or d is in RAM already; d is not in a slot). `logged`: the journal
   * already has this data (a `hold` record was appended with it), so a FLUSH
   * need not carry it again.
   */
  ramAdmit(d: number, data: Buffer, logged = false): void {
    if (this.zeros.size > 0) this.zeros.remove(d, d + 1);
    if (logged) this.ramDirty.delete(d);
    else this.ramDirty.add(d);
    const old = this.ram.get(d);
    // Overwritten whole, so a cell a `hold` record still writes from is replaced, not copied first (ramWritable).
    if (old !== undefined && this.cells.lengthOf(old) === data.length && !this.pinnedForJournal.has(old)) {
      data.copy(this.cells.view(old));
      return;
    }
    const cell = this.cells.take(data.length);
    data.copy(this.cells.view(cell));
    if (old !== undefined) {
      this.ramBytes -= this.cells.lengthOf(old);
      this.letGo(old);
    }
    this.ram.set(d, cell);
    this.ramBytes += data.length;
    this.heldVersion++;
    this.noteLandable(d);
  }

  /**
   * d's RAM buffer, to be changed in place by the caller (who holds d's lock).
   * A buffer a `hold` record still writes from is first swapped for a copy
   * (the caller checked the room in the same turn: DestinationWriter.changeable).
   */
  ramWritable(d: number): Buffer | undefined {
    const cell = this.ram.get(d);
    if (cell === undefined) return undefined;
    if (!this.pinnedForJournal.has(cell)) return this.cells.view(cell);
    const copy = this.cells.take(this.cells.lengthOf(cell));
    this.cells.view(cell).copy(this.cells.view(copy));
    this.ram.set(d, copy);
    this.letGo(cell);
    return this.cells.view(copy);
  }

  /** d's RAM-held data (a view of its cell, valid until d leaves RAM), or undefined. */
  ramData(d: number): Buffer | undefined {
    const cell = this.ram.get(d);
    return cell === undefined ? undefined : this.cells.view(cell);
  }

  /** A cell no longer in RAM: a spare now, or once the record writing from it is committed. */
  private letGo(cell: number): void {
    if (this.pinnedForJournal.has(cell)) {
      this.releasedWhilePinned.add(cell);
      this.retainedBytes += this.cells.lengthOf(cell);
    } else {
      this.cells.giveBack(cell);
    }
  }

  /** RAM the cache occupies: held data plus buffers a commit in flight still writes from. Never above cacheBytes (G4). */
  get ramInUseBytes(): number {
    return this.ramBytes + this.retainedBytes;
  }

  /** `bytes` more RAM fit in the cache now. */
  hasRoomFor(bytes: number): boolean {
    return this.ramInUseBytes + bytes <= this.cacheBytes;
  }

  /** d's RAM buffer is one a commit in flight writes from: changing d takes a second buffer. */
  isPinned(d: number): boolean {
    const cell = this.ram.get(d);
    return cell !== undefined && this.pinnedForJournal.has(cell);
  }

  /**
   * Resolves when the commits that hold RAM buffers are done (at once if
   * none). The commit is in flight, or failed retryably (a full file system)
   * and waits for a retry: asking for it starts one if need be, so this waits
   * only for I/O in flight (G9), and rejects with that commit's failure.
   * Callers check again afterwards.
   */
  whenPinsReleased(): Promise<void> {
    if (this.pinnedForJournal.size === 0) return Promise.resolve();
    const released = new Promise<void>((wake) => this.pinWaiters.push(wake));
    return this.committer.commitThrough(this.pinnedThroughSeq).then(() => released);
  }

  /** Counts a move of held data that is starting until the returned function is called, once its RAM or slot is given back. */
  beginRoomMove(): () => void {
    this.roomMovesInFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.roomMovesInFlight--;
      for (const wake of this.roomWaiters.splice(0)) wake();
    };
  }

  get roomMovesPending(): boolean {
    return this.roomMovesInFlight > 0;
  }

  /**
   * Resolves when room may have come back: a move in flight ended, or the
   * commits holding RAM buffers are done (whenPinsReleased). At once when
   * neither is in flight. Callers check again afterwards.
   */
  whenRoomMayFree(): Promise<void> {
    const waits: Array<Promise<void>> = [];
    if (this.roomMovesInFlight > 0) waits.push(new Promise<void>((wake) => this.roomWaiters.push(wake)));
    if (this.pinnedForJournal.size > 0) waits.push(this.whenPinsReleased());
    return waits.length === 0 ? Promise.resolve() : Promise.race(waits);
  }

  /**
   * Takes the rest of the cache's memory now (see reserved-memory.ts):
   * touched slabs that RamCells carves before allocating, until held data,
   * spares, the uncarved rest of a slab and the reserved slabs fill
   * `cacheBytes`. Returns the bytes taken. Destination writes meanwhile carve
   * as usual, and this stops short of the cache wherever they got to.
   */
  reserveCache(): Promise<number> {
    return this.cells.reserve(() => this.ramInUseBytes);
  }

  /**
   * After finish nothing is held again — destination is a plain view of the
   * disk and source is gone — so both caches give their memory back: a server
   * left serving the new layout would otherwise keep the RAM of --cache and
   * --revisit-cache (320 MiB by default) for nothing.
   */
  releaseCacheMemory(): void {
    this.cells.release();
    this.revisit.release();
  }

  /** d's RAM copy is no longer its newest data. Callers drop only cells no I/O is using any more. */
  ramDrop(d: number): void {
    const old = this.ram.get(d);
    if (old === undefined) return;
    this.ram.delete(d);
    this.ramDirty.delete(d);
    this.ramBytes -= this.cells.lengthOf(old);
    this.letGo(old);
    this.landableConfirmed.delete(d);
    this.landableUnconfirmed.delete(d);
  }

  /** Puts RAM-held d on a landing list when its home can take it now. */
  noteLandable(d: number): void {
    if (!this.ram.has(d)) return;
    const p = this.map.homeOf(d);
    if (!this.released.get(p) || this.slotted.get(p)) return;
    if (!this.unconfirmed.get(p) || this.destroyed.get(p)) {
      this.landableUnconfirmed.delete(d);
      this.landableConfirmed.add(d);
    } else if (!this.landableConfirmed.has(d)) {
      this.landableUnconfirmed.add(d);
    }
  }

  /** Calls noteLandable for RAM-held owners of disk blocks [p, p+count). */
  private noteOwnersLandable(p: number, count: number): void {
    if (this.ram.size === 0) return;
    if (this.ram.size < count) {
      for (const d of this.ram.keys()) {
        const home = this.map.homeOf(d);
        if (home >= p && home < p + count) this.noteLandable(d);
      }
      return;
    }
    for (const run of this.map.ownerRuns(p, count)) {
      for (let i = 0; i < run.count; i++) if (this.ram.has(run.dest + i)) this.noteLandable(run.dest + i);
    }
  }

  // ---- releasing ------------------------------------------------------------

  /**
   * Releases disk blocks [start, end) (a complete source read, the free set at
   * seal, or finish) and returns the runs that were not released before.
   * `confirmed` puts them straight into the confirmed class. `noteLandable`
   * false skips looking for RAM data that can land now (seal: RAM is empty;
   * finish: the planner scans RAM itself).
   */
  release(start: number, end: number, confirmed: boolean, noteLandable = true): Array<{ start: number; end: number }> {
    const fresh: Array<{ start: number; end: number }> = [];
    this.released.forEachRun(false, start, end, (a, b) => fresh.push({ start: a, end: b }));
    for (const { start: a, end: b } of fresh) {
      this.released.setRange(a, b);
      if (!confirmed) this.unconfirmed.setRange(a, b);
      this.offerAsSlots(a, b, confirmed);
      if (noteLandable) this.noteOwnersLandable(a, b - a);
    }
    return fresh;
  }

  /**
   * Queues released disk blocks [start, end) as slot candidates of their
   * class. A block that is nobody's home lies outside the new layout: once
   * read it is spill room (the old data of a partition moved forward is the
   * room a forward move needs), and finish leaves spilled data there. Except
   * at the disk's ends (keptEdgeBlocks), where partition tables and boot
   * loaders live: there it takes spilled data only when declared free (TRIM
   * on source before sealing), so what it holds survives the migration.
   */
  offerAsSlots(start: number, end: number, confirmed: boolean): void {
    const homes = confirmed ? this.confirmedHome : this.unconfirmedHome;
    const nonHomes = confirmed ? this.confirmedNonHome : this.unconfirmedNonHome;
    const lowEnd = this.keptEdgeBlocks;
    const highStart = this.map.diskBlocks - this.keptEdgeBlocks;
    this.map.forEachHomeSplit(start, end - start, (a, n, isHome) => {
      if (isHome) {
        homes.push(a, n);
        return;
      }
      const b = a + n;
      const declaredFree = (f: number, g: number): void => {
        if (f < g) this.trimmed.forEachRun(true, f, g, (x, y) => nonHomes.push(x, y - x));
      };
      declaredFree(a, Math.min(b, lowEnd));
      const middle = Math.max(a, lowEnd);
      if (middle < Math.min(b, highStart)) nonHomes.push(middle, Math.min(b, highStart) - middle);
      declaredFree(Math.max(middle, highStart), b);
    });
  }

  /** Every released block becomes confirmed (checkpoint, finish). */
  confirmAll(): void {
    this.unconfirmed.clearAll();
    this.atRisk = 0;
    this.safeBlocked = false;
    this.confirmedNonHome.appendAll(this.unconfirmedNonHome);
    this.confirmedHome.appendAll(this.unconfirmedHome);
    for (const d of this.landableUnconfirmed.values()) this.landableConfirmed.add(d);
    this.landableUnconfirmed.clear();
  }

  // ---- slots and homes --------------------------------------------------

  /** Disk blocks [s, s+count) stop being slots (their data moved; the record saying so is appended). */
  freeSlots(s: number, count: number): void {
    this.slotOwner.delete(s, count);
    this.slotted.clearRange(s, s + count);
    this.recycled.push(s, count);
    this.noteOwnersLandable(s, count);
  }

  /** d's slot(s) in [d, d+count) are no longer its location: frees them. */
  dropSpill(d: number, count: number): void {
    for (const run of this.spill.runsIn(d, d + count)) {
      this.spill.delete(run.start, run.end - run.start);
      this.freeSlots(run.value, run.end - run.start);
    }
  }

  /**
   * Takes up to `count` slot candidates from the queues, in preference order
   * (recycled, confirmed non-homes, confirmed homes, then — unless `--safe`
   * or `confirmedOnly` — unconfirmed non-homes and homes), reserving them.
   */
  takeSlots(count: number, confirmedOnly: boolean): Array<{ start: number; count: number }> {
    const queues = [this.recycled, this.confirmedNonHome, this.confirmedHome];
    if (!confirmedOnly && !this.safe) queues.push(this.unconfirmedNonHome, this.unconfirmedHome);
    const out: Array<{ start: number; count: number }> = [];
    let left = count;
    for (const q of queues) {
      while (left > 0) {
        const run = q.take(left, this.isSlotCandidate);
        if (run === undefined) break;
        this.slotted.setRange(run.start, run.start + run.count);
        out.push({ start: run.start, count: run.count });
        left -= run.count;
      }
      if (left === 0) break;
    }
    return out;
  }

  /**
   * The confirmed slot candidates the next takeSlots calls would take first
   * (up to `count`), left in their queues: what a spill may destroy ahead.
   * Unconfirmed ones are never included (destroying them early would put
   * originals at risk that no write needs yet).
   */
  peekConfirmedSlots(count: number): Array<{ start: number; count: number }> {
    const out: Array<{ start: number; count: number }> = [];
    let left = count;
    for (const q of [this.recycled, this.confirmedNonHome, this.confirmedHome]) {
      for (const run of q.peek(left, this.isSlotCandidate)) {
        out.push(run);
        left -= run.count;
      }
      if (left === 0) break;
    }
    return out;
  }

  /** Gives back reserved slots whose write failed (their originals count as destroyed). */
  unreserveSlots(s: number, count: number): void {
    this.slotted.clearRange(s, s + count);
    this.recycled.push(s, count);
  }

  /**
   * Held zeroes for destination blocks [d0, d1): frees their RAM and slots.
   * A home that held the block's landed data becomes free again (recycled:
   * its original is gone already); the zeroes land there at finish.
   */
  holdZeroes(d0: number, d1: number): void {
    if (d1 <= d0) return;
    this.dropRamRange(d0, d1);
    const spilled = this.spill.runsIn(d0, d1);
    this.zeros.add(d0, d1);
    this.committer.append({ type: 'zero', dest: d0, count: d1 - d0 });
    for (const home of this.map.homeRuns(d0, d1 - d0)) {
      this.landed.forEachRun(true, home.disk, home.disk + home.count, (a, b) => {
        this.landed.clearRange(a, b);
        this.recycled.push(a, b - a);
      });
    }
    for (const run of spilled) {
      this.spill.delete(run.start, run.end - run.start);
      this.freeSlots(run.value, run.end - run.start);
    }
    this.heldVersion++;
  }

  /**
   * Carries RAM-held data the journal lacks into it as `hold` records (copies:
   * the RAM buffer may change before the commit encodes it), for the
   * destination blocks in [d0, d1). Only with a durable journal: otherwise
   * nothing survives a crash anyway. The caller commits (FLUSH, FUA, checkpoint).
   */
  persistHeld(d0 = 0, d1 = Number.MAX_SAFE_INTEGER): void {
    if (!this.committer.durable || this.ramDirty.size === 0) return;
    const blocks: number[] = [];
    if (this.ramDirty.size <= d1 - d0) {
      for (const d of this.ramDirty) if (d >= d0 && d < d1) blocks.push(d);
    } else {
      for (let d = d0; d < d1; d++) if (this.ramDirty.has(d)) blocks.push(d);
    }
    blocks.sort((a, b) => a - b);
    // The records write from the RAM buffers themselves: pinned until committed, they are replaced
    // rather than changed (ramWritable) and not reused (ramDrop). Copying 64 MiB of held blocks at the
    // FLUSH that ends a copy cost ~0.3 s, most of it first touches of fresh memory.
    const pinned: number[] = [];
    let lastSeq = 0;
    for (const d of blocks) {
      const cell = this.ram.get(d) as number;
      this.pinnedForJournal.set(cell, (this.pinnedForJournal.get(cell) ?? 0) + 1);
      pinned.push(cell);
      lastSeq = this.committer.append({ type: 'hold', dest: d, data: this.cells.view(cell) });
      this.ramDirty.delete(d);
    }
    this.pinnedThroughSeq = Math.max(this.pinnedThroughSeq, lastSeq);
    void this.committer.whenCommitted(lastSeq).then(() => {
      if (this.committer.committed < lastSeq) {
        // The commit failed (commits stop there): these blocks are not in the journal after all.
        for (let i = 0; i < blocks.length; i++) if (this.ram.get(blocks[i]) === pinned[i]) this.ramDirty.add(blocks[i]);
      }
      for (const cell of pinned) {
        const left = (this.pinnedForJournal.get(cell) ?? 1) - 1;
        if (left > 0) {
          this.pinnedForJournal.set(cell, left);
          continue;
        }
        this.pinnedForJournal.delete(cell);
        if (this.releasedWhilePinned.delete(cell)) {
          this.retainedBytes -= this.cells.lengthOf(cell);
          this.cells.giveBack(cell);
        }
      }
      for (const wake of this.pinWaiters.splice(0)) wake();
    });
  }

  /** Drops RAM entries of [d0, d1) without iterating a huge range. */
  dropRamRange(d0: number, d1: number): void {
    for (const d of this.ram.membersIn(d0, d1)) this.ramDrop(d);
  }

  // ---- errors -------------------------------------------------------------

  noSpace(reason: string): NbdError {
    this.enospcCount++;
    this.lastEnospc = reason;
    this.enospcLog.note(`destination write refused with ENOSPC: ${reason}`);
    return new NbdError(Errno.ENOSPC, reason);
  }
}
