import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { runTool, type ToolResult } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * A state file that cannot grow, with the real CLI and real processes: the
 * server runs under `prlimit --fsize`, so once the state file reaches the
 * limit its writes fail as on a full file system (EFBIG, which the spec and
 * the journal treat as ENOSPC); `prlimit --pid` lifts the limit later, as
 * freeing space would. docs/durability.md, "When the state file cannot be written".
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();
const cli = (args: string[]): Promise<ToolResult> => runTool(process.execPath, [CLI, ...args], { timeoutMs: 60_000 });

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !ok(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it('FLUSH fails with ENOSPC but nothing held is lost; a stop waits for room; once the state can grow, everything is committed and finish lands it', async () => {
  const dir = scratchDir('nbd-remapper-state-full-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  const original = randomImage(disk, 8 * MiB);
  // The destination is the disk shifted by 2 MiB: 6 MiB whose homes stay unread, so all of it is held in RAM.
  const mapFile = dir.file('map.json');
  writeFileSync(mapFile, JSON.stringify({ extents: [{ destOffset: 0, length: 6 * MiB, diskOffset: 2 * MiB }] }));
  const statePath = dir.file('disk.remap-state');
  const control = dir.file('control.sock');
  const serveArgs = ['serve', '--disk', disk, '--map', mapFile, '--state', statePath, '--socket', dir.file('nbd.sock'), '--control', control, '--cache', '16M'];
  // Writes to the 8 MiB disk fit under 9 MiB; the state file outgrows it at the second full FLUSH. Only the soft
  // limit: lifting it later needs no privilege.
  const limited = await startServerProcess(serveArgs, 20_000, ['prlimit', `--fsize=${9 * MiB}:unlimited`]);
  cleanup(() => limited.stop('SIGKILL'));
  expect((await cli(['seal', '--control', control])).code).toBe(0);

  const fill = (seed: number): string => `bytes(((i * ${seed}) >> 7) & 0xff for i in range(${6 * MiB}))`;
  await nbdshScript(limited.uri('destination'), `h.pwrite(${fill(3)}, 0)\nh.flush()`);
  expect(statSync(statePath).size).toBeGreaterThan(6 * MiB);
  await nbdshScript(
    limited.uri('destination'),
    `h.pwrite(${fill(5)}, 0)
expect_errno(errno.ENOSPC, lambda: h.flush())
assert h.pread(${6 * MiB}, 0) == ${fill(5)}, "held data is still served"`,
  );
  const status = await cli(['status', '--control', control]);
  expect(status.stdout).toMatch(/^commit failed: cannot write the state file .*disk\.remap-state: the file may not grow any larger .*\(EFBIG\) \(the next FLUSH tries again\)$/m);
  expect(status.stdout).toMatch(/^\s+fix: free space on the file system of .* or raise the limit \(ulimit -f\)/m);
  expect(limited.stderr()).toMatch(/FLUSH 0\+0 failed \(ENOSPC to the client\)/);

  // A stop cannot carry the held data into the state yet: it waits, and says so.
  limited.child.kill('SIGTERM');
  await until('the stop to say it waits', () => /cannot stop yet: what is held in RAM does not fit in the state file/.test(limited.stderr()));
  expect(limited.child.exitCode).toBeNull();
  // Room again (as after freeing space): the next attempt commits, and the server stops cleanly.
  const lifted = await runTool('prlimit', ['--pid', String(limited.child.pid), '--fsize=unlimited:unlimited'], { timeoutMs: 10_000 });
  expect(lifted.code).toBe(0);
  expect(await limited.exited).toBe(0);

  // Restarted: the second data was kept; finish lands it at its homes.
  const server: ServerProcess = await startServerProcess(serveArgs);
  cleanup(() => server.stop('SIGKILL'));
  expect(server.stdout()).toMatch(/\(resumed\)/);
  await nbdshScript(server.uri('destination'), `assert h.pread(${6 * MiB}, 0) == ${fill(5)}, "the data held at the stop"`);
  const finish = await cli(['finish', '--control', control]);
  expect(finish.code).toBe(0);
  expect(await server.stop()).toBe(0);
  const after = readFileSync(disk);
  expect(after.subarray(0, 2 * MiB).equals(original.subarray(0, 2 * MiB))).toBe(true);
  const expected = Buffer.alloc(6 * MiB);
  for (let i = 0; i < expected.length; i++) expected[i] = ((i * 5) >> 7) & 0xff;
  expect(after.subarray(2 * MiB).equals(expected)).toBe(true);
}, 180_000);
