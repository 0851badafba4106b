import { statfsSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { UserError } from './user-error.js';
import { shellQuote } from '../format/shell-quote.js';
import { sysfsBlockDevice, type BlockDeviceInfo } from '../store/sysfs-block-device.js';

/**
 * Where the state file may live. It is what puts a half-moved disk back
 * together after a crash (G5), so it must survive whatever the disk survives,
 * and be written without the server's own help:
 *
 * - On a file system that lives in RAM it survives a killed process but not a
 *   power loss or a reboot, while the disk keeps its half-moved blocks. Refused
 *   unless the disk is just as volatile (a test on images in /tmp or /dev/shm
 *   loses both at once) or the person accepts it.
 * - On an NBD device it depends on an NBD server, and if that is this one
 *   (the state put under the mount point of the old filesystem, mounted from
 *   `source`), its writes land in the old layout and its FLUSH waits on the
 *   very server that waits for it. Refused.
 */

/** statfs(2) f_type of the file systems that live in RAM. */
const RAM_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
]);


export interface LocationProbe {
  /** f_type of the file system holding `path`, or that would hold it (a new state file). */
  fileSystemType(path: string): number;
  /** The block device holding the file system of `path` (or where it would be created); undefined when there is none. */
  deviceHolding(path: string): BlockDeviceInfo | undefined;
  /** The block device a device node names. */
  blockDevice(devicePath: string): BlockDeviceInfo | undefined;
}

/** The nearest existing path at or above `path` (a new state file's directory, or its parent's). */
function existingAncestor(path: string): string {
  for (let at = path; ; at = dirname(at)) {
    try {
      statSync(at);
      return at;
    } catch {
      if (dirname(at) === at) return at;
    }
  }
}

export const systemProbe: LocationProbe = {
  fileSystemType: (path) => statfsSync(existingAncestor(path)).type,
  deviceHolding: (path) => sysfsBlockDevice(statSync(existingAncestor(path)).dev),
  blockDevice: (devicePath) => sysfsBlockDevice(statSync(devicePath).rdev),
};

/** 'tmpfs' / 'ramfs' when `path` (or where it would be created) lives in RAM, else undefined. */
export function ramFileSystemOf(path: string, probe: LocationProbe = systemProbe): string | undefined {
  return RAM_FILE_SYSTEMS.get(probe.fileSystemType(path));
}

/** Why the disk itself would not survive a reboot either, or undefined for a disk that does. */
export function volatileDiskReason(diskPath: string, isBlockDevice: boolean, probe: LocationProbe = systemProbe): string | undefined {
  if (!isBlockDevice) {
    const kind = ramFileSystemOf(diskPath, probe);
    return kind && `the image is on ${kind}`;
  }
  const device = probe.blockDevice(diskPath);
  if (device === undefined) return undefined;
  if (/^(zram|ram)\d+$/.test(device.name)) return `${device.name} is a RAM disk`;
  if (device.backingFile !== undefined) {
    const kind = ramFileSystemOf(device.backingFile, probe);
    return kind && `${device.name}'s backing file is on ${kind}`;
  }
  return undefined;
}

/** The NBD device (nbd0, nbd0p1) holding the file system of `path`, if that is one. */
export function nbdDeviceHolding(path: string, probe: LocationProbe = systemProbe): string | undefined {
  const name = probe.deviceHolding(path)?.name;
  return name !== undefined && /^nbd\d+(p\d+)?$/.test(name) ? name : undefined;
}

/**
 * Refuses a state file that would not survive what the disk survives, or that
 * lives on an NBD device. Returns a warning to log when the person accepted a
 * volatile one, else undefined.
 */
export function checkStateLocation(
  o: { statePath: string; diskPath: string; isBlockDevice: boolean; allowVolatile: boolean },
  probe: LocationProbe = systemProbe,
): string | undefined {
  const example = shellQuote(`/root/${basename(o.diskPath)}.remap-state`);
  const elsewhere =
    `put --state on a local, disk-backed file system that is not on ${o.diskPath} ` +
    `(e.g. --state ${example}; a stopped migration's state may be moved there first)`;
  const nbd = nbdDeviceHolding(o.statePath, probe);
  if (nbd !== undefined) {
    throw new UserError(
      `the state file ${o.statePath} is on /dev/${nbd}, an NBD device: if that is this server's source export (the old filesystem's mount point), ` +
        `the state's writes would land in the old layout and wait on the server that waits for them`,
      elsewhere,
      2,
    );
  }
  const kind = ramFileSystemOf(o.statePath, probe);
  if (kind === undefined || volatileDiskReason(o.diskPath, o.isBlockDevice, probe) !== undefined) return undefined;
  const risk =
    `the state file ${o.statePath} is on ${kind}, which lives in RAM: a power loss or a reboot erases it, ` +
    `while ${o.diskPath} keeps blocks half-moved that only the state can put back together`;
  if (o.allowVolatile) return `${risk} (accepted with --allow-volatile-state)`;
  throw new UserError(risk, `${elsewhere}, or accept the risk with --allow-volatile-state`, 2);
}
