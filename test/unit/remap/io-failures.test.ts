import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import { MemoryDevice } from './helpers/memory-device.js';
import { readExport } from '../../../src/server/block-export.js';

const B = 4096;
const W = { fua: false };

/** A device whose next `failures` writes fail with EIO-like errors. */
function flakyDevice(blocks: number): { device: MemoryDevice; failNext: (n: number) => void; failed: () => number } {
  const device = new MemoryDevice(blocks * B, B);
  let failures = 0;
  let failed = 0;
  device.writev = undefined;
  device.writeGate = () => {
    if (failures > 0) {
      failures--;
      failed++;
      throw new Error('EIO: simulated write failure');
    }
  };
  return { device, failNext: (n) => (failures = n), failed: () => failed };
}

describe('device write failures leave the state consistent', () => {
  it('a failed eviction keeps the victim held and readable; the next write succeeds; finish lands everything', async () => {
    const { device, failNext, failed } = flakyDevice(8);
    const engine = createRemapper({ device, cacheBytes: B, revisitCacheBytes: 0 });
    await engine.seal();
    await readExport(engine.source, 0, 4 * B); // released, unconfirmed
    await engine.destination.write(0, Buffer.alloc(B, 1), W); // held in RAM (home unconfirmed)
    failNext(1);
    // RAM is full: landing block 0 to make room fails, so this write fails.
    await expect(engine.destination.write(B, Buffer.alloc(B, 2), W)).rejects.toThrow(/simulated/);
    expect(failed()).toBe(1);
    expect(engine.locationOf(0)).toEqual({ kind: 'ram' });
    expect((await readExport(engine.destination, 0, B)).equals(Buffer.alloc(B, 1))).toBe(true);
    await engine.destination.write(B, Buffer.alloc(B, 2), W);
    await engine.finish();
    expect(device.bytes.subarray(0, 2 * B).equals(Buffer.concat([Buffer.alloc(B, 1), Buffer.alloc(B, 2)]))).toBe(true);
  });

  it('a failed spill gives its slot back and leaves the block where it was', async () => {
    const { device, failNext } = flakyDevice(8);
    // destination = disk blocks 4…7; blocks 0…3 are free space trimmed before sealing
    const map = RemapMap.fromExtents([{ destOffset: 0, length: 4 * B, diskOffset: 4 * B }], 8 * B, B);
    const engine = createRemapper({ device, map, cacheBytes: B, revisitCacheBytes: 0 });
    await engine.source.trim(0, 4 * B, W);
    await engine.seal();
    await engine.destination.write(0, Buffer.alloc(B, 1), W); // RAM
    failNext(1);
    await expect(engine.destination.write(B, Buffer.alloc(B, 2), W)).rejects.toThrow(/simulated/);
    expect(engine.status().spilled).toBe(0);
    await engine.destination.write(B, Buffer.alloc(B, 3), W); // spills now
    expect(engine.status().spilled).toBe(1);
    await engine.finish();
    expect(device.bytes.subarray(4 * B, 6 * B).equals(Buffer.concat([Buffer.alloc(B, 1), Buffer.alloc(B, 3)]))).toBe(true);
  });

  it('a failed finish can be run again and completes', async () => {
    const { device, failNext } = flakyDevice(8);
    const engine = createRemapper({ device, cacheBytes: 2 * B, revisitCacheBytes: 0 });
    await engine.seal();
    await engine.destination.write(0, Buffer.alloc(2 * B, 7), W); // held: nothing released
    failNext(1);
    await expect(engine.finish()).rejects.toThrow(/simulated/);
    expect(engine.phase).toBe('finishing');
    await engine.finish();
    expect(engine.phase).toBe('finished');
    expect(device.bytes.subarray(0, 2 * B).equals(Buffer.alloc(2 * B, 7))).toBe(true);
  });
});
