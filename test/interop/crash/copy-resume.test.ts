import { readFileSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { ControlClient } from '../../../src/control/control-client.js';
import { runTool } from '../../helpers/run-tool.js';
import { randomImage, scratchDir, scratchDisk } from '../../helpers/scratch.js';
import { CLI, startServerProcess } from '../../helpers/server-process.js';
import { useCleanups } from '../../helpers/cleanups.js';

/**
 * A block-level copy through the remapper survives a crash of the server:
 * `copy --control` checkpoints as it goes (destination flushed first), the
 * state keeps the last checkpoint's note, and the copy run again after the
 * restart resumes there — without re-reading source blocks whose originals
 * the checkpoint let the server overwrite. The disk ends as the new layout.
 */
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const SHIFT = 4 * MiB;

const cleanup = useCleanups();

it('a copy run again after kill -9 of the server resumes after its last checkpoint, and the disk ends as the new layout', async () => {
  const dir = scratchDir('nbd-remapper-copy-resume-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  const original = randomImage(disk, SIZE);
  const mapFile = dir.file('map.json');
  // A partition moved forward over itself: destination byte x lives at disk byte x + SHIFT.
  writeFileSync(mapFile, JSON.stringify({ extents: [{ destOffset: 0, length: SIZE - SHIFT, diskOffset: SHIFT }] }));
  const control = dir.file('control.sock');
  const socket = dir.file('nbd.sock');
  const serveArgs = ['serve', '--disk', disk, '--map', mapFile, '--socket', socket, '--control', control, '--cache', '4M', '--safe'];
  const copyArgs = [CLI, 'copy', '--from', `nbd+unix:///source?socket=${socket}`, '--to', `nbd+unix:///destination?socket=${socket}`, '--control', control];

  const first = await startServerProcess(serveArgs);
  cleanup(() => first.stop('SIGKILL'));
  const client = new ControlClient(control);
  await client.seal();
  const copying = runTool(process.execPath, [...copyArgs, '--request-size', '256K'], { timeoutMs: 120_000 });
  // Kill the server once a few checkpoints are behind the copy, in the middle of it.
  let done = 0;
  for (let i = 0; i < 400 && done < 16 * MiB; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const note = (await client.status()).checkpointNote;
    done = typeof note === 'string' ? (JSON.parse(note) as { copy: { done: number } }).copy.done : 0;
  }
  first.child.kill('SIGKILL');
  await first.exited;
  const interrupted = await copying;
  expect(done).toBeGreaterThanOrEqual(16 * MiB);
  expect(interrupted.code).toBe(1);
  expect(interrupted.stderr).toMatch(/checkpointing every 2\.0 MiB: the server runs with --safe and a 4\.0 MiB cache/);

  const second = await startServerProcess(serveArgs);
  cleanup(() => second.stop());
  const resumed = await runTool(process.execPath, copyArgs, { timeoutMs: 120_000 });
  expect(resumed.code, resumed.stderr).toBe(0);
  const skipped = Number(/resuming after the last checkpoint: .* \((\d+) bytes\) are copied already/.exec(resumed.stderr)?.[1]);
  console.log(`killed after a checkpoint at ${done} bytes; the second run skipped ${skipped} of ${SIZE - SHIFT}`);
  expect(skipped).toBeGreaterThanOrEqual(done);
  expect(skipped).toBeLessThan(SIZE - SHIFT);
  expect(resumed.stderr).not.toMatch(/without --control/);
  expect(resumed.stdout).toMatch(/^copied .* after .* an earlier run had copied .*destination flushed; \d+ checkpoints$/m);

  const finished = await runTool(process.execPath, [CLI, 'finish', '--control', control], { timeoutMs: 120_000 });
  expect(finished.code, finished.stderr).toBe(0);
  expect(await second.stop()).toBe(0);
  const after = readFileSync(disk);
  expect(after.subarray(SHIFT).equals(original.subarray(0, SIZE - SHIFT))).toBe(true);
});

it("a person's checkpoint note survives kill -9 and is shown by status", async () => {
  const { control, serveArgs } = scratchDisk('nbd-remapper-note-', 4 * MiB, cleanup);
  const cli = (args: string[]) => runTool(process.execPath, [CLI, ...args, '--control', control], { timeoutMs: 30_000 });
  const first = await startServerProcess(serveArgs);
  cleanup(() => first.stop('SIGKILL'));
  expect((await cli(['seal'])).code).toBe(0);
  const checkpoint = await cli(['checkpoint', '--note', 'rsync done: /home, /srv']);
  expect(checkpoint.code, checkpoint.stderr).toBe(0);
  expect(checkpoint.stdout).toContain("last checkpoint's note: rsync done: /home, /srv");
  first.child.kill('SIGKILL');
  await first.exited;

  const second = await startServerProcess(serveArgs);
  cleanup(() => second.stop());
  const status = await cli(['status']);
  expect(status.stdout).toContain("last checkpoint's note: rsync done: /home, /srv");
  const json = JSON.parse((await cli(['status', '--json'])).stdout) as { checkpointNote: unknown; clientsDroppedStalled: unknown };
  expect(json.checkpointNote).toBe('rsync done: /home, /srv');
  // serve adds what its NBD server saw of the clients to the engine's status.
  expect(json.clientsDroppedStalled).toBe(0);
  // A checkpoint without a note keeps the last one.
  expect((await cli(['checkpoint'])).stdout).toContain("last checkpoint's note: rsync done: /home, /srv");
  expect(await second.stop()).toBe(0);
});
