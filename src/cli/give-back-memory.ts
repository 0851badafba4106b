import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { returnFreeMemory, unavailableReason } from 'linux-io';

/**
 * One full garbage collection, now. Node has no API for it without
 * `--expose-gc`, which this turns on for a context of its own.
 */
export function collectGarbageNow(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** How long V8's sweeper may take to free the memory of collected array buffers (polled every SWEEP_POLL_MS). */
const SWEEP_POLLS = 20;
const SWEEP_POLL_MS = 50;
/** Two readings of array-buffer memory this close are taken as the sweeper being done. */
const SWEEP_SETTLED_BYTES = 64 * 1024;

/**
 * A full collection, and then the wait for V8's sweeper thread, which frees
 * the memory of collected array buffers after the collection: until two
 * readings a little apart agree (at most ~1 s).
 */
export async function collectAndSweep(): Promise<void> {
  collectGarbageNow();
  let last = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < SWEEP_POLLS; i++) {
    await sleep(SWEEP_POLL_MS);
    const now = process.memoryUsage().arrayBuffers;
    if (Math.abs(now - last) < SWEEP_SETTLED_BYTES) return;
    last = now;
  }
}

/**
 * After memory was let go of in bulk (the caches after finish): the kernel
 * gets it back now rather than at some later collection an idle server may
 * not run for hours. A full collection and its sweep (collectAndSweep); then
 * the C allocator gives back its free pages — glibc would on its own only
 * give back the top of its heap. Without the linux-io addon, the collection
 * alone.
 */
export async function giveBackMemory(): Promise<void> {
  await collectAndSweep();
  if (unavailableReason === undefined) returnFreeMemory();
}
