import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface BlockDeviceInfo {
  /** The kernel's name (sysfs), e.g. sdb, sdb1, nbd0p1, loop3. */
  name: string;
  /** The whole device a partition is part of (sdb for sdb1), or `name` itself. */
  wholeDevice: string;
  /** A loop device's backing file — for a partition of one, its loop device's — as the kernel resolved it when it was attached. */
  backingFile?: string;
}

/** The sysfs view of the block device numbered `dev` (a glibc dev_t: `st_dev` of a file, `st_rdev` of a device node). */
export function sysfsBlockDevice(dev: number, sysfs = '/sys'): BlockDeviceInfo | undefined {
  // glibc's dev_t: major in bits 8–19 and 44–63, minor in bits 0–7 and 20–43.
  const major = (Math.floor(dev / 2 ** 8) % 2 ** 12) + (Math.floor(dev / 2 ** 44) % 2 ** 20) * 2 ** 12;
  const minor = (dev % 2 ** 8) + (Math.floor(dev / 2 ** 20) % 2 ** 24) * 2 ** 8;
  let sys: string;
  try {
    sys = realpathSync(`${sysfs}/dev/block/${major}:${minor}`);
  } catch {
    return undefined; // not a block device (tmpfs, overlayfs, NFS …)
  }
  // A partition's sysfs directory sits inside its whole device's.
  const whole = existsSync(`${sys}/partition`) ? dirname(sys) : sys;
  return { name: basename(sys), wholeDevice: basename(whole), backingFile: loopBackingFile(whole) };
}

/**
 * The backing file of the loop device whose sysfs directory is `deviceDir`,
 * or undefined when it is not an attached loop device. The kernel marks a
 * file deleted since with " (deleted)"; the path without the mark is given.
 */
export function loopBackingFile(deviceDir: string): string | undefined {
  try {
    return readFileSync(`${deviceDir}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '');
  } catch {
    return undefined; // not a loop device, or not attached
  }
}
