import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Disk } from '../../../src/store/disk.js';
import { DiskAttachedError } from '../../../src/store/disk-errors.js';
import { loopAttachmentsOf } from '../../../src/store/loop-attachments.js';
import { useCleanups } from '../../helpers/cleanups.js';
import { scratchDir } from '../../helpers/scratch.js';

/**
 * An image file that a loop device also exposes is refused for writing: a
 * filesystem mounted from the loop device would be written by the kernel
 * behind the server's back, and read around the source export. Block devices
 * get this from O_EXCL; an image gets it from sysfs.
 */
const cleanup = useCleanups();
const canAttachLoop =
  process.getuid?.() === 0 && existsSync('/dev/loop-control') && spawnSync('losetup', ['--version'], { timeout: 10_000 }).status === 0;

/** Opens `path` for writing once `losetup -d` has taken effect: the kernel lets go of a backing file asynchronously (bounded: 50 looks). */
async function openOnceDetached(path: string): Promise<Disk> {
  for (let look = 0; look < 50; look++) {
    const disk = await Disk.open(path, { readOnly: false }).catch((err: unknown) => {
      if (!(err instanceof DiskAttachedError)) throw err;
      return undefined;
    });
    if (disk !== undefined) return disk;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${path} still refused 5 s after its loop device was detached`);
}

/** A sysfs and mountinfo written by hand: the parsing, everywhere (no root needed). */
function fakeSysfs(dir: string, devices: Record<string, { backing?: string; ro?: boolean; dev: string; partitions?: Record<string, string> }>): string {
  const sys = join(dir, 'sys-block');
  for (const [name, d] of Object.entries(devices)) {
    mkdirSync(join(sys, name, 'loop'), { recursive: true });
    if (d.backing !== undefined) writeFileSync(join(sys, name, 'loop', 'backing_file'), `${d.backing}\n`);
    writeFileSync(join(sys, name, 'ro'), d.ro ? '1\n' : '0\n');
    writeFileSync(join(sys, name, 'dev'), `${d.dev}\n`);
    for (const [part, dev] of Object.entries(d.partitions ?? {})) {
      mkdirSync(join(sys, name, part));
      writeFileSync(join(sys, name, part, 'dev'), `${dev}\n`);
    }
  }
  mkdirSync(join(sys, 'sda'));
  return sys;
}

it('matches by device and inode, not by path, and finds the mounts of the device and its partitions', async () => {
  const dir = scratchDir('nbd-remapper-loopscan-');
  cleanup(() => dir.cleanup());
  const image = dir.file('disk.img');
  writeFileSync(image, Buffer.alloc(4096));
  const link = dir.file('other name.img');
  linkSync(image, link);
  const stranger = dir.file('stranger.img');
  writeFileSync(stranger, Buffer.alloc(4096));
  const sys = fakeSysfs(dir.path, {
    loop0: { backing: link, dev: '7:0', partitions: { loop0p1: '259:0', loop0p2: '259:1' } },
    loop1: { backing: stranger, dev: '7:1' },
    loop2: { dev: '7:2' }, // not attached
    loop3: { backing: `${image} (deleted)`, ro: true, dev: '7:3' }, // the kernel's mark; the path still names this image here
    loop4: { backing: dir.file('gone.img'), dev: '7:4' },
  });
  const mountInfo = dir.file('mountinfo');
  writeFileSync(
    mountInfo,
    [
      '22 1 259:1 / /mnt/old\\040root rw,relatime shared:1 - ext4 /dev/loop0p2 rw',
      '23 1 7:1 / /mnt/stranger rw - ext4 /dev/loop1 rw',
      '24 1 8:1 / / rw - ext4 /dev/sda1 rw',
    ].join('\n'),
  );
  expect(await loopAttachmentsOf(statSync(image), sys, mountInfo)).toEqual([
    { device: '/dev/loop0', readOnly: false, mountedAt: ['/mnt/old root'] },
    { device: '/dev/loop3', readOnly: true, mountedAt: [] },
  ]);
  expect(await loopAttachmentsOf(statSync(dir.file('mountinfo')), sys, mountInfo)).toEqual([]);
  expect(await loopAttachmentsOf(statSync(image), dir.file('no-sysfs'), mountInfo)).toEqual([]);
});

it.runIf(canAttachLoop)('refuses to open an attached image for writing, says how to free it, and opens it once detached', async () => {
  const dir = scratchDir('nbd-remapper-loopdisk-');
  cleanup(() => dir.cleanup());
  const image = dir.file('disk.img');
  execFileSync('truncate', ['-s', '32M', image]);
  execFileSync('mkfs.ext4', ['-q', image]);
  const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8', timeout: 20_000 }).trim();
  let attached = true;
  cleanup(() => {
    if (attached) spawnSync('losetup', ['-d', device]);
  });
  const mountPoint = dir.file('old root');
  mkdirSync(mountPoint);
  execFileSync('mount', [device, mountPoint]);
  let mounted = true;
  cleanup(() => {
    if (mounted) spawnSync('umount', ['-l', mountPoint]);
  });

  const refused = await Disk.open(image, { readOnly: false }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(refused).toBeInstanceOf(DiskAttachedError);
  const error = refused as DiskAttachedError;
  expect(error.message).toContain(`${device}, mounted at ${mountPoint}`);
  expect(error.fix).toContain(`umount '${mountPoint}'`);
  expect(error.fix).toContain(`losetup -d ${device}`);
  // Through another name for the same file: the same refusal.
  const link = dir.file('link.img');
  linkSync(image, link);
  await expect(Disk.open(link, { readOnly: false })).rejects.toBeInstanceOf(DiskAttachedError);
  // Reading only is what O_EXCL allows for block devices too.
  await (await Disk.open(image, { readOnly: true })).close();

  execFileSync('umount', [mountPoint]);
  mounted = false;
  await expect(Disk.open(image, { readOnly: false })).rejects.toThrow(new RegExp(`attached as a loop device: ${device}\\. `));
  execFileSync('losetup', ['-d', device]);
  attached = false;
  await (await openOnceDetached(image)).close();
});

it.runIf(canAttachLoop)('refuses a loop device whose image a second loop device also exposes, and opens it once that one is gone', async () => {
  const dir = scratchDir('nbd-remapper-looptwice-');
  cleanup(() => dir.cleanup());
  const image = dir.file('disk.img');
  execFileSync('truncate', ['-s', '8M', image]);
  const attach = (): string => {
    const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8', timeout: 20_000 }).trim();
    cleanup(() => void spawnSync('losetup', ['-d', device]));
    return device;
  };
  const served = attach();
  // Alone on its image, a loop device opens as any block device.
  await (await Disk.open(served, { readOnly: false })).close();
  const second = attach();
  const refused = await Disk.open(served, { readOnly: false }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(refused).toBeInstanceOf(DiskAttachedError);
  expect((refused as DiskAttachedError).message).toContain(`the loop device ${served} serves the image ${image}, which is also attached as another loop device: ${second}.`);
  expect((refused as DiskAttachedError).fix).toContain(`losetup -d ${second}`);
  expect((refused as DiskAttachedError).fix).not.toContain(`losetup -d ${served}`);
  execFileSync('losetup', ['-d', second]);
  await (await openOnceDetached(served)).close();
});
