import { collectAndSweep, collectGarbageNow } from '../../src/cli/give-back-memory.js';

/** A real garbage collection, so the memory numbers measure what is live. */
export const collectGarbage = collectGarbageNow;

/** Heap and array-buffer memory once collected and swept (see collectAndSweep). */
export async function settledMemory(): Promise<{ heapUsed: number; arrayBuffers: number }> {
  await collectAndSweep();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heapUsed, arrayBuffers };
}
