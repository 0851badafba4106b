import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { checkStateLocation, nbdDeviceHolding, ramFileSystemOf, systemProbe, volatileDiskReason, type LocationProbe } from '../../../src/cli/state-location.js';
import type { BlockDeviceInfo } from '../../../src/store/sysfs-block-device.js';
import { UserError } from '../../../src/cli/user-error.js';

const canAttachLoop =
  process.getuid?.() === 0 && existsSync('/dev/loop-control') && spawnSync('losetup', ['--version'], { timeout: 10_000 }).status === 0;

const TMPFS = 0x01021994;
const RAMFS = 0x858458f6;
const EXT4 = 0xef53;

/** Paths under /ram are on tmpfs, under /initrd on ramfs, under /mnt/old on nbd0p1, the rest on ext4 on sda1; block devices as listed. */
function fakeProbe(devices: Record<string, { name: string; backingFile?: string }> = {}): LocationProbe {
  const device = (name: string, backingFile?: string): BlockDeviceInfo => ({ name, wholeDevice: name.replace(/p?\d+$/, ''), backingFile });
  return {
    fileSystemType: (path) => (path.startsWith('/ram') ? TMPFS : path.startsWith('/initrd') ? RAMFS : EXT4),
    deviceHolding: (path) => (path.startsWith('/ram') || path.startsWith('/initrd') ? undefined : device(path.startsWith('/mnt/old') ? 'nbd0p1' : 'sda1')),
    blockDevice: (path) => (devices[path] === undefined ? undefined : device(devices[path].name, devices[path].backingFile)),
  };
}

it('refuses a state in RAM for a disk that survives a reboot, naming the risk and both ways out', () => {
  const probe = fakeProbe({ '/dev/sdb': { name: 'sdb' } });
  for (const [statePath, diskPath, isBlockDevice] of [
    ['/ram/m.remap-state', '/data/disk.img', false],
    ['/initrd/sdb.remap-state', '/dev/sdb', true],
  ] as const) {
    const refusal = (() => {
      try {
        checkStateLocation({ statePath, diskPath, isBlockDevice, allowVolatile: false }, probe);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(refusal).toBeInstanceOf(UserError);
    const { message, fix, exitCode } = refusal as UserError;
    expect(message).toContain(`the state file ${statePath} is on ${statePath.startsWith('/ram') ? 'tmpfs' : 'ramfs'}`);
    expect(message).toMatch(/power loss or a reboot erases it/);
    expect(fix).toMatch(/--state on a local, disk-backed file system/);
    expect(fix).toContain('--allow-volatile-state');
    expect(exitCode).toBe(2);
    // Accepted: a warning that still names the risk.
    expect(checkStateLocation({ statePath, diskPath, isBlockDevice, allowVolatile: true }, probe)).toMatch(/accepted with --allow-volatile-state/);
  }
});

it('accepts a state on disk, and a state in RAM when the disk is as volatile', () => {
  const probe = fakeProbe({
    '/dev/sdb': { name: 'sdb' },
    '/dev/zram0': { name: 'zram0' },
    '/dev/ram1': { name: 'ram1' },
    '/dev/loop3': { name: 'loop3', backingFile: '/ram/backing.img' },
    '/dev/loop4': { name: 'loop4', backingFile: '/data/backing.img' },
  });
  const check = (statePath: string, diskPath: string, isBlockDevice: boolean) =>
    checkStateLocation({ statePath, diskPath, isBlockDevice, allowVolatile: false }, probe);
  expect(check('/root/x.remap-state', '/dev/sdb', true)).toBeUndefined();
  expect(check('/data/disk.img.remap-state', '/data/disk.img', false)).toBeUndefined();
  expect(check('/ram/disk.img.remap-state', '/ram/disk.img', false)).toBeUndefined();
  expect(check('/ram/z.remap-state', '/dev/zram0', true)).toBeUndefined();
  expect(check('/ram/r.remap-state', '/dev/ram1', true)).toBeUndefined();
  expect(check('/ram/l.remap-state', '/dev/loop3', true)).toBeUndefined();
  expect(() => check('/ram/l.remap-state', '/dev/loop4', true)).toThrow(UserError);
  // A device sysfs does not know is taken as a real disk.
  expect(() => check('/ram/u.remap-state', '/dev/unknown', true)).toThrow(UserError);
  expect(volatileDiskReason('/dev/loop3', true, probe)).toBe("loop3's backing file is on tmpfs");
});

it('reads the file system of a path that does not exist yet from its nearest existing directory', () => {
  // /dev/shm is a tmpfs on Linux machines (glibc's shm_open needs it); the repo's own directory is on a disk.
  expect(existsSync('/dev/shm')).toBe(true);
  const dir = mkdtempSync('/dev/shm/nbd-remapper-');
  try {
    expect(ramFileSystemOf(`${dir}/not/yet/state`)).toBe('tmpfs');
  } finally {
    rmSync(dir, { recursive: true });
  }
  expect(ramFileSystemOf(new URL('../../../package.json', import.meta.url).pathname)).toBeUndefined();
});


it.runIf(canAttachLoop)('finds a loop device by its device number, and its backing file', () => {
  const dir = mkdtempSync('/dev/shm/nbd-remapper-');
  const backing = `${dir}/backing.img`;
  writeFileSync(backing, Buffer.alloc(1024 * 1024));
  const device = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8', timeout: 20_000 }).trim();
  try {
    expect(systemProbe.blockDevice(device)).toEqual({ name: device.replace('/dev/', ''), wholeDevice: device.replace('/dev/', ''), backingFile: backing });
    expect(volatileDiskReason(device, true)).toBe(`${device.replace('/dev/', '')}'s backing file is on tmpfs`);
  } finally {
    execFileSync('losetup', ['--detach', device], { timeout: 20_000 });
    rmSync(dir, { recursive: true });
  }
});

it('refuses a state on an NBD device: it may be the source export this server serves', () => {
  const probe = fakeProbe({ '/dev/sdb': { name: 'sdb' } });
  expect(nbdDeviceHolding('/mnt/old/sdb.remap-state', probe)).toBe('nbd0p1');
  expect(nbdDeviceHolding('/root/sdb.remap-state', probe)).toBeUndefined();
  for (const allowVolatile of [false, true]) {
    expect(() => checkStateLocation({ statePath: '/mnt/old/sdb.remap-state', diskPath: '/dev/sdb', isBlockDevice: true, allowVolatile }, probe)).toThrow(
      /the state file \/mnt\/old\/sdb.remap-state is on \/dev\/nbd0p1, an NBD device: if that is this server's source export/,
    );
  }
  // Names of other devices that merely start alike are not NBD devices.
  const lookalike: LocationProbe = { ...probe, deviceHolding: () => ({ name: 'nbdx', wholeDevice: 'nbdx' }) };
  expect(nbdDeviceHolding('/x', lookalike)).toBeUndefined();
});

it.runIf(canAttachLoop)('finds the block device under a path from its device number: a file system mounted from a loop device', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-where-'));
  const backing = join(dir, 'fs.img');
  const mountPoint = join(dir, 'mnt');
  mkdirSync(mountPoint);
  writeFileSync(backing, Buffer.alloc(8 * 1024 * 1024));
  execFileSync('mkfs.ext4', ['-q', '-F', backing], { timeout: 60_000 });
  const device = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8', timeout: 20_000 }).trim();
  try {
    execFileSync('mount', [device, mountPoint], { timeout: 20_000 });
    try {
      // A state not created yet, under the mount point: the device is found from the nearest existing directory.
      expect(systemProbe.deviceHolding(join(mountPoint, 'not', 'yet.remap-state'))).toEqual({ name: device.replace('/dev/', ''), wholeDevice: device.replace('/dev/', ''), backingFile: backing });
      expect(nbdDeviceHolding(join(mountPoint, 'x.remap-state'))).toBeUndefined();
    } finally {
      execFileSync('umount', [mountPoint], { timeout: 20_000 });
    }
    expect(systemProbe.deviceHolding(join(mountPoint, 'x.remap-state'))?.name).not.toBe(device.replace('/dev/', ''));
  } finally {
    execFileSync('losetup', ['--detach', device], { timeout: 20_000 });
    rmSync(dir, { recursive: true });
  }
});

