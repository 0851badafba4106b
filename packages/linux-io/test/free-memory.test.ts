import { expect, it } from 'vitest';
import { returnFreeMemory } from '../src/index.js';
import { settledMemory } from '../../../test/helpers/collect-garbage.js';
import { rssOf } from '../../../test/helpers/process-memory.js';

const MiB = 1024 * 1024;

it('gives back to the kernel freed memory the allocator kept between pieces still in use', async () => {
  // 96 MiB in 64 KiB pieces (below glibc's threshold for pieces of their own), every 16th kept: the freed
  // ones lie between live ones, so glibc's free() alone cannot give them back from the top of its heap.
  const pieces: Buffer[] = [];
  for (let i = 0; i < (96 * MiB) / (64 * 1024); i++) pieces.push(Buffer.alloc(64 * 1024, 1));
  const kept = pieces.filter((_, i) => i % 16 === 0);
  pieces.length = 0;
  // V8 frees dead array buffers' memory on a sweeper thread after the collection: wait for it.
  await settledMemory();
  const before = rssOf(process.pid);
  expect(returnFreeMemory()).toBe(true);
  const after = rssOf(process.pid);
  console.log(`RSS ${(before / MiB).toFixed(0)} MiB before malloc_trim, ${(after / MiB).toFixed(0)} MiB after`);
  expect(before - after).toBeGreaterThan(48 * MiB);
  expect(kept.every((b) => b[0] === 1 && b[b.length - 1] === 1)).toBe(true);
});
