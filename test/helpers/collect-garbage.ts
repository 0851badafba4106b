import { collectGarbageNow } from '../../src/cli/give-back-memory.js';

/** A real garbage collection, so the memory numbers measure what is live. */
export const collectGarbage = collectGarbageNow;

/**
 * Heap and array-buffer memory once collected: V8 frees the memory of dead
 * array buffers on a sweeper thread after the collection, so the figures are
 * read until two readings a little apart agree (at most ~1 s).
 */
export async function settledMemory(): Promise<{ heapUsed: number; arrayBuffers: number }> {
  let last = { heapUsed: 0, arrayBuffers: Number.POSITIVE_INFINITY };
  for (let i = 0; i < 20; i++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    if (Math.abs(arrayBuffers - last.arrayBuffers) < 64 * 1024) return { heapUsed, arrayBuffers };
    last = { heapUsed, arrayBuffers };
  }
  return last;
}
