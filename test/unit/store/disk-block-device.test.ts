import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { Disk } from '../../../src/store/disk.js';
import { DiskLockedError } from '../../../src/store/disk-errors.js';
import { randomImage, scratchDir } from '../../helpers/scratch.js';

/**
 * A block device needs root and loop devices; CI machines and the developer
 * containers here have both. Without them this one test cannot run: a regular
 * file cannot stand in, because what is tested is the block-device path
 * (fstat says 0 bytes, the size comes from lseek(SEEK_END)).
 */
const canAttachLoop =
  process.getuid?.() === 0 && existsSync('/dev/loop-control') && spawnSync('losetup', ['--version'], { timeout: 10_000 }).status === 0;

it.runIf(canAttachLoop)('serves a block device: size from lseek, I/O, everything data, exclusive lock', async () => {
  const dir = scratchDir('nbd-remapper-blk-');
  const image = dir.file('backing.img');
  const size = 3 * 1024 * 1024 + 512;
  const content = randomImage(image, size);
  const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8', timeout: 20_000 }).trim();
  try {
    const disk = await Disk.open(device, { readOnly: false });
    try {
      expect(disk.isBlockDevice).toBe(true);
      expect(disk.size).toBe(size);
      expect((await disk.read(size - 4096, 8192)).equals(Buffer.concat([content.subarray(size - 4096), Buffer.alloc(4096)]))).toBe(true);
      const data = randomBytes(10_000);
      await disk.write(4097, data);
      await disk.sync();
      expect((await disk.read(4097, data.length)).equals(data)).toBe(true);
      expect(readFileSync(image).subarray(4097, 4097 + data.length).equals(data)).toBe(true);
      expect(await disk.allocation(100, size)).toEqual([{ offset: 100, length: size - 100, data: true }]);
      expect(await disk.isZeroRangeFast(0, 4096)).toBe(false);
      await expect(Disk.open(device, { readOnly: true })).rejects.toBeInstanceOf(DiskLockedError);
      // For writing, the device is claimed exclusively: a second writer is refused by the kernel, before any flock.
      const second = await Disk.open(device, { readOnly: false }).catch((err: unknown) => err);
      expect(second).toBeInstanceOf(DiskLockedError);
      expect((second as Error).message).toMatch(/is in use \(EBUSY\)/);
    } finally {
      await disk.close();
    }
  } finally {
    execFileSync('losetup', ['--detach', device], { timeout: 20_000 });
    dir.cleanup();
  }
});

it.runIf(canAttachLoop)('refuses a block device with a mounted filesystem, and keeps it from being mounted while it serves it', async () => {
  const dir = scratchDir('nbd-remapper-blk-');
  const image = dir.file('backing.img');
  randomImage(image, 16 * 1024 * 1024);
  const mountPoint = dir.file('mnt');
  mkdirSync(mountPoint);
  const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8', timeout: 20_000 }).trim();
  try {
    execFileSync('mkfs.ext4', ['-q', '-F', device], { timeout: 60_000 });
    execFileSync('mount', [device, mountPoint], { timeout: 20_000 });
    let refused: unknown;
    try {
      refused = await Disk.open(device, { readOnly: false }).catch((err: unknown) => err);
    } finally {
      execFileSync('umount', [mountPoint], { timeout: 20_000 });
    }
    // Writing under a mounted filesystem would corrupt it, and it would write behind the server's back.
    expect(refused).toBeInstanceOf(DiskLockedError);
    expect((refused as Error).message).toMatch(new RegExp(`the disk ${device} is in use \\(EBUSY\\): a filesystem on it or on one of its partitions is mounted`));
    expect((refused as DiskLockedError).fix).toMatch(/findmnt -S .*never from the disk itself/);

    const disk = await Disk.open(device, { readOnly: false });
    try {
      const mount = spawnSync('mount', [device, mountPoint], { encoding: 'utf8', timeout: 20_000 });
      expect(mount.status).not.toBe(0);
      expect(mount.stderr).toMatch(/busy|already mounted/);
    } finally {
      await disk.close();
    }
  } finally {
    spawnSync('umount', [mountPoint], { timeout: 20_000 });
    execFileSync('losetup', ['--detach', device], { timeout: 20_000 });
    dir.cleanup();
  }
});
