import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { MemoryDevice, patternBytes, prng } from './helpers/memory-device.js';

const B = 4096;
const W = { fua: false };

describe('finish settles while a client keeps writing landed blocks', () => {
  it('finish completes before a bounded stream of overlapping writes ends', async () => {
    const device = new MemoryDevice(8 * B, B, prng(11)); // each I/O takes 0-3 event-loop turns
    patternBytes(device.size, 5).copy(device.bytes);
    const engine = createRemapper({ device, cacheBytes: 2 * B, revisitCacheBytes: 0, keptEdgeBytes: 0 });
    await engine.seal();
    await engine.destination.write(0, Buffer.alloc(B, 1), W); // held in RAM: finish has one wave to do
    await engine.source.readInto(Buffer.alloc(B), 7 * B);
    await engine.checkpoint();
    await engine.destination.write(7 * B, Buffer.alloc(B, 7), W); // landed
    let stop = false;
    let writes = 0;
    // 16 writers of one landed block: a client that always has another request in flight.
    const writer = async (seed: number): Promise<void> => {
      for (let i = 0; i < 1000 && !stop; i++) {
        await engine.destination.write(7 * B, Buffer.alloc(B, (seed + i) & 0xff || 1), W);
        writes++;
        await new Promise((r) => setImmediate(r)); // the next request arrives in a later event-loop turn
      }
    };
    const writers = Promise.all(Array.from({ length: 16 }, (_, k) => writer(k + 1)));
    let finishedAt = -1;
    const finished = engine.finish().then(() => (finishedAt = writes));
    await writers;
    stop = true;
    await finished;
    // Finish settles while the writers still write: the requests arriving meanwhile wait, then go to the plain view.
    expect(finishedAt).toBeGreaterThanOrEqual(0);
    expect(finishedAt).toBeLessThan(writes);
    expect(device.bytes.subarray(0, B).equals(Buffer.alloc(B, 1))).toBe(true);
    const last = Buffer.alloc(B);
    await engine.destination.readInto(last, 7 * B);
    expect(device.bytes.subarray(7 * B, 8 * B).equals(last)).toBe(true);
  }, 30000);
});
