import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { HELD_BLOCK_BOOKKEEPING_BYTES } from '../../../src/remap/defaults.js';
import { collectGarbage, settledMemory } from '../../helpers/collect-garbage.js';
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

  it('each block held takes no more memory besides its data than the memory check at start counts', async () => {
    const device = new MemoryDevice(128 * MiB, B);
    const engine = createRemapper({ device, cacheBytes: 128 * MiB, revisitCacheBytes: 0 });
    await engine.seal();
    const data = patternBytes(256 * 1024, 9);
    // Identity map, nothing read: every destination block written is held in RAM, in memory seal took.
    // The first 16 MiB run the code once (its compiled code and feedback are on the heap too).
    const hold = async (from: number, to: number): Promise<void> => {
      for (let at = from; at < to; at += data.length) await engine.destination.write(at, data, { fua: false });
    };
    await hold(0, 16 * MiB);
    const before = await settledMemory();
    await hold(16 * MiB, 128 * MiB);
    const after = await settledMemory();
    expect(engine.status().heldInRam).toBe(32768);
    // The tables that know where held blocks are keep their keys in typed arrays, off the heap: both count.
    const perBlock = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / (32768 - 4096);
    console.log(`memory per held block besides its data: ${perBlock.toFixed(0)} bytes (counted at start: ${HELD_BLOCK_BOOKKEEPING_BYTES})`);
    expect(perBlock).toBeLessThanOrEqual(HELD_BLOCK_BOOKKEEPING_BYTES);
  });
});
