import { AllocationFlag, Errno, NbdError } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { ControlRefusal } from '../../../src/control/migration-control.js';
import { createRemapper, type RemapperOptions } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import type { Phase } from '../../../src/remap/block-layout.js';
import { MemoryStateJournal } from '../../../src/remap/state-journal.js';
import type { Logger } from '../../../src/log/logger.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';
import { readExport } from '../../../src/server/block-export.js';

const B = 4096;
const W = { fua: false };

function capturingLog(lines: string[]): Logger {
  const log: Logger = { debug: () => {}, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), child: () => log };
  return log;
}

function setup(blocks: number, options: Partial<RemapperOptions> = {}) {
  const device = new MemoryDevice(blocks * B, B);
  patternBytes(blocks * B, 42).copy(device.bytes);
  const original = Buffer.from(device.bytes);
  const lines: string[] = [];
  const engine = createRemapper({ device, cacheBytes: 2 * B, revisitCacheBytes: 2 * B, log: capturingLog(lines), ...options });
  return { device, original, engine, lines };
}

async function errnoOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NbdError) return err.errno;
    throw err;
  }
  return undefined;
}

describe('views before and after sealing', () => {
  it('destination refuses writes with EPERM until sealed and says how to seal; reads work', async () => {
    const { engine, original, lines } = setup(8);
    const data = Buffer.alloc(B, 7);
    await expect(engine.destination.write(0, data, W)).rejects.toThrow(/seal/);
    expect(await errnoOf(engine.destination.write(0, data, W))).toBe(Errno.EPERM);
    expect(await errnoOf(engine.destination.writeZeroes(0, B, { fua: false, mayTrim: true, fast: true }))).toBe(Errno.EPERM);
    expect(await errnoOf(engine.destination.trim(0, B, W))).toBe(Errno.EPERM);
    expect(lines.some((l) => /seal the source first/.test(l))).toBe(true);
    expect((await readExport(engine.destination, B, B)).equals(original.subarray(B, 2 * B))).toBe(true);
    // It still advertises writes: a connection made now keeps working after the seal.
    expect(engine.destination.capabilities()).toMatchObject({ readOnly: false, flush: true, fua: true, trim: true, writeZeroes: true, fastZero: true, multiConn: true });
  });

  it('source is a read-write passthrough before sealing, read-only (EPERM) after', async () => {
    const { engine, device } = setup(8);
    expect(engine.source.capabilities()).toMatchObject({ readOnly: false, trim: true, flush: true });
    await engine.source.write(B, Buffer.alloc(B, 9), W);
    expect(device.bytes[B]).toBe(9);
    const phases: Phase[] = [];
    engine.onPhase((p) => phases.push(p));
    await engine.seal();
    expect(engine.source.capabilities()).toMatchObject({ readOnly: true, trim: false, writeZeroes: false });
    expect(await errnoOf(engine.source.write(0, Buffer.alloc(1), W))).toBe(Errno.EPERM);
    expect(await errnoOf(engine.source.trim(0, B, W))).toBe(Errno.EPERM);
    expect(await errnoOf(engine.source.writeZeroes(0, B, { fua: false, mayTrim: true, fast: false }))).toBe(Errno.EPERM);
    await expect(engine.seal()).rejects.toBeInstanceOf(ControlRefusal);
    expect(phases).toEqual(['sealed']);
  });

  it('a TRIM on source before sealing frees whole blocks only; they are released (and confirmed) at the seal', async () => {
    const { engine } = setup(8);
    await engine.source.trim(B + 1, 3 * B, W); // covers block 2 and 3 entirely, 1 and 4 partly
    await engine.source.write(3 * B + 10, Buffer.alloc(1), W); // block 3 is used again
    await engine.seal();
    expect(engine.status()).toMatchObject({ released: 1, confirmed: 1 });
  });
});

describe('reads, holds and status while sealed', () => {
  it('a full-block source read releases; a partial one does not', async () => {
    const { engine } = setup(8);
    await engine.seal();
    await readExport(engine.source, 0, B - 1);
    await readExport(engine.source, B + 1, B);
    expect(engine.status().released).toBe(0);
    await readExport(engine.source, 2 * B, 2 * B);
    expect(engine.status()).toMatchObject({ released: 2, confirmed: 0 });
    await engine.checkpoint();
    expect(engine.status().confirmed).toBe(2);
  });

  it('a revisit of an overwritten block is served from the revisit cache; without it, EIO and a log line naming the block', async () => {
    for (const revisitCacheBytes of [2 * B, 0]) {
      const { engine, original, lines } = setup(4, { revisitCacheBytes });
      await engine.seal();
      await readExport(engine.source, 0, B);
      await engine.checkpoint();
      await engine.destination.write(0, Buffer.alloc(B, 5), W); // lands at once: block 0 is confirmed
      expect(engine.status().landed).toBe(1);
      if (revisitCacheBytes > 0) {
        expect((await readExport(engine.source, 0, B)).equals(original.subarray(0, B))).toBe(true);
        expect(engine.status().revisitCache.hits).toBe(1);
      } else {
        expect(await errnoOf(readExport(engine.source, 0, B))).toBe(Errno.EIO);
        expect(lines.some((l) => /disk block 0 .*EIO/.test(l))).toBe(true);
        expect(engine.status().revisitCache.misses).toBe(1);
      }
    }
  });

  it('write-zeroes of held data is an extent (fast zero works) and block status reports it as zero', async () => {
    const { engine } = setup(16);
    await engine.seal();
    await engine.destination.write(0, Buffer.alloc(2 * B, 3), W);
    expect(engine.status()).toMatchObject({ heldInRam: 2, heldInRamBytes: 2 * B });
    await engine.destination.writeZeroes(B, 8 * B, { fua: false, mayTrim: true, fast: true });
    expect(engine.status()).toMatchObject({ heldInRam: 1, heldAsZero: 8 });
    expect((await readExport(engine.destination, B, 8 * B)).equals(Buffer.alloc(8 * B))).toBe(true);
    // An all-zero plain write is held the same way.
    await engine.destination.write(12 * B, Buffer.alloc(B), W);
    expect(engine.status().heldAsZero).toBe(9);
    const status = await engine.destination.blockStatus(0, 16 * B);
    expect(status).toEqual([
      { length: B, flags: 0 },
      { length: 8 * B, flags: AllocationFlag.HOLE | AllocationFlag.ZERO },
      { length: 3 * B, flags: 0 },
      { length: B, flags: AllocationFlag.HOLE | AllocationFlag.ZERO },
      { length: 3 * B, flags: 0 },
    ]);
  });

  it('a spill destroys the next confirmed slots ahead (one permission for several waves), yet their originals are read from the disk until written', async () => {
    const blocks = 64;
    const half = (blocks / 2) * B;
    const map = RemapMap.fromExtents(
      [
        { destOffset: 0, length: half, diskOffset: half },
        { destOffset: half, length: half, diskOffset: 0 },
      ],
      blocks * B,
      B,
    );
    const { engine, original } = setup(blocks, { map, revisitCacheBytes: 0 });
    await engine.seal();
    await readExport(engine.source, 0, half); // released
    await engine.checkpoint(); // confirmed: free to overwrite
    await engine.destination.write(0, Buffer.alloc(2 * B, 1), W); // fills the 2-block cache (homes unread)
    await engine.destination.write(2 * B, Buffer.alloc(B, 2), W); // spills into one slot, destroys the next ahead
    const status = engine.status();
    expect(status.spilled).toBe(1);
    expect(status.originalsOverwritten).toBeGreaterThan(1);
    // Without a revisit cache, an original that is gone is EIO; one destroyed ahead is still on the disk.
    let served = 0;
    let eio = 0;
    for (let p = 0; p < blocks / 2; p++) {
      const errno = await errnoOf(readExport(engine.source, p * B, B).then((got) => {
        expect(got.equals(original.subarray(p * B, (p + 1) * B)), `source block ${p}`).toBe(true);
        served++;
      }));
      if (errno === Errno.EIO) eio++;
    }
    expect(eio).toBe(1);
    expect(served).toBe(blocks / 2 - 1);
    expect((await readExport(engine.destination, 0, 3 * B)).equals(Buffer.concat([Buffer.alloc(2 * B, 1), Buffer.alloc(B, 2)]))).toBe(true);
  });

  it('ENOSPC at once when neither RAM nor a slot is left; counted, logged, and nothing acknowledged is lost', async () => {
    const { engine, lines } = setup(8);
    await engine.seal();
    await engine.destination.write(0, Buffer.alloc(2 * B, 1), W); // fills the 2-block cache
    expect(await errnoOf(engine.destination.write(2 * B, Buffer.alloc(B, 2), W))).toBe(Errno.ENOSPC);
    const status = engine.status();
    expect(status.enospc).toBe(1);
    expect(status.lastEnospc).toMatch(/RAM cache is full/);
    expect(lines.some((l) => /ENOSPC/.test(l))).toBe(true);
    expect((await readExport(engine.destination, 0, 2 * B)).equals(Buffer.alloc(2 * B, 1))).toBe(true);
  });

  it('destroys unconfirmed originals only under pressure and counts them at risk; --safe refuses instead', async () => {
    for (const safe of [false, true]) {
      const { engine } = setup(8, { safe, cacheBytes: B });
      await engine.seal();
      await readExport(engine.source, 0, 2 * B); // released, not confirmed
      await engine.destination.write(0, Buffer.alloc(B, 1), W); // held in RAM: its home is unconfirmed
      expect(engine.status()).toMatchObject({ heldInRam: 1, landed: 0, atRisk: 0 });
      const errno = await errnoOf(engine.destination.write(B, Buffer.alloc(B, 2), W));
      if (safe) {
        expect(errno).toBe(Errno.ENOSPC);
        expect(engine.status().lastEnospc).toMatch(/checkpoint/);
        expect(engine.status().atRisk).toBe(0);
      } else {
        expect(errno).toBeUndefined();
        expect(engine.status().atRisk).toBeGreaterThan(0);
        await engine.checkpoint();
        expect(engine.status().atRisk).toBe(0);
      }
    }
  });
});

describe('finish', () => {
  it('is refused before sealing and while source has clients (naming how many); then completes and drops the source', async () => {
    const { engine, device } = setup(8);
    await expect(engine.finish()).rejects.toBeInstanceOf(ControlRefusal);
    await engine.seal();
    const phases: Phase[] = [];
    engine.onPhase((p) => phases.push(p));
    await engine.destination.write(0, Buffer.alloc(B, 4), W);
    engine.source.attach('a');
    engine.source.attach('b');
    await expect(engine.finish()).rejects.toThrow(/2 attached clients/);
    const refusal = await engine.finish().catch((err: unknown) => err);
    expect((refusal as ControlRefusal).fix).toMatch(/nbd-client -d/);
    engine.source.detach('a');
    engine.source.detach('b');
    const progress: Array<{ done: number; total: number }> = [];
    await engine.finish((p) => progress.push(p));
    expect(phases).toEqual(['finishing', 'finished']);
    expect(progress[progress.length - 1]).toEqual({ done: 1, total: 1 });
    expect(device.bytes.subarray(0, B).equals(Buffer.alloc(B, 4))).toBe(true);
    // The destination is now a plain view of the disk; the source is gone.
    await engine.destination.write(B, Buffer.alloc(B, 6), W);
    expect(device.bytes[B]).toBe(6);
    expect(await errnoOf(engine.destination.writeZeroes(0, B, { fua: false, mayTrim: true, fast: true }))).toBe(Errno.ENOTSUP);
    expect(await errnoOf(readExport(engine.source, 0, B))).toBe(Errno.EIO);
    await engine.finish(); // again: nothing to do
    await expect(engine.checkpoint()).rejects.toBeInstanceOf(ControlRefusal);
  });

  it('a shifted map: the destination lands shifted, byte for byte', async () => {
    const blocks = 12;
    const device = new MemoryDevice(blocks * B, B);
    const map = RemapMap.fromExtents([{ destOffset: 0, length: 8 * B, diskOffset: 4 * B }], blocks * B, B);
    // No kept edges: this small disk is all edge, and the move needs disk blocks 0–3 (read, nobody's home) as spill room.
    const engine = createRemapper({ device, map, cacheBytes: 2 * B, revisitCacheBytes: 0, keptEdgeBytes: 0 });
    await engine.seal();
    const data = patternBytes(8 * B, 9);
    for (let i = 0; i < 8; i++) {
      await readExport(engine.source, i * B, B);
      await engine.destination.write(i * B, data.subarray(i * B, (i + 1) * B), W);
    }
    await engine.finish();
    expect(device.bytes.subarray(4 * B).equals(data)).toBe(true);
  });

  it('a partition moved forward: the partition table before it, nobody\'s home, survives though it was read after sealing', async () => {
    const blocks = 12;
    const device = new MemoryDevice(blocks * B, B);
    patternBytes(blocks * B, 4).copy(device.bytes);
    const table = Buffer.from(device.bytes.subarray(0, B));
    // The old partition is disk blocks 1–8, the new one 4–11; block 0 is the table, the disk's kept edge.
    const map = RemapMap.fromExtents([{ destOffset: 0, length: 8 * B, diskOffset: 4 * B }], blocks * B, B);
    const engine = createRemapper({ device, map, cacheBytes: 2 * B, revisitCacheBytes: 0, keptEdgeBytes: B });
    await engine.seal();
    await readExport(engine.source, 0, B); // the kernel scans source's partitions again
    const old = Buffer.from(device.bytes.subarray(B, 9 * B));
    for (let i = 0; i < 8; i++) {
      await readExport(engine.source, (1 + i) * B, B);
      await engine.destination.write(i * B, old.subarray(i * B, (i + 1) * B), W);
    }
    expect(engine.status().spilled, 'the move spilled into the old partition\'s blocks 1–3').toBeGreaterThan(0);
    await engine.finish();
    expect(device.bytes.subarray(4 * B).equals(old)).toBe(true);
    expect(device.bytes.subarray(0, B).equals(table), 'the table is as it was').toBe(true);
  });
});

describe('status and construction', () => {
  it('status is plain JSON with every counter the control plane shows', async () => {
    const journal = new MemoryStateJournal({ keepRecords: true });
    const { engine } = setup(8, { journal });
    await engine.seal();
    const status = engine.status();
    expect(JSON.parse(JSON.stringify(status))).toEqual(status);
    for (const key of ['phase', 'blockSize', 'released', 'confirmed', 'atRisk', 'heldInRam', 'heldInRamBytes', 'heldAsZero', 'spilled', 'landed', 'cacheBytes', 'cacheLimitBytes', 'revisitCache', 'enospc', 'destinationLanded']) {
      expect(status).toHaveProperty(key);
    }
    expect(status.destinationLanded).toBe(false);
    expect(journal.records.map((r) => r.type)).toEqual(['seal']);
  });

  it('refuses a cache smaller than one block and a map made for another disk', () => {
    const device = new MemoryDevice(8 * B, B);
    expect(() => createRemapper({ device, cacheBytes: B - 1 })).toThrow(/at least one block/);
    expect(() => createRemapper({ device, map: RemapMap.identity(4 * B, B), cacheBytes: B })).toThrow(/disk of/);
  });
});
