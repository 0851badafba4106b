import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { RevisitCache } from '../../../src/remap/revisit-cache.js';

const B = 4096;
const KiB = 1024;

/** A capture as DiskWriter makes it: a buffer from the cache, filled, kept, and given back once its write is done. */
function capture(cache: RevisitCache, start: number, blocks: number, fill: number): Buffer {
  const data = cache.buffer(blocks * B).fill(fill);
  cache.put(start, data);
  cache.unpin(data);
  return data;
}

describe('RevisitCache memory', () => {
  it('reserve takes whole chunks up to the limit, and captures use them before allocating', async () => {
    const cache = new RevisitCache(1024 * KiB + 5 * B, B);
    expect(cache.chunkBlocks).toBe(16);
    expect(await cache.reserve()).toBe(1024 * KiB);
    expect(cache.spareBufferBytes).toBe(1024 * KiB);
    capture(cache, 0, 16, 1);
    expect(cache.spareBufferBytes).toBe(1024 * KiB - 16 * B);
    // A capture of another length finds no spare of its size: allocated, spares untouched.
    capture(cache, 100, 3, 2);
    expect(cache.spareBufferBytes).toBe(1024 * KiB - 16 * B);
    // Entries and spares within the limit: a second reserve takes only what the entries left.
    expect(await cache.reserve()).toBe(0);
  });

  it('a full cache reuses the buffers it evicts, after a turn of the event loop', async () => {
    const cache = new RevisitCache(4 * 16 * B, B);
    await cache.reserve();
    const first = [0, 1, 2, 3].map((i) => capture(cache, i * 16, 16, i));
    expect(cache.spareBufferBytes).toBe(0);
    // Full: each capture evicts the oldest entry; its buffer becomes a spare only once pending copies are done.
    const fifth = capture(cache, 64, 16, 9);
    expect(first).not.toContain(fifth);
    expect(cache.spareBufferBytes).toBe(0);
    await nextTurn();
    expect(cache.spareBufferBytes).toBe(16 * B);
    const sixth = capture(cache, 80, 16, 8);
    expect(sixth).toBe(first[0]);
    // Counted in blocks: four chunks of 16 held, in four entries.
    expect([cache.entries, cache.originals]).toEqual([4, 64]);
    // What the evicted entry held is gone; the rest reads back.
    const out = Buffer.alloc(B);
    expect(cache.copyOut(0, 0, B, out, 0)).toBe(false);
    expect(cache.copyOut(16 * 3, 0, B, out, 0)).toBe(true);
    expect(out.equals(Buffer.alloc(B, 3))).toBe(true);
    expect(cache.copyOut(81, 0, B, out, 0)).toBe(true);
    expect(out.equals(Buffer.alloc(B, 8))).toBe(true);
  });

  it('a buffer evicted while its capture still runs is reused only after the capture gives it back', async () => {
    const cache = new RevisitCache(16 * B, B);
    const running = cache.buffer(16 * B).fill(1);
    cache.put(0, running);
    // Evicted by the next capture while the first is still registered (its write in flight).
    capture(cache, 16, 16, 2);
    await nextTurn();
    expect(cache.spareBufferBytes).toBe(0);
    expect(cache.buffer(16 * B)).not.toBe(running);
    expect(running.equals(Buffer.alloc(16 * B, 1)), 'a source read copying from the running capture still finds its originals').toBe(true);
    cache.unpin(running);
    await nextTurn();
    expect(cache.spareBufferBytes).toBe(16 * B);
    expect(cache.buffer(16 * B)).toBe(running);
  });

  it('keeps spares within the limit plus a few chunks, however many entries it evicts', async () => {
    const cache = new RevisitCache(8 * 16 * B, B);
    for (let round = 0; round < 50; round++) {
      // Captures of a length the last rounds did not use (no spare fits), then a turn: evictions would pile up as spares.
      const blocks = 1 + (round % 13);
      for (let i = 0; i < 32; i++) capture(cache, (round * 32 + i) * 16, blocks, i);
      await nextTurn();
      expect(cache.bytes).toBeLessThanOrEqual(8 * 16 * B);
      expect(cache.bytes + cache.spareBufferBytes).toBeLessThanOrEqual(2 * 8 * 16 * B);
    }
  });

  it('a disabled cache takes nothing', async () => {
    const cache = new RevisitCache(0, B);
    expect(await cache.reserve()).toBe(0);
    expect(cache.spareBufferBytes).toBe(0);
  });
});
