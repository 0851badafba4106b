import { readdirSync, readFileSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loopBackingFile, sysfsBlockDevice } from './sysfs-block-device.js';

/** A loop device whose backing file is the one asked about; `mountedAt` lists where it or a partition of it is mounted. */
export interface LoopAttachment {
  device: string;
  readOnly: boolean;
  mountedAt: string[];
}

/**
 * The loop devices backed by the file with this device and inode number,
 * found through sysfs (`/sys/block/loopN/loop/backing_file`, a path as the
 * kernel resolved it at attach time). A backing file deleted or moved since
 * cannot be matched by path and is not found; neither is one attached in
 * another mount namespace under a path this one does not share. The backing
 * files are looked at on the thread pool: any of them may sit on a file
 * system that hangs (a dead NFS server), which must not stop the event loop
 * of a server that looks while it serves. sysfs and procfs are read in place.
 */
export async function loopAttachmentsOf(file: { dev: number; ino: number }, sysBlock = '/sys/block', mountInfo = '/proc/self/mountinfo'): Promise<LoopAttachment[]> {
  let names: string[];
  try {
    names = readdirSync(sysBlock).filter((n) => n.startsWith('loop'));
  } catch {
    return []; // no sysfs: nothing to find
  }
  const found: LoopAttachment[] = [];
  let mounts: string[] | undefined;
  for (const name of names) {
    const path = loopBackingFile(join(sysBlock, name));
    if (path === undefined) continue; // not attached
    let same = false;
    try {
      const s = await stat(path);
      same = s.dev === file.dev && s.ino === file.ino;
    } catch {
      // Gone or unreachable from here: not provably ours.
    }
    if (!same) continue;
    found.push({
      device: `/dev/${name}`,
      readOnly: readIfPresent(join(sysBlock, name, 'ro')) === '1',
      mountedAt: mountPointsOf(name, sysBlock, (mounts ??= (readIfPresent(mountInfo) ?? '').split('\n'))),
    });
  }
  return found;
}

/** Where the block device `name` or one of its partitions is mounted, from mountinfo's major:minor column. */
function mountPointsOf(name: string, sysBlock: string, mountInfoLines: readonly string[]): string[] {
  const numbers = new Set<string>();
  const own = readIfPresent(join(sysBlock, name, 'dev'));
  if (own) numbers.add(own);
  try {
    for (const entry of readdirSync(join(sysBlock, name))) {
      if (!entry.startsWith(name)) continue; // partitions are named loop0p1 …
      const partition = readIfPresent(join(sysBlock, name, entry, 'dev'));
      if (partition) numbers.add(partition);
    }
  } catch {
    // The device went away while we looked.
  }
  const points: string[] = [];
  for (const line of mountInfoLines) {
    const fields = line.split(' ');
    if (fields.length > 4 && numbers.has(fields[2])) points.push(unescapeMountPath(fields[4]));
  }
  return points;
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The loop devices that expose the data of the disk `stats` describes, other
 * than the disk itself: those on an image file, or, for a loop device (or a
 * partition of one), those on its backing file — named then, since the person
 * knows the disk by the device.
 */
export async function otherLoopAttachments(stats: Stats): Promise<{ attachments: LoopAttachment[]; backingFile?: string } | undefined> {
  if (stats.isFile()) {
    const attachments = await loopAttachmentsOf(stats);
    return attachments.length > 0 ? { attachments } : undefined;
  }
  if (!stats.isBlockDevice()) return undefined;
  const device = sysfsBlockDevice(stats.rdev);
  if (device?.backingFile === undefined) return undefined;
  const { backingFile } = device;
  let backing: Stats;
  try {
    backing = await stat(backingFile);
  } catch {
    return undefined; // deleted or out of this mount namespace: nothing else can be found by it
  }
  const attachments = (await loopAttachmentsOf(backing)).filter((a) => a.device !== `/dev/${device.wholeDevice}`);
  return attachments.length > 0 ? { attachments, backingFile } : undefined;
}
