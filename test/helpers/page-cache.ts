import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync } from 'node:fs';

/** Bytes of `path` in the page cache, as util-linux's fincore counts them. */
export function residentBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

/**
 * Drops `path` from the page cache: written back first, then dd's nocache
 * (posix_fadvise DONTNEED). DONTNEED skips pages it finds busy (writeback
 * just done, another CPU's LRU batch), so it is asked again, a bounded number
 * of times, until fincore sees none. Needs a file system with a page cache to
 * drop: not a tmpfs.
 */
export function evictFromPageCache(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
    if (residentBytes(path) === 0) return;
  }
  throw new Error(`${path} stays in the page cache (${residentBytes(path)} bytes) after 20 evictions`);
}
