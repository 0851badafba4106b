import { Errno, NbdError } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { copyByPlan, type CopyDestination, type CopySource } from '../../../src/client/copy/copy-engine.js';
import { CopyFailure } from '../../../src/client/copy/copy-failure.js';
import type { CopyPlan } from '../../../src/client/copy/copy-plan.js';

/** A seeded generator, so "random" completion orders repeat run to run. */
function lcg(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
}

/** Resolves after a number of event-loop turns: requests finish out of order, without timers. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

class Harness {
  readonly log: string[] = [];
  /** Chunks between their read being issued and their write being answered. */
  active = 0;
  maxActive = 0;
  writesDone = 0;
  writesDoneAtFlush = -1;
  readonly next: (n: number) => number;

  constructor(
    readonly disk: Buffer,
    readonly out: Buffer,
    seed: number,
    private readonly failWith?: { at: 'read' | 'write' | 'flush'; offset: number; errno: (typeof Errno)[keyof typeof Errno] },
    readonly canWriteZeroes = true,
  ) {
    this.next = lcg(seed);
  }

  source(): CopySource {
    return {
      preadInto: async (into, offset) => {
        this.log.push(`read ${offset}`);
        this.active++;
        this.maxActive = Math.max(this.maxActive, this.active);
        await turns(this.next(4));
        if (this.failWith?.at === 'read' && this.failWith.offset === offset) throw new NbdError(this.failWith.errno, `READ at ${offset} failed`);
        this.disk.copy(into, 0, offset, offset + into.length);
      },
    };
  }

  destination(): CopyDestination {
    const written = async (offset: number, what: string, apply: () => void): Promise<void> => {
      await turns(this.next(4));
      if (this.failWith?.at === 'write' && this.failWith.offset === offset) {
        this.active--;
        throw new NbdError(this.failWith.errno, `WRITE at ${offset} failed`);
      }
      apply();
      this.log.push(`${what} ${offset}`);
      this.writesDone++;
      this.active--;
    };
    return {
      canWriteZeroes: this.canWriteZeroes,
      canFlush: true,
      pwrite: (offset, data) => written(offset, 'write', () => data.copy(this.out, offset)),
      zero: (offset, length) => written(offset, 'zero', () => this.out.fill(0, offset, offset + length)),
      flush: async () => {
        this.writesDoneAtFlush = this.writesDone;
        this.log.push('flush');
        if (this.failWith?.at === 'flush') throw new NbdError(this.failWith.errno, 'FLUSH failed');
      },
    };
  }
}

function randomDisk(size: number, seed: number): Buffer {
  const next = lcg(seed);
  const disk = Buffer.alloc(size);
  for (let i = 0; i < size; i++) disk[i] = next(256);
  return disk;
}

describe('copyByPlan', () => {
  it('copies every move, issues reads in plan order, keeps at most N chunks in flight, flushes after the last write', async () => {
    const disk = randomDisk(64 * 1024, 1);
    disk.fill(0, 16 * 1024, 32 * 1024);
    for (const maxInFlight of [1, 3, 8]) {
      const h = new Harness(disk, Buffer.alloc(64 * 1024, 0xee), 7 + maxInFlight);
      const plan: CopyPlan = { moves: [{ from: 32 * 1024, to: 0, length: 32 * 1024 }, { from: 0, to: 32 * 1024, length: 32 * 1024 }] };
      const summary = await copyByPlan(h.source(), h.destination(), plan, { requestSize: 4096, maxInFlight });

      expect(h.out.subarray(0, 32 * 1024).equals(disk.subarray(32 * 1024))).toBe(true);
      expect(h.out.subarray(32 * 1024).equals(disk.subarray(0, 32 * 1024))).toBe(true);
      const reads = h.log.filter((l) => l.startsWith('read')).map((l) => Number(l.split(' ')[1]));
      const expected = [...Array(8)].map((_, i) => 32 * 1024 + i * 4096).concat([...Array(8)].map((_, i) => i * 4096));
      expect(reads).toEqual(expected);
      expect(h.maxActive).toBeLessThanOrEqual(maxInFlight);
      if (maxInFlight > 1) expect(h.maxActive).toBeGreaterThan(1);
      expect(h.log[h.log.length - 1]).toBe('flush');
      expect(h.writesDoneAtFlush).toBe(16);
      expect(summary).toMatchObject({ totalBytes: 64 * 1024, dataBytes: 48 * 1024, zeroBytes: 16 * 1024, chunks: 16, flushed: true });
    }
  });

  it('checkpoints every N bytes: everything read so far written and flushed first, and nothing read past the mark until it returns', async () => {
    const disk = randomDisk(64 * 1024, 3);
    const h = new Harness(disk, Buffer.alloc(64 * 1024, 0xee), 5);
    const plan: CopyPlan = { moves: [{ from: 0, to: 0, length: 40 * 1024 }, { from: 40 * 1024, to: 40 * 1024, length: 24 * 1024 }] };
    const marks: number[] = [];
    const summary = await copyByPlan(h.source(), h.destination(), plan, {
      requestSize: 4096,
      maxInFlight: 4,
      checkpoints: {
        every: 16 * 1024,
        confirm: async (done) => {
          // At this moment: every chunk below `done` is written and flushed, and no read reached past it.
          const reads = h.log.filter((l) => l.startsWith('read')).map((l) => Number(l.split(' ')[1]));
          expect(Math.max(...reads) + 4096).toBe(done);
          expect(h.log[h.log.length - 1]).toBe('flush');
          expect(h.active).toBe(0);
          expect(h.out.subarray(0, done).equals(disk.subarray(0, done))).toBe(true);
          marks.push(done);
          await turns(3);
        },
      },
    });
    expect(marks).toEqual([16 * 1024, 32 * 1024, 48 * 1024, 64 * 1024]);
    expect(summary.checkpoints).toBe(4);
    expect(h.out.equals(disk)).toBe(true);
  });

  it('resumes after the bytes an earlier run copied: no read of them, the rest copied, moves keep their numbers', async () => {
    const disk = randomDisk(64 * 1024, 4);
    const out = Buffer.alloc(64 * 1024, 0xee);
    const h = new Harness(disk, out, 6, { at: 'read', offset: 58 * 1024, errno: Errno.EIO });
    const plan: CopyPlan = { moves: [{ from: 0, to: 0, length: 24 * 1024 }, { from: 24 * 1024, to: 24 * 1024, length: 40 * 1024 }] };
    // 30 KiB done: the second move resumes 6 KiB in, off the request grid.
    const failure = await copyByPlan(h.source(), h.destination(), plan, { requestSize: 4096, maxInFlight: 2, skipBytes: 30 * 1024 }).catch((e: unknown) => e);
    const reads = h.log.filter((l) => l.startsWith('read')).map((l) => Number(l.split(' ')[1]));
    expect(reads[0]).toBe(30 * 1024);
    expect(Math.min(...reads)).toBe(30 * 1024);
    expect(failure).toBeInstanceOf(CopyFailure);
    expect((failure as CopyFailure).message).toMatch(/move 2/);
    expect(out.subarray(0, 30 * 1024).every((b) => b === 0xee)).toBe(true);

    const clean = new Harness(disk, Buffer.alloc(64 * 1024, 0xee), 6);
    const summary = await copyByPlan(clean.source(), clean.destination(), plan, { requestSize: 4096, maxInFlight: 2, skipBytes: 30 * 1024 });
    expect(clean.out.subarray(30 * 1024).equals(disk.subarray(30 * 1024))).toBe(true);
    expect(summary).toMatchObject({ totalBytes: 34 * 1024, skippedBytes: 30 * 1024 });
  });

  it('sends all-zero chunks as WRITE_ZEROES only when the destination offers it', async () => {
    const disk = Buffer.alloc(16 * 1024);
    disk[5000] = 1;
    const plan: CopyPlan = { moves: [{ from: 0, to: 0, length: 16 * 1024 }] };
    const withZeroes = new Harness(disk, Buffer.alloc(16 * 1024, 0xff), 3);
    await copyByPlan(withZeroes.source(), withZeroes.destination(), plan, { requestSize: 4096, maxInFlight: 2 });
    expect(withZeroes.log.filter((l) => !l.startsWith('read')).sort()).toEqual(['flush', 'write 4096', 'zero 0', 'zero 12288', 'zero 8192']);
    expect(withZeroes.out.equals(disk)).toBe(true);

    const without = new Harness(disk, Buffer.alloc(16 * 1024, 0xff), 3, undefined, false);
    const summary = await copyByPlan(without.source(), without.destination(), plan, { requestSize: 4096, maxInFlight: 2 });
    expect(without.log.some((l) => l.startsWith('zero'))).toBe(false);
    expect(without.out.equals(disk)).toBe(true);
    expect(summary.zeroBytes).toBe(0);
  });

  it('runs the 5-block permutation one block at a time: read, then write, in source order', async () => {
    const B = 4096;
    const disk = Buffer.concat([1, 2, 3, 4, 5].map((n) => Buffer.alloc(B, n)));
    // DESIGN §3: block 1 goes to 4, 2→3, 3→1, 4→5, 5→2 (blocks numbered from 1).
    const target = [4, 3, 1, 5, 2];
    const plan: CopyPlan = { moves: target.map((to, i) => ({ from: i * B, to: (to - 1) * B, length: B })) };
    const h = new Harness(disk, Buffer.alloc(5 * B), 5);
    await copyByPlan(h.source(), h.destination(), plan, { requestSize: B, maxInFlight: 1 });
    expect(h.log).toEqual(['read 0', 'write 12288', 'read 4096', 'write 8192', 'read 8192', 'write 0', 'read 12288', 'write 16384', 'read 16384', 'write 4096', 'flush']);
    expect([0, 1, 2, 3, 4].map((b) => h.out[b * B])).toEqual([3, 5, 2, 1, 4]);
  });

  it('stops at a destination ENOSPC: no new reads, the failure names the chunk and says the remapper is out of cache', async () => {
    const disk = randomDisk(64 * 4096, 2);
    const h = new Harness(disk, Buffer.alloc(disk.length), 11, { at: 'write', offset: 10 * 4096, errno: Errno.ENOSPC });
    const failure = await copyByPlan(h.source(), h.destination(), { moves: [{ from: 0, to: 0, length: disk.length }] }, { requestSize: 4096, maxInFlight: 4 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(CopyFailure);
    const f = failure as CopyFailure;
    expect(f.step).toBe('write');
    expect(f.chunk).toMatchObject({ move: 0, from: 40960, to: 40960, length: 4096 });
    expect(f.message).toMatch(/writing the destination \(move 1, source bytes 40960\.\.45056, destination bytes 40960\.\.45056\): WRITE at 40960 failed/);
    expect(f.message).toMatch(/ran out of cache and spill room/);
    expect(f.fix).toMatch(/nbd-remapper status/);
    expect(f.fix).toMatch(/--cache/);
    const reads = h.log.filter((l) => l.startsWith('read')).length;
    expect(reads).toBeLessThanOrEqual(11 + 4);
    expect(h.log).not.toContain('flush');
  });

  it('explains a destination EPERM as an unsealed source, and names read and flush failures', async () => {
    const disk = randomDisk(8 * 4096, 3);
    const plan: CopyPlan = { moves: [{ from: 0, to: 0, length: disk.length }] };
    const run = async (failWith: ConstructorParameters<typeof Harness>[3]): Promise<CopyFailure> => {
      const h = new Harness(disk, Buffer.alloc(disk.length), 4, failWith);
      const err = await copyByPlan(h.source(), h.destination(), plan, { requestSize: 4096, maxInFlight: 2 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CopyFailure);
      return err as CopyFailure;
    };
    const eperm = await run({ at: 'write', offset: 0, errno: Errno.EPERM });
    expect(eperm.message).toMatch(/source is probably not sealed yet/);
    expect(eperm.fix).toMatch(/nbd-remapper seal/);

    const eio = await run({ at: 'read', offset: 3 * 4096, errno: Errno.EIO });
    expect(eio.step).toBe('read');
    expect(eio.message).toMatch(/reading the source \(move 1, source bytes 12288\.\.16384/);
    expect(eio.fix).toMatch(/source server's log/);

    const flush = await run({ at: 'flush', offset: 0, errno: Errno.EIO });
    expect(flush.step).toBe('flush');
    expect(flush.message).toMatch(/could not flush the destination after writing everything: FLUSH failed/);
  });

  it('reports progress up to the total', async () => {
    const disk = randomDisk(10_000, 4);
    const h = new Harness(disk, Buffer.alloc(10_000), 6);
    const seen: number[] = [];
    await copyByPlan(h.source(), h.destination(), { moves: [{ from: 0, to: 0, length: 10_000 }] }, { requestSize: 4096, maxInFlight: 2, onProgress: (done, total) => {
      expect(total).toBe(10_000);
      seen.push(done);
    } });
    expect(seen.length).toBe(3);
    expect(seen[seen.length - 1]).toBe(10_000);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
  });
});
