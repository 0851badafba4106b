import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';

const BY_ID = '/dev/disk/by-id';

/**
 * A key for the disk that outlasts its path: an image file's device and
 * inode (a rename or another path to it is the same disk), a block device's
 * /dev/disk/by-id name (sdb may be sdc after a reboot; its serial stays), or
 * its device number when it has none. With it, for an image, when the file
 * was created (its birth time, where the file system keeps one): a migration
 * listed before that cannot be this file's — the inode it was listed under
 * was freed and reused for a new file (DiskMigrations).
 */
export async function diskIdentity(diskPath: string): Promise<{ key: string; bornAt?: number }> {
  const st = await stat(diskPath);
  if (!st.isBlockDevice()) return { key: `file:${st.dev}:${st.ino}`, bornAt: st.birthtimeMs > 0 ? st.birthtimeMs : undefined };
  const target = await realpath(diskPath);
  const names = await readdir(BY_ID).catch(() => [] as string[]);
  const matching: string[] = [];
  for (const name of names) {
    if ((await realpath(join(BY_ID, name)).catch(() => undefined)) === target) matching.push(name);
  }
  matching.sort();
  return { key: matching.length > 0 ? `block:by-id:${matching[0]}` : `block:rdev:${st.rdev}` };
}
