import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
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
    } finally {
      await disk.close();
    }
  } finally {
    execFileSync('losetup', ['--detach', device], { timeout: 20_000 });
    dir.cleanup();
  }
});
