import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import { collectGarbage, settledMemory } from '../../helpers/collect-garbage.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';

const MiB = 2 ** 20;
const B = 4096;

describe('after finish', () => {
  it('the caches give their memory back: a server left serving the new layout keeps none of it', async () => {
    // Swapped halves of 32 MiB: half the destination waits in RAM or slots, and copying destroys originals (captured).
    const size = 32 * MiB;
    const device = new MemoryDevice(size, B);
    const old = patternBytes(size, 5);
    old.copy(device.bytes);
    const map = RemapMap.fromExtents(
      [
        { destOffset: 0, length: size / 2, diskOffset: size / 2 },
        { destOffset: size / 2, length: size / 2, diskOffset: 0 },
      ],
      size,
      B,
    );
    const engine = createRemapper({ device, map, cacheBytes: 16 * MiB, revisitCacheBytes: 16 * MiB });
    collectGarbage();
    const before = process.memoryUsage().arrayBuffers;
    await engine.seal();
    const piece = Buffer.alloc(MiB);
    for (let at = 0; at < size; at += MiB) {
      // The copy: destination [at, at+1M) is source [at, at+1M) of the old layout, read first.
      await engine.source.readInto(piece, at);
      await engine.destination.write(at, piece, { fua: false });
    }
    await engine.checkpoint();
    expect(engine.status().revisitCache.entries).toBeGreaterThan(0);
    collectGarbage();
    const copied = process.memoryUsage().arrayBuffers;
    // Both caches took their memory at seal.
    expect(copied - before).toBeGreaterThan(30 * MiB);

    await engine.finish();
    const finished = (await settledMemory()).arrayBuffers;
    console.log(`array buffers: ${((copied - before) / MiB).toFixed(1)} MiB over the start before finish, ${((finished - before) / MiB).toFixed(1)} MiB after`);
    expect(finished - before).toBeLessThan(2 * MiB);
    expect(engine.status().revisitCache.entries).toBe(0);
    // The disk is the new layout, and destination still serves it.
    expect(device.bytes.subarray(size / 2).equals(old.subarray(0, size / 2))).toBe(true);
    expect(device.bytes.subarray(0, size / 2).equals(old.subarray(size / 2))).toBe(true);
    const back = Buffer.alloc(MiB);
    await engine.destination.readInto(back, 3 * MiB);
    expect(back.equals(old.subarray(3 * MiB, 4 * MiB))).toBe(true);
    await engine.destination.write(0, Buffer.alloc(B, 1), { fua: false });
    expect(device.bytes[size / 2]).toBe(1);
  });
});
