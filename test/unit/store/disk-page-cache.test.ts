import { closeSync, openSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { Disk } from '../../../src/store/disk.js';
import { DEFAULT_IO_PATH_POLICY } from '../../../src/store/io-path-chooser.js';
import { useCleanups } from '../../helpers/cleanups.js';
import { evictFromPageCache } from '../../helpers/page-cache.js';
import { randomImage, scratchDir } from '../../helpers/scratch.js';

/**
 * G9: a read that misses the page cache must not block the event loop (every
 * connection waits behind it; on a hung disk, forever). Disk.readInto takes
 * what the page cache holds at once and leaves the rest to the thread pool.
 * Seen without timing: a read done on the event loop has resolved once the
 * microtasks have run; one handed to the thread pool cannot have, since its
 * completion arrives through the event loop's poll phase.
 */
const cleanup = useCleanups();
const MiB = 1024 * 1024;
// Disk-backed: the system's temporary directory may be a tmpfs, which has no page cache to miss.
const SCRATCH = fileURLToPath(new URL('../../../.cache/test-scratch/', import.meta.url));

/** Starts the read and says whether it was done before anything but microtasks ran. */
async function readAndSee(disk: Disk, buffer: Buffer, offset: number): Promise<boolean> {
  let done = false;
  const reading = disk.readInto(buffer, offset).then(() => (done = true));
  for (let i = 0; i < 10; i++) await Promise.resolve();
  const onTheSpot = done;
  await reading;
  return onTheSpot;
}

it('answers page-cached reads on the spot and sends misses to the thread pool, with the same bytes', async () => {
  const dir = scratchDir('nbd-remapper-pagecache-', SCRATCH);
  cleanup(() => dir.cleanup());
  const image = dir.file('disk.img');
  const data = randomImage(image, 8 * MiB);
  evictFromPageCache(image);
  const disk = await Disk.open(image, { readOnly: true });
  cleanup(() => disk.close());

  const missed = Buffer.alloc(256 * 1024);
  expect(await readAndSee(disk, missed, 2 * MiB), 'a read of evicted pages waited on the event loop').toBe(false);
  expect(missed.equals(data.subarray(2 * MiB, 2 * MiB + missed.length))).toBe(true);

  const again = Buffer.alloc(256 * 1024);
  expect(await readAndSee(disk, again, 2 * MiB), 'a read of cached pages took the thread pool').toBe(true);
  expect(again.equals(missed)).toBe(true);

  // Half cached, half not: the cached half is taken at once, the rest read through the pool.
  evictFromPageCache(image);
  const fd = openSync(image, 'r');
  readSync(fd, Buffer.alloc(64 * 1024), 0, 64 * 1024, 5 * MiB);
  closeSync(fd);
  const straddling = Buffer.alloc(MiB);
  expect(await readAndSee(disk, straddling, 5 * MiB)).toBe(false);
  expect(straddling.equals(data.subarray(5 * MiB, 6 * MiB))).toBe(true);

  // Past the end: zeroes, on the spot once the tail is cached.
  const tail = Buffer.alloc(8192, 0xee);
  await disk.readInto(tail, 8 * MiB - 4096);
  const tailAgain = Buffer.alloc(8192, 0xee);
  expect(await readAndSee(disk, tailAgain, 8 * MiB - 4096)).toBe(true);
  expect(tailAgain.equals(Buffer.concat([data.subarray(8 * MiB - 4096), Buffer.alloc(4096)]))).toBe(true);
  expect(tail.equals(tailAgain)).toBe(true);
});

it('on tmpfs, which refuses reads that do not wait, still reads right (on the event loop: it is RAM)', async () => {
  const dir = scratchDir('nbd-remapper-pagecache-', '/dev/shm');
  cleanup(() => dir.cleanup());
  const image = dir.file('disk.img');
  const data = randomImage(image, 2 * MiB);
  // No read counts as slow: on a loaded machine a copy may take longer than the timing rule allows, and this
  // test is about the refused no-wait read falling back to the event loop, not about that rule (io-path-chooser.test.ts).
  const disk = await Disk.open(image, { readOnly: true, ioPathPolicy: { ...DEFAULT_IO_PATH_POLICY, slowSyncNs: Number.MAX_SAFE_INTEGER } });
  cleanup(() => disk.close());
  for (let i = 0; i < 3; i++) {
    const buffer = Buffer.alloc(128 * 1024);
    expect(await readAndSee(disk, buffer, i * 128 * 1024)).toBe(true);
    expect(buffer.equals(data.subarray(i * 128 * 1024, (i + 1) * 128 * 1024))).toBe(true);
  }
});
