import { randomBytes } from 'node:crypto';
import { closeSync, openSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun } from '../helpers/run-tool.js';
import { scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * What the README tells people who copy block-level with nbdcopy: it skips
 * what block status reports as holes, so those source blocks are never read
 * and never released (data for those homes waits until finish); with
 * --no-extents it reads them, and every block is released. `nbd-remapper copy`
 * reads everything.
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

it('nbdcopy releases a sparse source only with --no-extents; nbd-remapper copy releases it all', async () => {
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
  expect(copies).toEqual({ nbdcopy: (8 * MiB) / 4096, 'nbdcopy --no-extents': (64 * MiB) / 4096, 'nbd-remapper copy': (64 * MiB) / 4096 });
}, 120_000);
