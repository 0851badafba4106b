import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { collectGarbage } from '../../helpers/collect-garbage.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';

const MiB = 2 ** 20;
const B = 4096;

describe("seal takes the caches' memory", () => {
  it('as touched slabs, not as a buffer object per block, and held data is carved from them', async () => {
    const device = new MemoryDevice(8 * MiB, B);
    // 256 MiB of cache: 65,536 blocks, ~6.6 MiB of JavaScript heap were each its own buffer object.
    const engine = createRemapper({ device, cacheBytes: 256 * MiB, revisitCacheBytes: 0 });
    const data = patternBytes(4 * MiB, 7);
    const back = Buffer.alloc(4 * MiB);
    collectGarbage();
    const before = process.memoryUsage();
    await engine.seal();
    collectGarbage();
    const sealed = process.memoryUsage();
    expect(sealed.arrayBuffers - before.arrayBuffers).toBeGreaterThan(255 * MiB);
    expect(sealed.heapUsed - before.heapUsed).toBeLessThan(3 * MiB);

    // Held data (the home is unread) goes into that memory: no more is taken.
    await engine.destination.write(0, data, { fua: false });
    expect(engine.status().heldInRamBytes).toBe(4 * MiB);
    collectGarbage();
    expect(process.memoryUsage().arrayBuffers - sealed.arrayBuffers).toBeLessThan(MiB);
    await engine.destination.readInto(back, 0);
    expect(back.equals(data)).toBe(true);
  });
});
