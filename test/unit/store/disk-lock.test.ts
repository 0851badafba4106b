import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Disk } from '../../../src/store/disk.js';
import { DiskLockedError } from '../../../src/store/disk-errors.js';
import { randomImage, scratchDir } from '../../helpers/scratch.js';

const fsExtPath = createRequire(import.meta.url).resolve('fs-ext');

let dir: ReturnType<typeof scratchDir>;
let disk: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = scratchDir('nbd-remapper-lock-');
  disk = dir.file('disk.img');
  randomImage(disk, 65536);
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
  dir.cleanup();
});

/** Another process holding an exclusive flock on `path` until it is killed; resolves once the lock is taken. */
async function holdLockInAnotherProcess(path: string): Promise<ChildProcess> {
  const script = `
    const fs = require('node:fs');
    const { flockSync } = require(process.argv[1]);
    const fd = fs.openSync(process.argv[2], 'r');
    flockSync(fd, 'exnb');
    process.stdout.write('locked\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['-e', script, fsExtPath, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let output = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('locked')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`lock holder exited early with ${code}`)));
  });
  return child;
}

/** flock(1) from util-linux trying the lock without waiting: exit 0 if it got it, 1 if someone holds it. */
function otherProgramCanLock(path: string): boolean {
  const result = spawnSync('flock', ['--nonblock', '--exclusive', path, 'true'], { timeout: 10_000 });
  if (result.status !== 0 && result.status !== 1) throw new Error(`flock(1) failed: ${result.stderr}`);
  return result.status === 0;
}

it('a second open in the same process fails at once while the first is open, and works after close', async () => {
  const first = await Disk.open(disk, { readOnly: false });
  for (const readOnly of [false, true]) {
    const failure = Disk.open(disk, { readOnly });
    await expect(failure).rejects.toBeInstanceOf(DiskLockedError);
    await expect(failure).rejects.toMatchObject({ message: expect.stringMatching(/locked|in use/), fix: expect.stringMatching(/fuser|lsof/) });
    await expect(failure).rejects.toMatchObject({ message: expect.stringContaining(disk), fix: expect.stringContaining(disk) });
  }
  await first.close();
  const second = await Disk.open(disk, { readOnly: false });
  await second.close();
});

it('is refused while another process holds the lock, and opens once that process is gone', async () => {
  const holder = await holdLockInAnotherProcess(disk);
  await expect(Disk.open(disk, { readOnly: true })).rejects.toBeInstanceOf(DiskLockedError);
  const exited = once(holder, 'exit');
  holder.kill('SIGKILL');
  await exited;
  const opened = await Disk.open(disk, { readOnly: true });
  await opened.close();
});

it('holds a lock other programs see, and drops it on close', async () => {
  expect(otherProgramCanLock(disk)).toBe(true);
  const opened = await Disk.open(disk, { readOnly: true });
  expect(otherProgramCanLock(disk)).toBe(false);
  await opened.close();
  expect(otherProgramCanLock(disk)).toBe(true);
});
