import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { prng } from './helpers/memory-device.js';
import { SparseDevice } from './helpers/sparse-device.js';
import { readExport } from '../../../src/server/block-export.js';
import { collectGarbage } from '../../helpers/collect-garbage.js';

const TiB = 2 ** 40;
const MiB = 2 ** 20;
const B = 4096;

describe('a 1 TiB sparse destination (mkfs-scale zeroes)', () => {
  it('write-zeroes and trim of the whole destination plus scattered writes keep the engine tiny', async () => {
    const cacheBytes = 8 * MiB;
    const revisitCacheBytes = 4 * MiB;
    collectGarbage();
    const before = process.memoryUsage();
    const device = new SparseDevice(TiB);
    const engine = createRemapper({ device, cacheBytes, revisitCacheBytes });
    // fstrim of the old filesystem's free space (the upper half), then seal: those blocks can take spills.
    await engine.source.trim(TiB / 2, TiB / 2, { fua: false });
    await engine.seal();
    expect(engine.status().released).toBe(2 ** 27);

    await engine.destination.writeZeroes(0, TiB, { fua: false, mayTrim: true, fast: true });
    await engine.destination.trim(0, TiB, { fua: false });
    expect(engine.status().heldAsZero).toBe(2 ** 28);

    // The copier reads some source regions (releasing them) and writes scattered data all over.
    for (const at of [0, 300 * 2 ** 30, 500 * 2 ** 30]) await readExport(engine.source, at, 16 * MiB);
    const random = prng(2024);
    const written: Array<{ offset: number; fill: number; length: number }> = [];
    for (let i = 0; i < 3000; i++) {
      const length = B * (1 + Math.floor(random() * 16));
      const offset = Math.floor(random() * (TiB / B - 16)) * B;
      const fill = 1 + (i % 250);
      await engine.destination.write(offset, Buffer.alloc(length, fill), { fua: false });
      written.push({ offset, fill, length });
    }
    await engine.destination.flush();
    const status = engine.status();
    expect(status.enospc).toBe(0);
    expect(status.heldInRamBytes).toBeLessThanOrEqual(cacheBytes);
    expect(status.spilled + status.landed + status.heldInRam).toBeGreaterThan(0);

    // Later writes win where they overlap: check the last few against what they wrote.
    for (const w of written.slice(-50)) {
      const got = await readExport(engine.destination, w.offset, w.length);
      expect(got.equals(Buffer.alloc(w.length, w.fill))).toBe(true);
    }
    // A region nobody wrote reads as zero (the held zero extent).
    expect((await readExport(engine.destination, TiB - 64 * B, 64 * B)).equals(Buffer.alloc(64 * B))).toBe(true);

    collectGarbage();
    const after = process.memoryUsage();
    const heapGrowth = after.heapUsed - before.heapUsed;
    const rssGrowth = after.rss - before.rss;
    console.log(
      `1 TiB destination: heap +${(heapGrowth / MiB).toFixed(1)} MiB, rss +${(rssGrowth / MiB).toFixed(1)} MiB, ` +
        `external +${((after.external - before.external) / MiB).toFixed(1)} MiB (device stores ${(device.storedBytes / MiB).toFixed(1)} MiB); ` +
        `zero extents ${status.heldAsZero} blocks, RAM ${status.heldInRam} blocks, spilled ${status.spilled}, landed ${status.landed}`,
    );
    // The engine's own structures (bitmaps, extents, queues) are JS heap: a few MiB at most.
    expect(heapGrowth).toBeLessThan(16 * MiB);
    // The budget: cache + revisit cache + 96 MiB (plus what the simulated disk itself stores).
    expect(rssGrowth).toBeLessThan(cacheBytes + revisitCacheBytes + 96 * MiB + device.storedBytes);
  });
});
