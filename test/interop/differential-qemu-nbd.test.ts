import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { mustRun, TOOL_ENV } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { startServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;

/** One workload of writes, zeroes, discards, unaligned and FUA writes, as qemu-io commands. */
function workload(seed: number): string[] {
  let state = seed;
  const next = (n: number): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
  const cmds: string[] = [];
  for (let i = 0; i < 60; i++) {
    const offset = next(30 * MiB);
    const length = 1 + next(256 * 1024);
    switch (next(5)) {
      case 0:
        cmds.push(`write -P ${next(256)} ${offset} ${length}`);
        break;
      case 1:
        cmds.push(next(2) ? `write -z ${offset} ${length}` : `write -z -u ${offset} ${length}`);
        break;
      case 2:
        cmds.push(`write -f -P ${next(256)} ${offset & ~511} ${Math.max(512, length & ~511)}`);
        break;
      case 3:
        cmds.push(`aio_write -P ${next(256)} ${offset} ${length}`, 'aio_flush');
        break;
      default:
        cmds.push(`flush`);
    }
  }
  return cmds;
}

it('leaves an image byte-identical to qemu-nbd given the same workload', async () => {
  const dir = scratchDir();
  const ours = dir.file('ours.img');
  const theirs = dir.file('theirs.img');
  randomImage(ours, 32 * MiB);
  copyFileSync(ours, theirs);

  const qemuSocket = dir.file('qemu.sock');
  const qemu = spawn('qemu-nbd', ['-f', 'raw', '-x', 'source', '-k', qemuSocket, '--persistent', theirs], { env: TOOL_ENV, stdio: 'ignore' });
  const server = await startServerProcess(['serve', '--disk', ours, '--socket', dir.file('ours.sock')]);
  try {
    for (let tries = 0; !existsSync(qemuSocket) && tries < 100; tries++) await new Promise((r) => setTimeout(r, 50));
    const args = workload(20261122).flatMap((c) => ['-c', c]);
    await mustRun('qemu-io', ['-f', 'raw', ...args, server.uri('source')]);
    await mustRun('qemu-io', ['-f', 'raw', ...args, `nbd+unix:///source?socket=${qemuSocket}`]);
  } finally {
    expect(await server.stop()).toBe(0);
    qemu.kill('SIGTERM');
  }
  const a = readFileSync(ours);
  const b = readFileSync(theirs);
  expect(a.length).toBe(b.length);
  const firstDifference = a.findIndex((byte, i) => byte !== b[i]);
  expect(firstDifference).toBe(-1);
  dir.cleanup();
});
