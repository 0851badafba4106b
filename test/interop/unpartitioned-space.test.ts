import { execFileSync } from 'node:child_process';
import { truncateSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { mustRun } from '../helpers/run-tool.js';
import { scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * Space outside the old partitions is read by no copy, so new data whose home
 * is there waits until finish. serve says so before sealing, with the
 * blkdiscard commands that declare it free; doing what it says (the TRIM those
 * commands send, here from nbdsh) makes such data land at once.
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

interface Status {
  landed: number;
  heldInRam: number;
}

async function sealWriteAndLook(server: Awaited<ReturnType<typeof startServerProcess>>, control: string, at: number): Promise<Status> {
  await mustRun(process.execPath, [CLI, 'seal', '--control', control], { timeoutMs: 30_000 });
  await nbdshScript(server.uri('destination'), `h.pwrite(b"\\x5a" * ${4 * MiB}, ${at})`);
  return JSON.parse(await mustRun(process.execPath, [CLI, 'status', '--json', '--control', control])) as Status;
}

it('names the space outside the old partitions before sealing; discarded as it says, new data there lands at once', async () => {
  const dir = scratchDir('nbd-remapper-unpartitioned-');
  cleanup(() => dir.cleanup());
  const size = 64 * MiB;
  const disks = ['followed.img', 'ignored.img'].map((name) => {
    const disk = dir.file(name);
    writeFileSync(disk, '');
    truncateSync(disk, size);
    // One partition from 1 MiB to 17 MiB; 17 MiB … 63 MiB belong to none (the last MiB is GPT's backup).
    execFileSync('sfdisk', ['-q', disk], { input: 'label: gpt\nstart=2048, size=32768, type=L\n', timeout: 20_000 });
    return disk;
  });

  const [followed, ignored] = await Promise.all(
    disks.map((disk) => startServerProcess(['serve', '--disk', disk, '--socket', `${disk}.sock`, '--control', `${disk}.control`])),
  );
  cleanup(() => followed.stop('SIGKILL'));
  cleanup(() => ignored.stop('SIGKILL'));
  expect(followed.stdout()).toMatch(/^hint: 46 MiB of the old disk lies outside its partitions \(the GPT table\), where new data would wait \(RAM, then spill\) until finish/m);
  const command = /^ {2}blkdiscard -o (\d+) -l (\d+) \/dev\/nbd0$/m.exec(followed.stdout());
  expect(command, followed.stdout()).not.toBeNull();
  const [offset, length] = [Number(command![1]), Number(command![2])];
  expect([offset, length]).toEqual([17 * MiB, 46 * MiB]);

  // What blkdiscard on the attached source sends: TRIM of the range, before sealing.
  await nbdshScript(followed.uri('source'), `h.trim(${length}, ${offset})`);
  // Before sealing, status shows what the TRIM declared free.
  const before = JSON.parse(await mustRun(process.execPath, [CLI, 'status', '--json', '--control', `${disks[0]}.control`])) as { declaredFree: number; released: number };
  expect(before).toMatchObject({ declaredFree: length / 4096, released: 0 });
  expect(await mustRun(process.execPath, [CLI, 'status', '--control', `${disks[0]}.control`])).toMatch(/declared free 11,776 \(46 MiB\) by TRIM/);
  // Started again before sealing, the server does not offer what is declared free already.
  expect(await followed.stop()).toBe(0);
  const again = await startServerProcess(['serve', '--disk', disks[0], '--socket', `${disks[0]}.sock`, '--control', `${disks[0]}.control`]);
  cleanup(() => again.stop('SIGKILL'));
  expect(again.stdout()).toMatch(/^next: mount the old filesystems from source/m);
  expect(again.stdout()).not.toMatch(/hint:|blkdiscard/);
  const landed = await sealWriteAndLook(again, `${disks[0]}.control`, offset + 8 * MiB);
  expect(landed).toMatchObject({ landed: 1024, heldInRam: 0 });

  // Without it, the same write waits in RAM: its homes are never read.
  const held = await sealWriteAndLook(ignored, `${disks[1]}.control`, offset + 8 * MiB);
  expect(held).toMatchObject({ landed: 0, heldInRam: 1024 });

  expect(await again.stop()).toBe(0);
  expect(await ignored.stop()).toBe(0);
}, 60_000);

it('says nothing of a disk without a partition table', async () => {
  const dir = scratchDir('nbd-remapper-unpartitioned-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('bare.img');
  writeFileSync(disk, '');
  truncateSync(disk, 64 * MiB);
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', `${disk}.sock`]);
  cleanup(() => server.stop('SIGKILL'));
  expect(server.stdout()).toMatch(/^next: mount the old filesystems from source/m);
  expect(server.stdout()).not.toMatch(/hint:|blkdiscard/);
  expect(await server.stop()).toBe(0);
}, 60_000);
