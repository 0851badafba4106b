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

/**
 * After memory was let go of in bulk (the caches after finish): the kernel
 * gets it back now rather than at some later collection an idle server may
 * not run for hours. A full collection; then, once V8's sweeper thread has
 * freed the dead array buffers' memory (their total stops falling), the C
 * allocator gives back its free pages — glibc would on its own only give back
 * the top of its heap. Without the linux-io addon, the collection alone.
 */
export async function giveBackMemory(): Promise<void> {
  collectGarbageNow();
  let last = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < SWEEP_POLLS; i++) {
    await sleep(SWEEP_POLL_MS);
    const now = process.memoryUsage().arrayBuffers;
    if (now === last) break;
    last = now;
  }
  if (unavailableReason === undefined) returnFreeMemory();
}
