import { Errno, NbdError } from 'nbd-protocol-ts';
import { zeroRange } from './block-device.js';
import { RangeIndex, type Span } from './range-index.js';
import type { RemapState } from './remap-state.js';
import { wholeBlocks } from './whole-blocks.js';

export const SOURCE_SEALED = 'source is sealed: it is read-only now';

interface DiskRead {
  diskOffset: number;
  bufferOffset: number;
  length: number;
  first: number;
  last: number;
}

/**
 * The `source` export's operations. Unsealed: a read-write passthrough whose
 * TRIMs mark blocks free. Sealed and later: read-only; a read returns the
 * originals (from the disk, or for destroyed blocks from the revisit cache or
 * the capture in flight) or fails with EIO — never destination data (G2) —
 * and releases every block it covered entirely.
 */
export class SourcePath {
  private idleWaiters: Array<() => void> = [];
  /** Read blocks whose release waits for a reply from the page cache that covers them to be read. */
  private readonly deferredReleases = new RangeIndex<Span>();

  constructor(private readonly s: RemapState) {}

  async readInto(buffer: Buffer, offset: number): Promise<void> {
    const s = this.s;
    if (s.phase === 'unsealed') return s.device.readInto(buffer, offset);
    if (s.phase === 'finished') {
      // The destination writes straight to the disk now, untracked: no byte of it can be vouched for as an original.
      s.revisitMissLog.note('source read after finish failed with EIO: the source export is gone, the disk holds the new layout');
      throw new NbdError(Errno.EIO, 'the source is gone: finish has completed');
    }
    const B = s.B;
    const end = offset + buffer.length;
    const p0 = Math.floor(offset / B);
    const p1 = Math.ceil(end / B);
    const reads: DiskRead[] = [];
    const waits: Array<Promise<number | undefined>> = [];
    const lost: number[] = [];
    let pending: DiskRead | undefined;
    for (let p = p0; p < p1; p++) {
      const blockStart = p * B;
      const from = Math.max(offset, blockStart);
      const to = Math.min(end, blockStart + s.map.diskBlockLength(p));
      const inBlock = from - blockStart;
      // Destroyed ahead but not yet planned for a write: the original is still on the disk, and a write
      // planned later waits for this read (the I/O tracker), so the disk serves it.
      if (!s.destroyed.get(p) || s.destroyedAhead.has(p)) {
        if (pending !== undefined && pending.diskOffset + pending.length === from) {
          pending.length += to - from;
          pending.last = p;
        } else {
          pending = { diskOffset: from, bufferOffset: from - offset, length: to - from, first: p, last: p };
          reads.push(pending);
        }
        continue;
      }
      pending = undefined;
      if (s.holes.get(p)) {
        // Released as a hole: the original was zeroes.
        buffer.fill(0, from - offset, to - offset);
        continue;
      }
      const capture = s.captures.find(p);
      if (capture !== undefined) {
        waits.push(
          capture.data.then((chunks) => {
            const chunk = chunks?.find((c) => c.start <= p && p < c.start + Math.ceil(c.data.length / B));
            if (chunk === undefined) {
              s.revisit.misses++;
              return p;
            }
            s.revisit.hits++;
            const at = (p - chunk.start) * B + inBlock;
            chunk.data.copy(buffer, from - offset, at, at + (to - from));
            return undefined;
          }),
        );
        continue;
      }
      if (!s.revisit.copyOut(p, inBlock, inBlock + (to - from), buffer, from - offset)) lost.push(p);
    }
    if (lost.length > 0) throw this.originalsLost(lost);
    if (waits.length === 0 && reads.length === 1) await this.readOne(buffer, reads[0]);
    else await this.readAll(buffer, reads, waits);
    this.releaseRead(offset, buffer.length);
  }

  /**
   * The disk blocks a sealed read of [offset, offset+length) touches, when it
   * may go from the page cache (SourceView.fileSpan): only while none of them
   * has been released. Every write of the engine goes to released blocks, so
   * nothing changes these bytes while the client has yet to read them; and
   * they stay unreleased until it has (releaseRead, UnreadSourceReplies).
   * Undefined otherwise, and before sealing.
   */
  pageCacheBlocks(offset: number, length: number): { start: number; end: number } | undefined {
    const s = this.s;
    if (s.phase !== 'sealed') return undefined;
    const start = Math.floor(offset / s.B);
    const end = Math.ceil((offset + length) / s.B);
    return s.released.countRange(start, end) === 0 ? { start, end } : undefined;
  }

  /**
   * A sealed source read of [offset, offset+length) has reached its client:
   * the blocks it covered entirely are released (the client has not seen the
   * rest of a partly read block). Blocks a reply from the page cache still
   * holds unread stay unreleased until that reply is read; they are released
   * then (retryDeferredReleases).
   */
  releaseRead(offset: number, length: number): void {
    const s = this.s;
    if (s.phase !== 'sealed') return;
    const { start, end } = wholeBlocks(offset, length, s.B, s.map.diskSize);
    if (start < end) this.releaseUnlessUnread(start, end);
  }

  /**
   * A block-status reply of the sealed source has told its client that disk
   * blocks [start, end) are a hole: the client knows their originals (zeroes)
   * as if it had read them, and copiers that follow block status never read
   * them. They are released and remembered as holes, so a read after they
   * are overwritten still returns zeroes; and confirmed at once, like blocks
   * declared free: redoing the copy after a crash never needs them, since
   * the state gives their zeroes back. Blocks under a page-cache reply not
   * read yet are left for that reply's read.
   */
  releaseHoles(start: number, end: number): void {
    const s = this.s;
    if (s.phase !== 'sealed' || start >= end) return;
    for (const run of s.unreadSourceReplies.split(start, end).free) {
      for (const fresh of s.release(run.start, run.end, true)) {
        s.holes.setRange(fresh.start, fresh.end);
        s.committer.append({ type: 'release-hole', start: fresh.start, count: fresh.end - fresh.start });
      }
    }
  }

  /** A reply from the page cache covering disk blocks [start, end) has been read: blocks whose release waited for it alone are released. */
  retryDeferredReleases(start: number, end: number): void {
    if (this.deferredReleases.size === 0 || this.s.phase !== 'sealed') return;
    const waiting = this.deferredReleases.overlapping(start, end);
    for (const run of waiting) this.deferredReleases.delete(run);
    for (const run of waiting) this.releaseUnlessUnread(run.start, run.end);
  }

  private releaseUnlessUnread(f0: number, f1: number): void {
    const s = this.s;
    const { free, covered } = s.unreadSourceReplies.split(f0, f1);
    for (const run of free) {
      for (const fresh of s.release(run.start, run.end, false)) s.committer.append({ type: 'release', start: fresh.start, count: fresh.end - fresh.start });
    }
    for (const run of covered) this.deferredReleases.add(run);
  }

  /** The common case, one run of originals still on the disk: no promise machinery beyond the read itself (per-request cost on 4K random reads). */
  private async readOne(buffer: Buffer, r: DiskRead): Promise<void> {
    const s = this.s;
    const tracked = s.io.register('read', r.first, r.last + 1);
    try {
      if (!tracked.clear) await tracked.ready;
      await s.device.readInto(buffer.subarray(r.bufferOffset, r.bufferOffset + r.length), r.diskOffset);
    } finally {
      tracked.done();
    }
  }

  private async readAll(buffer: Buffer, reads: readonly DiskRead[], waits: ReadonlyArray<Promise<number | undefined>>): Promise<void> {
    const s = this.s;
    const tracked = reads.map((r) => s.io.register('read', r.first, r.last + 1));
    try {
      const [lostLate] = await Promise.all([
        Promise.all(waits),
        Promise.all(
          reads.map(async (r, i) => {
            await tracked[i].ready;
            await s.device.readInto(buffer.subarray(r.bufferOffset, r.bufferOffset + r.length), r.diskOffset);
          }),
        ),
      ]);
      const late = lostLate.filter((p): p is number => p !== undefined);
      if (late.length > 0) throw this.originalsLost(late);
    } finally {
      for (const t of tracked) t.done();
    }
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    await this.mutate(offset, data.length, () => this.s.device.write(offset, data));
    if (fua) await this.s.committer.flush();
  }

  async writeZeroes(offset: number, length: number, fua: boolean, fast: boolean): Promise<void> {
    const s = this.s;
    this.assertWritable();
    // Without fallocate (Node has none) zeroing is only fast where the range is a hole already.
    if (fast && !(await s.device.isZeroRangeFast?.(offset, length))) throw new NbdError(Errno.ENOTSUP, 'zeroing this range would need writing zeroes');
    await this.mutate(offset, length, () => zeroRange(s.device, offset, length));
    if (fua) await s.committer.flush();
  }

  /** Before sealing: the blocks the range covers entirely are free (their originals are not needed). Not passed to the disk. */
  async trim(offset: number, length: number): Promise<void> {
    const s = this.s;
    this.assertWritable();
    const { start: f0, end: f1 } = wholeBlocks(offset, length, s.B, s.map.diskSize);
    if (f0 >= f1) return;
    s.free.add(f0, f1);
    s.committer.append({ type: 'free', start: f0, count: f1 - f0 });
  }

  flush(): Promise<void> {
    return this.s.committer.flush();
  }

  /** Resolves when no source write is in flight (seal waits for this). */
  whenIdle(): Promise<void> {
    if (this.s.sourceWritesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private assertWritable(): void {
    const s = this.s;
    if (s.phase !== 'unsealed' || s.sealing) throw new NbdError(Errno.EPERM, SOURCE_SEALED);
  }

  /** A source write before sealing: the touched blocks are in use again (no longer free), then the write. */
  private async mutate(offset: number, length: number, io: () => Promise<void>): Promise<void> {
    const s = this.s;
    this.assertWritable();
    const p0 = Math.floor(offset / s.B);
    const p1 = Math.ceil((offset + length) / s.B);
    if (s.free.coveredIn(p0, p1) > 0) {
      s.free.remove(p0, p1);
      s.committer.append({ type: 'unfree', start: p0, count: p1 - p0 });
    }
    s.sourceWritesInFlight++;
    try {
      await io();
    } finally {
      s.sourceWritesInFlight--;
      if (s.sourceWritesInFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  private originalsLost(blocks: number[]): NbdError {
    const s = this.s;
    const B = s.B;
    for (const p of blocks) {
      s.revisitMissLog.note(
        `source read of disk block ${p} (bytes ${p * B}…${p * B + s.map.diskBlockLength(p) - 1}) failed with EIO: ` +
          `its original was overwritten by destination data and is not in the revisit cache (${s.revisit.maxBytes} bytes); a larger --revisit-cache keeps more originals`,
      );
    }
    return new NbdError(Errno.EIO, `the original of source block ${blocks[0]} is gone (overwritten, not in the revisit cache)`);
  }
}
