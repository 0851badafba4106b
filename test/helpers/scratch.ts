import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, openSync, ftruncateSync, closeSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary directory removed by cleanup(), in the system's temporary directory unless `base` is given. */
export function scratchDir(prefix = 'nbd-remapper-test-', base = tmpdir()): { path: string; file(name: string): string; cleanup(): void } {
  mkdirSync(base, { recursive: true });
  const path = mkdtempSync(join(base, prefix));
  return {
    path,
    file: (name) => join(path, name),
    cleanup: () => rmSync(path, { recursive: true, force: true }),
  };
}

/** A file of random bytes. */
export function randomImage(path: string, size: number): Buffer {
  const data = randomBytes(size);
  writeFileSync(path, data);
  return data;
}

/** A sparse file of `size` bytes with data only in the given [offset, length) pieces (random bytes). */
export function sparseImage(path: string, size: number, pieces: ReadonlyArray<{ offset: number; length: number }>): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const p of pieces) writeSync(fd, randomBytes(p.length), 0, p.length, p.offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * Where most interop tests begin: a scratch directory (removed through
 * `cleanup`) holding `disk.img` of `size` random bytes, and the `serve`
 * arguments for it on a unix socket and control socket beside it.
 */
export function scratchDisk(
  prefix: string,
  size: number,
  cleanup: (fn: () => void) => void,
): { dir: ReturnType<typeof scratchDir>; disk: string; original: Buffer; control: string; serveArgs: string[] } {
  const dir = scratchDir(prefix);
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  const original = randomImage(disk, size);
  const control = dir.file('control.sock');
  return { dir, disk, original, control, serveArgs: ['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', control] };
}
