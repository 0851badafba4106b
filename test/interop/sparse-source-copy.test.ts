import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun } from '../helpers/run-tool.js';
import { scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * Copiers that follow block status (nbdcopy, qemu-img convert) skip what
 * `source` reports as holes. Once sealed, telling a client that whole blocks
 * are a hole releases them, as a read would, and the state remembers that
 * their originals are zeroes: a source read after destination data has
 * landed there returns zeroes, also after a restart, with no revisit cache.
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

it('nbdcopy releases a sparse source whole, holes by block status, as --no-extents and nbd-remapper copy do by reading', async () => {
  const dir = scratchDir('nbd-remapper-sparse-copy-');
  cleanup(() => dir.cleanup());
  const copies: Record<string, number> = {};
  for (const copier of ['nbdcopy', 'nbdcopy --no-extents', 'nbd-remapper copy'] as const) {
    // 64 MiB with data in 8 MiB of it: the rest is a hole.
    const disk = dir.file(`${copier.replace(/\W+/g, '-')}.img`);
    writeFileSync(disk, '');
    truncateSync(disk, 64 * MiB);
    const fd = openSync(disk, 'r+');
    writeSync(fd, randomBytes(8 * MiB), 0, 8 * MiB, 8 * MiB);
    closeSync(fd);
    const control = `${disk}.control`;
    const server = await startServerProcess(['serve', '--disk', disk, '--socket', `${disk}.sock`, '--control', control]);
    cleanup(() => server.stop('SIGKILL'));
    await mustRun(process.execPath, [CLI, 'seal', '--control', control], { timeoutMs: 30_000 });
    const source = server.uri('source');
    if (copier === 'nbd-remapper copy') {
      await mustRun(process.execPath, [CLI, 'copy', '--from', source, '--to', server.uri('destination'), '--control', control], { timeoutMs: 60_000 });
    } else {
      await mustRun('nbdcopy', [...copier.split(' ').slice(1), source, 'null:'], { timeoutMs: 60_000 });
    }
    copies[copier] = (JSON.parse(await mustRun(process.execPath, [CLI, 'status', '--json', '--control', control])) as { released: number }).released;
    expect(await server.stop()).toBe(0);
  }
  expect(copies).toEqual({ nbdcopy: (64 * MiB) / 4096, 'nbdcopy --no-extents': (64 * MiB) / 4096, 'nbd-remapper copy': (64 * MiB) / 4096 });
}, 120_000);

it('a hole released by block status reads as zeroes once destination data has landed on it, also after a restart', async () => {
  const dir = scratchDir('nbd-remapper-sparse-land-');
  cleanup(() => dir.cleanup());
  // 32 MiB with data in [8, 16) MiB; identity map, so destination [0, 8) MiB lands on the hole before it.
  const disk = dir.file('disk.img');
  writeFileSync(disk, '');
  truncateSync(disk, 32 * MiB);
  const fd = openSync(disk, 'r+');
  writeSync(fd, randomBytes(8 * MiB), 0, 8 * MiB, 8 * MiB);
  closeSync(fd);
  const original = dir.file('original.img');
  copyFileSync(disk, original);
  const control = `${disk}.control`;
  // No revisit cache: a read of an overwritten block can only be answered from what the state knows.
  const args = ['serve', '--disk', disk, '--socket', `${disk}.sock`, '--control', control, '--revisit-cache', '0'];
  const status = async (): Promise<{ released: number; releasedAsHoles: number; confirmed: number; landed: number }> =>
    JSON.parse(await mustRun(process.execPath, [CLI, 'status', '--json', '--control', control])) as { released: number; releasedAsHoles: number; confirmed: number; landed: number };
  let server = await startServerProcess(args);
  cleanup(() => server.stop('SIGKILL'));
  await mustRun(process.execPath, [CLI, 'seal', '--control', control], { timeoutMs: 30_000 });
  await mustRun('nbdcopy', [server.uri('source'), 'null:'], { timeoutMs: 60_000 });
  // Holes are confirmed at once (redoing the copy never needs them); what was read waits for a checkpoint.
  expect(await status()).toMatchObject({ released: (32 * MiB) / 4096, releasedAsHoles: (24 * MiB) / 4096, confirmed: (24 * MiB) / 4096 });
  await mustRun(process.execPath, [CLI, 'checkpoint', '--control', control]);
  const written = dir.file('written.img');
  writeFileSync(written, randomBytes(8 * MiB));
  await mustRun('nbdcopy', ['--flush', written, `${server.uri('destination')}`], { timeoutMs: 60_000 });
  expect((await status()).landed).toBe((8 * MiB) / 4096);
  expect(readFileSync(disk).subarray(0, 8 * MiB).equals(readFileSync(written))).toBe(true);
  // The disk holds data there now, but source still reports what its original was: a hole.
  const sourceMap = async (): Promise<string> => (await mustRun('nbdinfo', ['--map', server.uri('source')])).trim().split('\n')[0];
  expect(await sourceMap()).toMatch(/^\s*0\s+8388608\s+3\s+hole,zero$/);

  const readSource = async (name: string): Promise<Buffer> => {
    const out = dir.file(name);
    await mustRun('nbdcopy', ['--no-extents', server.uri('source'), out], { timeoutMs: 60_000 });
    return readFileSync(out);
  };
  expect((await readSource('source-1.img')).equals(readFileSync(original))).toBe(true);
  await server.stop('SIGKILL');
  server = await startServerProcess(args);
  expect(await sourceMap()).toMatch(/^\s*0\s+8388608\s+3\s+hole,zero$/);
  expect((await readSource('source-2.img')).equals(readFileSync(original))).toBe(true);
  expect(await server.stop()).toBe(0);
}, 120_000);
