import { readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { ControlClient } from '../../src/control/control-client.js';
import { runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';
import { useCleanups } from '../helpers/cleanups.js';

/**
 * SIGTERM to a server in the middle of finish, as a person stopping it would:
 * the server stops finish between two waves and closes the state only after
 * the wave in flight and its commit (serve-run's stop); the finish command
 * says finish stopped and how to go on; the server exits 0; after a restart,
 * finish resumes and the disk is the new layout.
 */
const MiB = 1024 * 1024;
const SIZE = 512 * MiB;
const CHUNKS = 8;

const cleanup = useCleanups();

it('a stop during finish stops it between waves; restarted, finish resumes and the disk is the new layout', async () => {
  const dir = scratchDir('nbd-remapper-stop-finish-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  const original = randomImage(disk, SIZE);
  const chunk = SIZE / CHUNKS;
  // Chunks reversed: every block moves, and finish has most of the disk to land.
  const extents = Array.from({ length: CHUNKS }, (_, i) => ({ destOffset: i * chunk, length: chunk, diskOffset: (CHUNKS - 1 - i) * chunk }));
  const mapFile = dir.file('map.json');
  writeFileSync(mapFile, JSON.stringify({ extents }));
  const control = dir.file('control.sock');
  const socket = dir.file('nbd.sock');
  const serveArgs = ['serve', '--disk', disk, '--map', mapFile, '--socket', socket, '--control', control, '--cache', '64M'];
  const cli = (args: string[]) => runTool(process.execPath, [CLI, ...args], { timeoutMs: 120_000 });

  const first = await startServerProcess(serveArgs);
  cleanup(() => first.stop('SIGKILL'));
  expect((await cli(['seal', '--control', control])).code).toBe(0);
  const copied = await cli(['copy', '--from', `nbd+unix:///source?socket=${socket}`, '--to', `nbd+unix:///destination?socket=${socket}`]);
  expect(copied.code, copied.stderr).toBe(0);

  let finishOut = '';
  let finishErr = '';
  const finishing = new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'finish', '--control', control], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => (finishOut += c.toString()));
    child.stderr.on('data', (c: Buffer) => (finishErr += c.toString()));
    child.once('close', (code) => resolve(code));
  });
  // Stop the server as soon as finish has landed something.
  const client = new ControlClient(control);
  let progress: { done: number; total: number } | null = null;
  for (let i = 0; i < 2000 && (progress === null || progress.done === 0); i++) {
    progress = (await client.status()).finish as { done: number; total: number } | null;
    if (progress === null || progress.done === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  first.child.kill('SIGTERM');
  const finishCode = await finishing;
  const serverCode = await first.exited;
  console.log(`stopped at ${progress?.done} of ${progress?.total} held blocks landed; finish said: ${finishErr.trim().split('\n')[0]}`);
  expect(progress?.done).toBeLessThan(progress?.total ?? 0);
  expect(finishCode, finishOut + finishErr).toBe(1);
  expect(finishErr).toMatch(/finish stopped because the server is stopping, after \d+ of \d+ held block\(s\) landed/);
  expect(finishErr).toMatch(/fix: start the server again with the same --state and run `nbd-remapper finish` again: it resumes where it stopped/);
  expect(serverCode).toBe(0);
  // The state was closed after finish stopped, not under it.
  expect(first.stderr()).not.toMatch(/state commits have stopped|journal is closed/);

  const second = await startServerProcess(serveArgs);
  cleanup(() => second.stop());
  const resumed = await cli(['finish', '--control', control]);
  expect(resumed.code, resumed.stderr).toBe(0);
  expect(await second.stop()).toBe(0);
  const after = readFileSync(disk);
  for (let i = 0; i < CHUNKS; i++) {
    const home = (CHUNKS - 1 - i) * chunk;
    expect(after.subarray(home, home + chunk).equals(original.subarray(i * chunk, (i + 1) * chunk)), `chunk ${i}`).toBe(true);
  }
}, 180_000);
