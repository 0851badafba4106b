import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { canReadWithoutWaiting, readCached } from '../src/index.js';
import { cleanups, evictedFile } from './helpers.js';

const MiB = 1024 * 1024;

it('is offered: npm ci builds the addon', () => {
  expect(canReadWithoutWaiting).toBe(true);
});

it('gives nothing of a range the page cache does not hold, and what it holds once read', () => {
  const { fd, data } = evictedFile(8 * MiB);
  const buffer = Buffer.alloc(MiB);
  expect(readCached(fd, buffer, 0)).toEqual({ bytes: 0, endOfFile: false });
  // A read through the page cache brings the first MiB (and perhaps some readahead) in.
  readSync(fd, Buffer.alloc(MiB), 0, MiB, 0);
  const cached = readCached(fd, buffer, 0);
  expect(cached).toEqual({ bytes: MiB, endOfFile: false });
  expect(buffer.equals(data.subarray(0, MiB))).toBe(true);
  // The last MiB was never read: still not there.
  expect(readCached(fd, Buffer.alloc(MiB), 7 * MiB).bytes).toBe(0);
});

it('says where the file ends: a short count at the end, nothing past it', () => {
  const { fd, data } = evictedFile(MiB + 100);
  readSync(fd, Buffer.alloc(MiB + 100), 0, MiB + 100, 0);
  const tail = Buffer.alloc(4096, 0xee);
  expect(readCached(fd, tail, MiB)).toEqual({ bytes: 100, endOfFile: true });
  expect(tail.subarray(0, 100).equals(data.subarray(MiB))).toBe(true);
  expect(tail[100]).toBe(0xee); // the rest is the caller's to fill
  expect(readCached(fd, Buffer.alloc(10), MiB + 100)).toEqual({ bytes: 0, endOfFile: true });
});

it('names what refuses: EOPNOTSUPP on tmpfs, EBADF on a closed descriptor, RangeError before any call', () => {
  if (existsSync('/dev/shm')) {
    const dir = mkdtempSync('/dev/shm/pread-nowait-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'f.bin');
    writeFileSync(path, Buffer.alloc(4096, 1));
    const fd = openSync(path, 'r');
    cleanups.push(() => closeSync(fd));
    expect(() => readCached(fd, Buffer.alloc(4096), 0)).toThrow(expect.objectContaining({ code: 'EOPNOTSUPP', syscall: 'preadv2', message: expect.stringMatching(/^preadv2\(RWF_NOWAIT\): /) }));
  }
  const { path } = evictedFile(4096);
  const fd = openSync(path, 'r');
  closeSync(fd);
  expect(() => readCached(fd, Buffer.alloc(4096), 0)).toThrow(expect.objectContaining({ code: 'EBADF', errno: 9 }));
  expect(() => readCached(0, Buffer.alloc(1), -1)).toThrow(RangeError);
  expect(() => readCached(0, Buffer.alloc(1), 2 ** 53)).toThrow(RangeError);
});
