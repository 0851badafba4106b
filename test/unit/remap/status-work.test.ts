import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PlainDiskView } from '../../../src/remap/plain-disk-view.js';
import { Disk } from '../../../src/store/disk.js';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { MAX_STATUS_RUNS } from '../../../src/remap/run-descriptors.js';
import { RunMap } from '../../../src/remap/run-map.js';
import { WRITTEN_FLAG } from '../../../src/remap/written-runs.js';
import { SparseDevice } from './helpers/sparse-device.js';

const B = 4096;
const GiB = 2 ** 30;
const FRAGMENTS = 5000;

/**
 * A block status answer describes at most MAX_STATUS_RUNS runs, and computing
 * it must cost about that much, not the fragmentation of the range asked: it
 * runs on the event loop every client shares (a walk of a fragmented 1 TiB
 * destination took ~1 s per request and held other clients' reads up for
 * 34 s). Counted as runs taken out of the run maps, not timed.
 */
describe('block status of a fragmented destination does work bounded by what it answers', () => {
  afterEach(() => vi.restoreAllMocks());

  async function fragmented(): Promise<ReturnType<typeof createRemapper>> {
    const device = new SparseDevice(GiB);
    const engine = createRemapper({ device, cacheBytes: 16 * B, revisitCacheBytes: 0, keptEdgeBytes: 0 });
    await engine.seal();
    // Every other block of the first 2 × FRAGMENTS held as zeroes (their homes are unread): FRAGMENTS zero runs.
    for (let i = 0; i < FRAGMENTS; i++) await engine.destination.writeZeroes(2 * i * B, B, { fua: false, fast: false, mayTrim: false });
    expect(engine.status().heldAsZero).toBe(FRAGMENTS);
    return engine;
  }

  function countCollected(): { runs: number } {
    const counted = { runs: 0 };
    const collect = RunMap.prototype.collect;
    vi.spyOn(RunMap.prototype, 'collect').mockImplementation(function (this: RunMap, from: number, to: number, limit?: number) {
      const out = collect.call(this, from, to, limit);
      counted.runs += out.length;
      return out;
    });
    return counted;
  }

  it('base:allocation', async () => {
    const engine = await fragmented();
    const counted = countCollected();
    const answer = await engine.destination.blockStatus(0, GiB);
    expect(answer.length).toBeLessThanOrEqual(2 * MAX_STATUS_RUNS);
    // What it describes is right: hole, data, hole, … from the start.
    expect(answer.slice(0, 4).map((d) => [d.length, d.flags])).toEqual([[B, 3], [B, 0], [B, 3], [B, 0]]);
    expect(counted.runs).toBeLessThanOrEqual(MAX_STATUS_RUNS + 1);
  });

  it('x-nbd-remapper:written', async () => {
    const engine = await fragmented();
    const counted = countCollected();
    const written = engine.destination.metaContexts?.[0];
    const answer = await written!.status(0, GiB);
    expect(answer.length).toBeLessThanOrEqual(2 * MAX_STATUS_RUNS + 1);
    expect(answer.slice(0, 4).map((d) => [d.length, d.flags])).toEqual([[B, WRITTEN_FLAG], [B, 0], [B, WRITTEN_FLAG], [B, 0]]);
    // Answers end on a whole run: the next request goes on from there.
    const covered = answer.reduce((n, d) => n + d.length, 0);
    expect(covered % B).toBe(0);
    expect(counted.runs).toBeLessThanOrEqual(4 * (MAX_STATUS_RUNS + 1));
  });
});

describe('block status of a fragmented image stops after an answer’s worth of extents', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /** 4 KiB of data every 8 KiB over 80 MiB: 10,240 data extents and as many holes. */
  async function fragmentedImage(): Promise<Disk> {
    const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-status-'));
    dirs.push(dir);
    const path = join(dir, 'disk.img');
    const fd = openSync(path, 'w');
    ftruncateSync(fd, 80 * 2 ** 20);
    for (let at = 0; at < 80 * 2 ** 20; at += 2 * B) writeSync(fd, Buffer.alloc(B, 1), 0, B, at);
    closeSync(fd);
    return Disk.open(path, { readOnly: false });
  }

  const expectBoundedAnswer = (answer: ReadonlyArray<{ length: number; flags: number }>): void => {
    expect(answer.length).toBeLessThanOrEqual(MAX_STATUS_RUNS + 1);
    expect(answer.slice(0, 3).map((d) => [d.length, d.flags])).toEqual([[B, 0], [B, 3], [B, 0]]);
    expect(answer.reduce((n, d) => n + d.length, 0)).toBeLessThan(80 * 2 ** 20);
  };

  it('source (the engine over the disk)', async () => {
    const disk = await fragmentedImage();
    try {
      const engine = createRemapper({ device: disk, cacheBytes: 16 * B });
      expectBoundedAnswer(await engine.source.blockStatus(0, disk.size));
      await engine.seal();
      expectBoundedAnswer(await engine.source.blockStatus(0, disk.size));
    } finally {
      await disk.close();
    }
  });

  it('a plain view of the disk (serve --read-only)', async () => {
    const disk = await fragmentedImage();
    try {
      expectBoundedAnswer(await new PlainDiskView('source', 'test', disk, true).blockStatus(0, disk.size));
    } finally {
      await disk.close();
    }
  });
});
