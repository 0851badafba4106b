import { writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { settledRss } from '../helpers/process-memory.js';
import { mustRun, nbdsh } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * Seal takes the memory of both caches (src/remap/reserved-memory.ts): the
 * kernel backs it then, not page by page while destination data pours in, and
 * a migration then runs in that memory — the RAM cache filling and spilling,
 * the revisit cache capturing and evicting — without taking more (G4).
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

it('seal takes --cache and --revisit-cache, and a migration that fills both takes no more', async () => {
  const dir = scratchDir('nbd-remapper-cache-memory-');
  cleanup(() => dir.cleanup());
  // Swapped halves of 192 MiB: destination [0, 96) MiB lives on the second half, which stays unread, so
  // writing it holds 32 MiB in RAM and spills 64 MiB into the first half, read before: 64 MiB of originals
  // are captured through a 16 MiB revisit cache.
  const size = 192 * MiB;
  const half = size / 2;
  const disk = dir.file('disk.img');
  randomImage(disk, size);
  const data = dir.file('data.img');
  randomImage(data, half);
  const map = dir.file('map.json');
  writeFileSync(map, JSON.stringify({ extents: [{ destOffset: 0, length: half, diskOffset: half }, { destOffset: half, length: half, diskOffset: 0 }] }));
  const control = dir.file('control.sock');
  const socket = dir.file('nbd.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--map', map, '--socket', socket, '--control', control, '--cache', '32M', '--revisit-cache', '16M']);
  cleanup(() => server.stop('SIGKILL'));
  const pid = server.child.pid as number;
  const cli = (args: string[]): Promise<string> => mustRun(process.execPath, [CLI, ...args, '--control', control], { timeoutMs: 60_000 });
  const source = `nbd+unix:///source?socket=${socket}`;

  // Warm: the request buffers and code of a write and a read of this size, before anything is measured.
  await mustRun('nbdcopy', ['-C', '1', data, source], { timeoutMs: 60_000 });
  await mustRun('nbdcopy', ['-C', '1', source, 'null:'], { timeoutMs: 60_000 });
  const unsealed = await settledRss(pid);

  await cli(['seal']);
  const sealed = await settledRss(pid);
  expect(server.stderr()).toMatch(/32 MiB of RAM for the cache and 16 MiB for the revisit cache taken/);

  // The first half is read (released) and checkpointed: the spills may overwrite it, capturing what they destroy.
  const read = await nbdsh(source, `for off in range(0, ${half}, ${4 * MiB}):\n    h.pread(${4 * MiB}, off)`);
  expect(read.stderr).toBe('');
  expect(read.code).toBe(0);
  await cli(['checkpoint']);
  await mustRun('nbdcopy', ['-C', '1', data, `nbd+unix:///destination?socket=${socket}`], { timeoutMs: 60_000 });
  const status = JSON.parse(await cli(['status', '--json'])) as { heldInRamBytes: number; spilled: number; revisitCache: { bytes: number } };
  const migrated = await settledRss(pid);
  console.log(
    `RSS: ${(unsealed / MiB).toFixed(0)} MiB unsealed, ${(sealed / MiB).toFixed(0)} MiB sealed, ${(migrated / MiB).toFixed(0)} MiB with ` +
      `${(status.heldInRamBytes / MiB).toFixed(0)} MiB held in RAM, ${status.spilled} blocks spilled, ${(status.revisitCache.bytes / MiB).toFixed(0)} MiB of originals kept`,
  );
  expect(status.heldInRamBytes).toBe(32 * MiB);
  expect(status.spilled).toBe((64 * MiB) / 4096);
  expect(status.revisitCache.bytes).toBe(16 * MiB);
  // Taken at seal: both caches (48 MiB), less what the allocator hands out of memory that was resident already.
  expect(sealed - unsealed).toBeGreaterThan(36 * MiB);
  // Filled since: within the memory taken, give or take the bookkeeping and a few spare capture buffers; a cache
  // that took its memory again as it filled would add 32 MiB or more.
  expect(migrated - sealed).toBeLessThan(24 * MiB);

  // After finish nothing is held again: both caches' memory (48 MiB) and finish's own wave arena go back to
  // the system, rather than staying with a server left serving the new layout (it grew ~20 MiB instead).
  await cli(['finish']);
  expect(server.stderr()).toMatch(/finish complete: .*the caches gave their memory back/);
  const finished = await settledRss(pid);
  console.log(`RSS after finish: ${(finished / MiB).toFixed(0)} MiB`);
  expect(migrated - finished).toBeGreaterThan(36 * MiB);
  expect(await server.stop()).toBe(0);
}, 180_000);
