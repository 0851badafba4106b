import { Errno, NbdError } from 'nbd-protocol-ts';
import type { DestinationReader } from './destination-reader.js';
import type { DiskWriter, WriteRun } from './disk-writer.js';
import type { LandingQueue } from './landing-queue.js';
import type { RangeLock } from './range-locks.js';
import type { RemapState } from './remap-state.js';
import { isAllZero } from '../format/zero-data.js';
import { zeroRange } from './block-device.js';
import { wholeBlocks } from './whole-blocks.js';

/** New data for one whole destination block. */
interface BlockWrite {
  d: number;
  data: Buffer;
}

/** Data about to land at its home. `wasLanded`: the home already held this block's data (no barrier needed). */
interface Landing extends BlockWrite {
  p: number;
  wasLanded: boolean;
}

/** Consecutive RAM-held blocks with consecutive homes, chosen to land so their RAM can be reused. */
interface VictimRun {
  dest: number;
  disk: number;
  buffers: Buffer[];
  locks: RangeLock[];
  bytes: number;
  /** Bytes whose buffers come back when the run has landed: not those a commit in flight writes from. */
  freeBytes: number;
}

/** What a relieve() round learnt: victims it lands free their RAM only once a commit in flight is done. */
interface Relief {
  pinnedVictims: boolean;
}

/**
 * How long a write that found no room waits, once, for replies of source
 * sent from the page cache to be read: their blocks are released only then
 * (SourcePath), and a copier that reads ahead writes before it has read them
 * all. They are I/O in flight, not a future read (G9), but a client that
 * stops reading must not hold writes up for longer than this.
 */
export const UNREAD_REPLIES_GRACE_MS = 1000;

/** Evicting a confirmed run goes on this far past what is needed, to write in fewer, larger pieces. */
const EVICT_BATCH_BLOCKS = 32;

/** Destroy-ahead window (at most an eighth of the cache): one permission commit covers this much future landing. */
const DESTROY_AHEAD_BYTES = 8 * 1024 * 1024;

export const READ_ONLY_UNTIL_SEALED = 'destination is read-only until the source is sealed: run `nbd-remapper seal`';

/**
 * Destination writes, write-zeroes and trims (docs/remap-engine.md
 * §Destination write). Each request holds the locks of its destination
 * blocks; the placement of every block is decided in one synchronous step,
 * then the disk I/O runs through the DiskWriter.
 */
export class DestinationWriter {
  constructor(
    private readonly s: RemapState,
    private readonly reader: DestinationReader,
    private readonly disk: DiskWriter,
  ) {}

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    const s = this.s;
    this.assertWritable();
    if (s.phase === 'finished') return this.writePlain(offset, data, fua);
    const B = s.B;
    const end = offset + data.length;
    const d0 = Math.floor(offset / B);
    const d1 = Math.ceil(end / B);
    const lock = await this.lockUnlessSettled(d0, d1);
    if (lock === undefined) return this.writePlain(offset, data, fua);
    try {
      // Only the first and last block can be partial; the loop below changes their RAM in the same turn as the check.
      const partial = [...new Set([d0, d1 - 1])].filter((d) => offset > d * B || end < d * B + s.map.destBlockLength(d));
      while (!this.changeable(partial)) await s.whenPinsReleased();
      const blocks: Array<BlockWrite | undefined> = [];
      const merges: Promise<void>[] = [];
      for (let d = d0; d < d1; d++) {
        const blockStart = d * B;
        const blockEnd = blockStart + s.map.destBlockLength(d);
        const from = Math.max(offset, blockStart);
        const to = Math.min(end, blockEnd);
        const piece = data.subarray(from - offset, to - offset);
        if (from === blockStart && to === blockEnd) {
          blocks.push({ d, data: piece });
          continue;
        }
        const ram = s.ramWritable(d);
        if (ram !== undefined) {
          // Partial write of a RAM-held block: merge in place (we hold its lock, nothing else touches it).
          piece.copy(ram, from - blockStart);
          s.ramDirty.add(d);
          continue;
        }
        const slot = blocks.length;
        blocks.push(undefined);
        merges.push(
          this.reader.readBlock(d).then((current) => {
            piece.copy(current, from - blockStart);
            blocks[slot] = { d, data: current };
          }),
        );
      }
      await Promise.all(merges);
      await this.store(blocks.filter((b): b is BlockWrite => b !== undefined));
    } finally {
      lock.release();
    }
    if (fua) await this.flushRange(d0, d1);
  }

  /**
   * FLUSH: every write acknowledged so far becomes durable — RAM-held data the
   * journal lacks is carried into it (`hold`), then the device is synced and
   * the journal committed (one group commit for every caller in flight).
   */
  flush(): Promise<void> {
    this.s.persistHeld();
    return this.s.committer.flush();
  }

  /** FUA: the same for one request's destination blocks. */
  private flushRange(d0: number, d1: number): Promise<void> {
    this.s.persistHeld(d0, d1);
    return this.s.committer.flush();
  }

  async writeZeroes(offset: number, length: number, fua: boolean, fast: boolean): Promise<void> {
    const s = this.s;
    this.assertWritable();
    if (s.phase === 'finished') return this.zeroPlain(offset, length, fua, fast);
    const B = s.B;
    const end = offset + length;
    const d0 = Math.floor(offset / B);
    const d1 = Math.ceil(end / B);
    const lock = await this.lockUnlessSettled(d0, d1);
    if (lock === undefined) return this.zeroPlain(offset, length, fua, fast);
    try {
      const { start: f0, end: f1 } = wholeBlocks(offset, length, B, s.map.destinationSize);
      if (f0 < f1) s.holdZeroes(f0, f1);
      const partial: BlockWrite[] = [];
      for (const d of new Set([d0, d1 - 1])) {
        if (d >= f0 && d < f1) continue;
        const blockStart = d * B;
        const from = Math.max(offset, blockStart) - blockStart;
        const to = Math.min(end, blockStart + s.map.destBlockLength(d)) - blockStart;
        while (!this.changeable([d])) await s.whenPinsReleased();
        const ram = s.ramWritable(d);
        if (ram !== undefined) {
          ram.fill(0, from, to);
          s.ramDirty.add(d);
          continue;
        }
        const current = await this.reader.readBlock(d);
        current.fill(0, from, to);
        partial.push({ d, data: current });
      }
      await this.store(partial);
    } finally {
      lock.release();
    }
    if (fua) await this.flushRange(d0, d1);
  }

  /** Advisory: held blocks (RAM or slot) become zero extents; other blocks keep their bytes. */
  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    const s = this.s;
    this.assertWritable();
    if (s.phase === 'finished') return;
    const { start: f0, end: f1 } = wholeBlocks(offset, length, s.B, s.map.destinationSize);
    if (f0 >= f1) return;
    const lock = await this.lockUnlessSettled(f0, f1);
    if (lock === undefined) return;
    try {
      for (const d of s.ram.membersIn(f0, f1)) s.holdZeroes(d, d + 1);
      for (const run of s.spill.runsIn(f0, f1)) s.holdZeroes(run.start, run.end);
    } finally {
      lock.release();
    }
    if (fua) await s.committer.flush();
  }

  /**
   * The request's lock on destination blocks [d0, d1) — or undefined when
   * finish settled while it waited (RangeLocks.holdNewLocks): the destination
   * is a plain view now, and the request goes there instead.
   */
  private async lockUnlessSettled(d0: number, d1: number): Promise<RangeLock | undefined> {
    const lock = await this.s.locks.acquire(d0, d1);
    if (this.s.phase !== 'finished') return lock;
    lock.release();
    return undefined;
  }

  private assertWritable(): void {
    const s = this.s;
    if (s.phase !== 'unsealed') return;
    s.unsealedWriteLog.note('destination write refused: seal the source first (`nbd-remapper seal`)');
    throw new NbdError(Errno.EPERM, READ_ONLY_UNTIL_SEALED);
  }

  /**
   * Places whole blocks (the caller holds their locks). Decides every block in
   * one synchronous step, then runs the I/O; a block that finds neither RAM
   * nor a slot makes the request fail with ENOSPC after the rest is done.
   * Blocks that need RAM a commit in flight still holds (G4) are placed again
   * once it is done.
   */
  private async store(blocks: BlockWrite[]): Promise<void> {
    let pending = blocks;
    let readersAwaited = false;
    while (pending.length > 0) {
      const round = await this.place(pending, !readersAwaited);
      pending = round.later;
      if (pending.length === 0) break;
      if (round.awaitReaders) {
        readersAwaited = true;
        await this.s.unreadSourceReplies.noneWithin(UNREAD_REPLIES_GRACE_MS);
      } else {
        await this.s.whenRoomMayFree();
      }
    }
  }

  /**
   * One placement round of store(): the blocks to place again after the
   * pinned RAM is released, or (`awaitReaders`, when `mayAwaitReaders`) after
   * unread replies of source are read.
   */
  private async place(blocks: BlockWrite[], mayAwaitReaders: boolean): Promise<{ later: BlockWrite[]; awaitReaders: boolean }> {
    const s = this.s;
    const landings: Landing[] = [];
    const inPlace: Array<BlockWrite & { slot: number }> = [];
    const needRoom: BlockWrite[] = [];
    const later: BlockWrite[] = [];
    let zeroFrom = -1;
    let zeroTo = -1;
    const flushZeroes = (): void => {
      if (zeroFrom >= 0) s.holdZeroes(zeroFrom, zeroTo);
      zeroFrom = zeroTo = -1;
    };
    for (const block of blocks) {
      const { d, data } = block;
      if (isAllZero(data)) {
        if (zeroTo !== d) flushZeroes();
        if (zeroFrom < 0) zeroFrom = d;
        zeroTo = d + 1;
        continue;
      }
      const p = s.map.homeOf(d);
      if (s.canLandAt(p)) {
        landings.push({ d, data, p, wasLanded: s.landed.get(p) });
        s.landed.set(p);
        continue;
      }
      const slot = s.spill.get(d);
      if (slot !== undefined) {
        inPlace.push({ d, data, slot });
        continue;
      }
      if ((s.ram.has(d) && !s.isPinned(d)) || s.hasRoomFor(data.length)) {
        s.ramAdmit(d, data);
        continue;
      }
      // In RAM but pinned: overwritten in place once the commit is done (it keeps d's place in RAM).
      if (s.ram.has(d)) later.push(block);
      else needRoom.push(block);
    }
    flushZeroes();

    const work: Array<Promise<BlockWrite[] | void>> = [];
    let refused: NbdError | undefined;
    let awaitReaders = false;
    // Counted before relieve: a block of this very request that needs room may wait for them.
    const landingHeld = landings.some((l) => s.ram.has(l.d) || s.spill.has(l.d)) ? s.beginRoomMove() : undefined;
    if (needRoom.length > 0) {
      const relief = this.relieve(needRoom, landings, work, mayAwaitReaders);
      refused = relief.refused;
      awaitReaders = relief.awaitReaders === true;
      later.push(...relief.later);
    }
    if (landings.length > 0) work.push(landingHeld === undefined ? this.land(landings) : this.land(landings).finally(landingHeld));
    if (inPlace.length > 0) {
      const runs = groupRuns(inPlace, (b) => b.slot);
      work.push(this.disk.write(runs, false));
    }
    const results = await Promise.allSettled(work);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    if (refused !== undefined) throw refused;
    for (const r of results) if (r.status === 'fulfilled' && r.value) later.push(...r.value);
    return { later, awaitReaders };
  }

  /**
   * Whether the RAM of blocks `ds` may be changed in place now (ramWritable):
   * a block a commit in flight writes from takes a second buffer, so it needs
   * room for one. The caller holds the blocks' locks and changes them in the
   * same turn: an await between the check and the change would let another
   * request take the same room (G4). Otherwise the caller waits for the
   * commit (I/O in flight, G9-safe) and asks again.
   */
  private changeable(ds: readonly number[]): boolean {
    const s = this.s;
    let bytes = 0;
    for (const d of ds) if (s.isPinned(d)) bytes += s.map.destBlockLength(d);
    return bytes === 0 || s.hasRoomFor(bytes);
  }

  /**
   * Pressure (RAM full): frees RAM by landing, or spills, in the order of
   * least damage (docs/remap-engine.md §Destination write, step 6). Pushes the
   * I/O it starts onto `work`; returns the ENOSPC error for what found no room.
   */
  private relieve(
    items: BlockWrite[],
    landings: Landing[],
    work: Array<Promise<BlockWrite[] | void>>,
    mayAwaitReaders: boolean,
  ): { refused?: NbdError; later: BlockWrite[]; awaitReaders?: boolean } {
    const s = this.s;
    const relief: Relief = { pinnedVictims: false };
    let rest = items;
    // a. Land confirmed RAM data; the new blocks take its place.
    rest = this.evictFor(rest, s.landableConfirmed, true, work, relief);
    // b. Spill into slots whose destruction risks nothing.
    rest = this.spillInto(rest, true, work);
    if (rest.length > 0 && !s.safe) {
      // c. Land at unconfirmed homes: older RAM data first, then the new blocks themselves.
      rest = this.evictFor(rest, s.landableUnconfirmed, false, work, relief);
      rest = rest.filter((b) => {
        const p = s.map.homeOf(b.d);
        if (!s.released.get(p) || s.slotted.get(p) || s.landed.get(p)) return true;
        landings.push({ ...b, p, wasLanded: false });
        s.landed.set(p);
        return false;
      });
      // d. Spill into unconfirmed blocks.
      rest = this.spillInto(rest, false, work);
    }
    if (rest.length === 0) return { later: [] };
    // RAM a commit in flight still holds, or a move of held data in flight, comes back when it is done: wait for that rather than refuse.
    if (s.retainedBytes > 0 || relief.pinnedVictims || s.roomMovesPending) return { later: rest };
    // Blocks under replies sent from the page cache are released once those are read: wait for that, once.
    if (mayAwaitReaders && s.unreadSourceReplies.count > 0) return { later: rest, awaitReaders: true };
    const safeNote = s.safe && (!s.unconfirmedHome.isEmpty || !s.unconfirmedNonHome.isEmpty || s.landableUnconfirmed.size > 0);
    if (safeNote) s.safeBlocked = true;
    const refused = s.noSpace(
      `no room for ${rest.length} destination block(s) (first: ${rest[0].d}): the RAM cache is full ` +
        `(${s.ramBytes} of ${s.cacheBytes} bytes) and no released disk block is free for a spill; ` +
        (safeNote
          ? '--safe forbids destroying originals not confirmed yet: run `nbd-remapper checkpoint` after syncing the new filesystems'
          : s.phase === 'finishing'
            ? 'finish is still moving held data home and nothing it frees is free yet: send the write again, or write less while finish runs'
            : 'read more of the source (it releases blocks), fstrim the old filesystems before sealing, or raise --cache'),
    );
    return { refused, later: [] };
  }

  /** Lands RAM victims from `list` to make room for `items`; returns the items that still need room. */
  private evictFor(items: BlockWrite[], list: LandingQueue, confirmedClass: boolean, work: Array<Promise<BlockWrite[] | void>>, relief: Relief): BlockWrite[] {
    if (items.length === 0 || list.size === 0) return items;
    const wanted = items.reduce((n, b) => n + b.data.length, 0);
    const victims = this.pickVictims(list, wanted, confirmedClass);
    if (victims.length === 0) return items;
    // A pinned victim's buffer is kept until its commit is done: landing it frees no room yet.
    let room = 0;
    for (const v of victims) {
      room += v.freeBytes;
      if (v.freeBytes < v.bytes) relief.pinnedVictims = true;
    }
    const admitted: BlockWrite[] = [];
    let i = 0;
    for (; i < items.length && items[i].data.length <= room; i++) {
      admitted.push(items[i]);
      room -= items[i].data.length;
    }
    const moved = this.s.beginRoomMove();
    work.push(this.evict(victims, admitted, this.destroyAhead(list, victims, confirmedClass)).finally(moved));
    return items.slice(i);
  }

  /**
   * Destroy-ahead: when a wave of victims destroys originals, its `destroy`
   * record (one commit) also covers the homes of the next RAM blocks of the
   * same landing list — the ones the next waves will land, in this order — up
   * to a window. Those are destroyed now (at-risk counted) and written later
   * with their permission already committed; until then source reads still
   * get their originals from the disk, and their write captures them for the
   * revisit cache (DiskWriter.plan). Only when the wave itself destroys
   * something, so the window is renewed once it is used up.
   */
  private destroyAhead(list: LandingQueue, victims: readonly VictimRun[], confirmedClass: boolean): Array<{ start: number; end: number }> {
    const s = this.s;
    if (!victims.some((v) => s.destroyed.countRange(v.disk, v.disk + v.buffers.length) < v.buffers.length)) return [];
    const windowBlocks = this.destroyAheadBlocks();
    const out: Array<{ start: number; end: number }> = [];
    let seen = 0;
    let looked = 0;
    for (const d of list.values()) {
      if (seen >= windowBlocks || looked++ >= 4 * windowBlocks) break;
      if (!this.isVictim(d, confirmedClass)) continue;
      seen++;
      const p = s.map.homeOf(d);
      if (s.destroyed.get(p)) continue;
      const last = out[out.length - 1];
      if (last !== undefined && last.end === p) last.end++;
      else out.push({ start: p, end: p + 1 });
    }
    return out;
  }

  /** RAM-held `d` may land at its home now, in this class of the pressure order. */
  private isVictim(d: number, confirmedClass: boolean): boolean {
    const s = this.s;
    const p = s.map.homeOf(d);
    if (!s.ram.has(d) || !s.released.get(p) || s.slotted.get(p) || s.landed.get(p)) return false;
    if (s.phase === 'finishing' || !s.unconfirmed.get(p) || s.destroyed.get(p)) return true;
    return !confirmedClass && !s.safe;
  }

  /** Chooses RAM-held blocks to land, oldest first, in runs of consecutive homes; takes their locks without waiting. */
  private pickVictims(list: LandingQueue, wanted: number, confirmedClass: boolean): VictimRun[] {
    const s = this.s;
    const runs: VictimRun[] = [];
    let bytes = 0;
    const isVictim = (d: number): boolean => this.isVictim(d, confirmedClass);
    for (const d of list.values()) {
      if (bytes >= wanted) break;
      if (!isVictim(d)) {
        list.delete(d);
        continue;
      }
      if (s.locks.isBusy(d, d + 1)) continue;
      const run: VictimRun = { dest: d, disk: s.map.homeOf(d), buffers: [], locks: [], bytes: 0, freeBytes: 0 };
      let next = d;
      for (;;) {
        const buffer = s.ramData(next) as Buffer;
        run.buffers.push(buffer);
        run.bytes += buffer.length;
        if (!s.isPinned(next)) run.freeBytes += buffer.length;
        bytes += buffer.length;
        s.landed.set(run.disk + run.buffers.length - 1);
        s.landableConfirmed.delete(next);
        s.landableUnconfirmed.delete(next);
        next++;
        const more = bytes < wanted || (confirmedClass && run.buffers.length < EVICT_BATCH_BLOCKS);
        if (!more || next >= s.map.destinationBlocks || !s.ram.has(next)) break;
        if (s.map.homeOf(next) !== run.disk + run.buffers.length || !isVictim(next) || s.locks.isBusy(next, next + 1)) break;
      }
      // Nothing was free to interleave since isBusy said so: this cannot fail.
      run.locks.push(s.locks.tryAcquire(run.dest, run.dest + run.buffers.length) as RangeLock);
      runs.push(run);
    }
    return runs;
  }

  /**
   * Lands victims, then admits `admitted` into the RAM they leave (same
   * synchronous step: RAM never exceeds the cap). A victim a FLUSH pinned
   * while it landed leaves no room yet: what does not fit is returned, to be
   * placed again once that commit is done.
   */
  private async evict(victims: VictimRun[], admitted: BlockWrite[], ahead: ReadonlyArray<{ start: number; end: number }>): Promise<BlockWrite[]> {
    const s = this.s;
    const runs: WriteRun[] = victims.map((v) => ({ disk: v.disk, count: v.buffers.length, data: joined(v.buffers) }));
    try {
      await this.disk.write(runs, true, ahead);
    } catch (err) {
      for (const v of victims) {
        s.landed.clearRange(v.disk, v.disk + v.buffers.length);
        // Still held: back on the landing queues for a later attempt.
        for (let i = 0; i < v.buffers.length; i++) s.noteLandable(v.dest + i);
      }
      throw err;
    } finally {
      for (const v of victims) for (const l of v.locks) l.release();
    }
    for (const v of victims) {
      for (let i = 0; i < v.buffers.length; i++) s.ramDrop(v.dest + i);
      s.committer.append({ type: 'land', dest: v.dest, count: v.buffers.length });
    }
    s.anyLanded = true;
    const later: BlockWrite[] = [];
    for (const b of admitted) {
      if (s.hasRoomFor(b.data.length)) s.ramAdmit(b.d, b.data);
      else later.push(b);
    }
    return later;
  }

  /** Spills items into slots taken from the queues; returns the items that found none. */
  private spillInto(items: BlockWrite[], confirmedOnly: boolean, work: Array<Promise<BlockWrite[] | void>>): BlockWrite[] {
    if (items.length === 0) return items;
    const s = this.s;
    const slots = s.takeSlots(items.length, confirmedOnly);
    const placed: Array<BlockWrite & { slot: number }> = [];
    let i = 0;
    for (const run of slots) {
      for (let k = 0; k < run.count; k++, i++) placed.push({ d: items[i].d, data: items[i].data, slot: run.start + k });
    }
    if (placed.length > 0) work.push(this.spill(placed, confirmedOnly ? this.spillAhead(slots) : []));
    return items.slice(i);
  }

  /**
   * Destroy-ahead for spills, as for landings (destroyAhead): when this wave
   * destroys originals, its `destroy` record also covers the confirmed slot
   * candidates the next waves will take — one permission commit per window,
   * not one per wave.
   */
  private spillAhead(slots: ReadonlyArray<{ start: number; count: number }>): Array<{ start: number; end: number }> {
    const s = this.s;
    if (!slots.some((r) => s.destroyed.countRange(r.start, r.start + r.count) < r.count)) return [];
    return s.peekConfirmedSlots(this.destroyAheadBlocks()).map((r) => ({ start: r.start, end: r.start + r.count }));
  }

  /** The destroy-ahead window in blocks: DESTROY_AHEAD_BYTES, at most an eighth of the cache, at least 2. */
  private destroyAheadBlocks(): number {
    return Math.max(2, Math.floor(Math.min(DESTROY_AHEAD_BYTES, this.s.cacheBytes / 8) / this.s.B));
  }

  private async spill(placed: Array<BlockWrite & { slot: number }>, ahead: ReadonlyArray<{ start: number; end: number }>): Promise<void> {
    const s = this.s;
    const runs = groupRuns(placed, (b) => b.slot);
    try {
      await this.disk.write(runs, true, ahead);
    } catch (err) {
      for (const b of placed) s.unreserveSlots(b.slot, 1);
      throw err;
    }
    for (const run of groupDestRuns(placed, (b) => b.slot)) {
      s.zeros.remove(run.dest, run.dest + run.count);
      s.spill.set(run.dest, run.count, run.disk);
      s.slotOwner.set(run.disk, run.count, run.dest);
      s.committer.append({ type: 'spill', dest: run.dest, count: run.count, slot: run.disk });
    }
    s.heldVersion++;
  }

  private async land(landings: Landing[]): Promise<void> {
    const s = this.s;
    const runs = groupRuns(landings, (b) => b.p);
    try {
      await this.disk.write(runs, landings.some((l) => !l.wasLanded));
    } catch (err) {
      for (const l of landings) {
        if (!l.wasLanded && (s.ram.has(l.d) || s.zeros.has(l.d) || s.spill.has(l.d))) s.landed.clear(l.p);
      }
      throw err;
    }
    for (const run of groupDestRuns(landings, (b) => b.p)) {
      s.committer.append({ type: 'land', dest: run.dest, count: run.count });
      s.dropRamRange(run.dest, run.dest + run.count);
      s.zeros.remove(run.dest, run.dest + run.count);
      s.dropSpill(run.dest, run.count);
    }
    s.anyLanded = true;
  }

  /** The `finished` record is committed (RemapState.finishedDurable): only then may a plain write reach the disk. */
  private async afterFinishedIsDurable(): Promise<void> {
    const pending = this.s.finishedDurable;
    if (pending === undefined) return;
    await pending.catch((err: unknown) => {
      throw new NbdError(Errno.EIO, `finish could not commit its end to the state file, so the disk must not change: ${(err as Error).message}`);
    });
  }

  private async writePlain(offset: number, data: Buffer, fua: boolean): Promise<void> {
    const s = this.s;
    await this.afterFinishedIsDurable();
    await Promise.all(s.map.splitBytes(offset, data.length).map((p) => s.device.write(p.diskOffset, data.subarray(p.destOffset - offset, p.destOffset - offset + p.length))));
    if (fua) await s.committer.flush();
  }

  private async zeroPlain(offset: number, length: number, fua: boolean, fast: boolean): Promise<void> {
    const s = this.s;
    if (fast) throw new NbdError(Errno.ENOTSUP, 'zeroing would mean writing zeroes to the disk');
    await this.afterFinishedIsDurable();
    for (const piece of s.map.splitBytes(offset, length)) await zeroRange(s.device, piece.diskOffset, piece.length);
    if (fua) await s.committer.flush();
  }
}

/** Coalesces blocks with consecutive destination and disk numbers into write runs. */
function groupRuns<T extends BlockWrite>(blocks: readonly T[], diskOf: (b: T) => number): WriteRun[] {
  const runs: WriteRun[] = [];
  let i = 0;
  while (i < blocks.length) {
    let j = i + 1;
    while (j < blocks.length && blocks[j].d === blocks[j - 1].d + 1 && diskOf(blocks[j]) === diskOf(blocks[j - 1]) + 1) j++;
    runs.push({ disk: diskOf(blocks[i]), count: j - i, data: joined(blocks.slice(i, j).map((b) => b.data)) });
    i = j;
  }
  return runs;
}

/**
 * Buffers back to back, without copying: one view when they are adjacent
 * slices of the same memory (a request's data), else the list (written with
 * writev when the device has it).
 */
function joined(buffers: readonly Buffer[]): Buffer | readonly Buffer[] {
  if (buffers.length === 1) return buffers[0];
  const first = buffers[0];
  let end = first.byteOffset + first.length;
  for (let i = 1; i < buffers.length; i++) {
    const b = buffers[i];
    if (b.buffer !== first.buffer || b.byteOffset !== end) return buffers;
    end += b.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}

/** The same grouping as runs of {dest, disk, count}, for the records. */
function groupDestRuns<T extends BlockWrite>(blocks: readonly T[], diskOf: (b: T) => number): Array<{ dest: number; disk: number; count: number }> {
  const runs: Array<{ dest: number; disk: number; count: number }> = [];
  for (const b of blocks) {
    const last = runs[runs.length - 1];
    if (last !== undefined && b.d === last.dest + last.count && diskOf(b) === last.disk + last.count) last.count++;
    else runs.push({ dest: b.d, disk: diskOf(b), count: 1 });
  }
  return runs;
}
