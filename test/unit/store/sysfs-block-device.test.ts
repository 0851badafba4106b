import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { sysfsBlockDevice } from '../../../src/store/sysfs-block-device.js';
import { useCleanups } from '../../helpers/cleanups.js';
import { scratchDir } from '../../helpers/scratch.js';

/**
 * A sysfs written by hand: a loop device, one of its partitions, and a disk.
 * Real loop devices are covered where this machine can attach them
 * (state-location, loop-attachments); partitions of loop devices are not:
 * the kernels these tests run on here do not scan them.
 */
const cleanup = useCleanups();

/** glibc's dev_t of major:minor (the small numbers only). */
const devT = (major: number, minor: number): number => major * 256 + minor;

function fakeSysfs(): string {
  const dir = scratchDir('nbd-remapper-sysfs-');
  cleanup(() => dir.cleanup());
  const root = dir.path;
  const loop = join(root, 'devices/virtual/block/loop3');
  mkdirSync(join(loop, 'loop'), { recursive: true });
  writeFileSync(join(loop, 'loop/backing_file'), '/srv/old disk.img\n');
  mkdirSync(join(loop, 'loop3p1'));
  writeFileSync(join(loop, 'loop3p1/partition'), '1\n');
  const disk = join(root, 'devices/pci0000:00/block/sda');
  mkdirSync(join(disk, 'sda2'), { recursive: true });
  writeFileSync(join(disk, 'sda2/partition'), '2\n');
  mkdirSync(join(root, 'dev/block'), { recursive: true });
  symlinkSync(loop, join(root, 'dev/block/7:3'));
  symlinkSync(join(loop, 'loop3p1'), join(root, 'dev/block/259:0'));
  symlinkSync(disk, join(root, 'dev/block/8:0'));
  symlinkSync(join(disk, 'sda2'), join(root, 'dev/block/8:2'));
  return root;
}

it('names a device, its whole device, and for a loop device or a partition of one the backing file', () => {
  const sysfs = fakeSysfs();
  expect(sysfsBlockDevice(devT(7, 3), sysfs)).toEqual({ name: 'loop3', wholeDevice: 'loop3', backingFile: '/srv/old disk.img' });
  expect(sysfsBlockDevice(devT(259, 0), sysfs)).toEqual({ name: 'loop3p1', wholeDevice: 'loop3', backingFile: '/srv/old disk.img' });
  expect(sysfsBlockDevice(devT(8, 0), sysfs)).toEqual({ name: 'sda', wholeDevice: 'sda', backingFile: undefined });
  expect(sysfsBlockDevice(devT(8, 2), sysfs)).toEqual({ name: 'sda2', wholeDevice: 'sda', backingFile: undefined });
  // Not a block device (tmpfs, overlayfs …): no entry.
  expect(sysfsBlockDevice(devT(0, 42), sysfs)).toBeUndefined();
});

it('decodes large device numbers as glibc packs them', () => {
  const dir = scratchDir('nbd-remapper-sysfs-');
  cleanup(() => dir.cleanup());
  const device = join(dir.path, 'devices/virtual/block/nbd1000');
  mkdirSync(device, { recursive: true });
  mkdirSync(join(dir.path, 'dev/block'), { recursive: true });
  symlinkSync(device, join(dir.path, 'dev/block/4100:70000'));
  // major 4100, minor 70000: major bits 8–19 and 44–63, minor bits 0–7 and 20–43.
  const dev = (70000 & 0xff) + (4100 & 0xfff) * 2 ** 8 + Math.floor(70000 / 256) * 2 ** 20 + Math.floor(4100 / 4096) * 2 ** 44;
  expect(sysfsBlockDevice(dev, dir.path)).toEqual({ name: 'nbd1000', wholeDevice: 'nbd1000', backingFile: undefined });
});
