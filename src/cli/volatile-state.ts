import { readFileSync, realpathSync, statfsSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { UserError } from './user-error.js';

/**
 * The state file is what puts a half-moved disk back together after a crash
 * (G5). On a file system that lives in RAM it survives a killed process but
 * not a power loss or a reboot, while the disk keeps its half-moved blocks:
 * the data would be lost for good. Such a state is refused unless the disk is
 * just as volatile (a test on images in /tmp or /dev/shm loses both at once)
 * or the person says they accept it.
 */

/** statfs(2) f_type of the file systems that live in RAM. */
const RAM_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
]);

export interface VolatilityProbe {
  /** f_type of the file system holding `path`, or that would hold it (a new state file). */
  fileSystemType(path: string): number;
  /** For a block device path: the kernel's name of it (sysfs), and a loop device's backing file. */
  blockDevice(path: string): { name: string; backingFile?: string } | undefined;
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

export const systemProbe: VolatilityProbe = {
  fileSystemType: (path) => statfsSync(existingAncestor(path)).type,
  blockDevice(path) {
    const rdev = statSync(path).rdev;
    // glibc's dev_t: major in bits 8–19 and 44–63, minor in bits 0–7 and 20–43.
    const major = (Math.floor(rdev / 2 ** 8) % 2 ** 12) + (Math.floor(rdev / 2 ** 44) % 2 ** 20) * 2 ** 12;
    const minor = (rdev % 2 ** 8) + (Math.floor(rdev / 2 ** 20) % 2 ** 24) * 2 ** 8;
    try {
      const sys = realpathSync(`/sys/dev/block/${major}:${minor}`);
      let backingFile: string | undefined;
      try {
        backingFile = readFileSync(`${sys}/loop/backing_file`, 'utf8').trim();
      } catch {
        // Not a loop device.
      }
      return { name: basename(sys), backingFile };
    } catch {
      return undefined;
    }
  },
};

/** 'tmpfs' / 'ramfs' when `path` (or where it would be created) lives in RAM, else undefined. */
export function ramFileSystemOf(path: string, probe: VolatilityProbe = systemProbe): string | undefined {
  return RAM_FILE_SYSTEMS.get(probe.fileSystemType(path));
}

/** Why the disk itself would not survive a reboot either, or undefined for a disk that does. */
export function volatileDiskReason(diskPath: string, isBlockDevice: boolean, probe: VolatilityProbe = systemProbe): string | undefined {
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

/**
 * Refuses a state file that would not survive a reboot the disk survives.
 * Returns a warning to log when the person accepted that, else undefined.
 */
export function checkStateDurability(
  o: { statePath: string; diskPath: string; isBlockDevice: boolean; allowVolatile: boolean },
  probe: VolatilityProbe = systemProbe,
): string | undefined {
  const kind = ramFileSystemOf(o.statePath, probe);
  if (kind === undefined || volatileDiskReason(o.diskPath, o.isBlockDevice, probe) !== undefined) return undefined;
  const risk =
    `the state file ${o.statePath} is on ${kind}, which lives in RAM: a power loss or a reboot erases it, ` +
    `while ${o.diskPath} keeps blocks half-moved that only the state can put back together`;
  if (o.allowVolatile) return `${risk} (accepted with --allow-volatile-state)`;
  throw new UserError(
    risk,
    `put --state on a disk-backed file system that is not on ${o.diskPath} (e.g. --state /root/${basename(o.diskPath)}.remap-state; ` +
      `a stopped migration's state may be moved there first), or accept the risk with --allow-volatile-state`,
    2,
  );
}
