/**
 * Host-side fixtures for the kernel migration scenarios (test/vm/migration.test.ts):
 * a tree of files with known checksums, an "old" disk image (MBR + one ext4
 * partition holding the tree) made from files only (mke2fs -d, sfdisk on the
 * image, dd into place: no loop devices, no mounts), map files, and the host's
 * checks of the migrated image (GPT, e2fsck, xfs_repair, debugfs rdump).
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { mustRun, runTool } from '../helpers/run-tool.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
const SECTOR = 512;

export interface FileTree {
  /** Directory on the host that holds the tree: one subdirectory per part. */
  root: string;
  /** Per part (subdirectory name): relative path ("./x/y") → sha256 of every regular file. */
  manifests: Record<string, Map<string, string>>;
  /** Bytes of regular-file data per part. */
  bytes: Record<string, number>;
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/**
 * Writes a tree of files under root/<part>/ for each part: a few large random
 * files, many small ones in nested directories, an all-zero file (older kernels
 * zero with plain writes; the remapper holds those as extents), an empty file
 * and a symlink. Sizes are drawn at random; the total per part is about `bytes`.
 */
export function makeFileTree(root: string, parts: Record<string, number>): FileTree {
  const manifests: Record<string, Map<string, string>> = {};
  const bytes: Record<string, number> = {};
  for (const [part, target] of Object.entries(parts)) {
    const base = join(root, part);
    mkdirSync(base, { recursive: true });
    let written = 0;
    let n = 0;
    const put = (rel: string, data: Buffer): void => {
      const path = join(base, rel);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, data);
      written += data.length;
    };
    put('empty', Buffer.alloc(0));
    put('zeros.bin', Buffer.alloc(2 * MiB));
    // Large files: a third of the volume, 4–12 MiB each.
    while (written < target / 3) {
      put(`big/file-${n++}.bin`, randomBytes(Math.min(target / 3 - written + 4096, (4 + Math.floor(Math.random() * 9)) * MiB)));
    }
    // Medium files: another third, 64 KiB–1 MiB, odd lengths.
    while (written < (2 * target) / 3) {
      put(`medium/d${n % 7}/f-${n++}.dat`, randomBytes(64 * KiB + Math.floor(Math.random() * (960 * KiB))));
    }
    // Small files: the rest, 0–48 KiB, in a deeper tree.
    while (written < target) {
      put(`small/${n % 5}/${n % 11}/s-${n++}.txt`, randomBytes(Math.floor(Math.random() * 48 * KiB)));
    }
    symlinkSync('zeros.bin', join(base, 'link-to-zeros'));
    manifests[part] = manifestOf(base);
    bytes[part] = written;
  }
  return { root, manifests, bytes };
}

/** sha256 of every regular file under dir, keyed "./relative/path" (sha256sum -c's format). */
export function manifestOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.set(`./${relative(dir, p)}`, sha256(readFileSync(p)));
    }
  };
  walk(dir);
  return out;
}

/** The manifest as `sha256sum -c` input. */
export function manifestText(manifest: Map<string, string>): string {
  return [...manifest].map(([path, sum]) => `${sum}  ${path}\n`).join('');
}

export interface OldDisk {
  path: string;
  size: number;
  partStart: number;
  partSize: number;
}

/**
 * A sparse image of `size` bytes with an MBR and one ext4 partition at
 * partStart holding `contentDir` (mke2fs -d), all built as files.
 */
export async function buildOldDisk(path: string, scratch: string, opts: { size: number; partStart: number; partSize: number; contentDir: string }): Promise<OldDisk> {
  const { size, partStart, partSize, contentDir } = opts;
  const part = join(scratch, 'old-part.img');
  await mustRun('truncate', ['-s', String(size), path]);
  await mustRun('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', path], {
    input: `label: dos\nstart=${partStart / SECTOR}, size=${partSize / SECTOR}, type=83\n`,
  });
  await mustRun('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-L', 'oldroot', '-d', contentDir, '-E', 'root_owner=0:0', part, `${partSize / 1024}k`]);
  await mustRun('dd', [`if=${part}`, `of=${path}`, 'bs=1M', `seek=${partStart / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  await mustRun('rm', ['-f', part]);
  return { path, size, partStart, partSize };
}

export interface MapExtent {
  destOffset: number;
  length: number;
  diskOffset: number;
}

/** A rotation of the whole disk by `shift` bytes: destination byte d lives at disk byte (d + shift) mod size. */
export function rotationMap(size: number, shift: number): MapExtent[] {
  if (shift === 0) return [{ destOffset: 0, length: size, diskOffset: 0 }];
  return [
    { destOffset: 0, length: size - shift, diskOffset: shift },
    { destOffset: size - shift, length: shift, diskOffset: 0 },
  ];
}

export function writeMap(path: string, extents: readonly MapExtent[]): void {
  writeFileSync(path, JSON.stringify({ extents }, null, 2));
}

export interface GptPartition {
  start: number;
  size: number;
  type: string;
  name?: string;
}

/** Partition table of an image as sfdisk --json reads it, in bytes. */
export async function readPartitionTable(image: string): Promise<{ label: string; partitions: GptPartition[] }> {
  const json = JSON.parse(await mustRun('sfdisk', ['--json', image])) as {
    partitiontable: { label: string; sectorsize?: number; partitions: { start: number; size: number; type: string; name?: string }[] };
  };
  const sector = json.partitiontable.sectorsize ?? SECTOR;
  return {
    label: json.partitiontable.label,
    partitions: json.partitiontable.partitions.map((p) => ({ start: p.start * sector, size: p.size * sector, type: p.type, name: p.name })),
  };
}

/** Copies [offset, offset+length) of an image into its own (sparse) file, for tools that take a filesystem image. */
export async function extractRange(image: string, offset: number, length: number, out: string): Promise<void> {
  if (offset % MiB || length % MiB) {
    await mustRun('dd', [`if=${image}`, `of=${out}`, 'bs=512', `skip=${offset / SECTOR}`, `count=${length / SECTOR}`, 'conv=sparse', 'status=none']);
  } else {
    await mustRun('dd', [`if=${image}`, `of=${out}`, 'bs=1M', `skip=${offset / MiB}`, `count=${length / MiB}`, 'conv=sparse', 'status=none']);
  }
}

/** e2fsck -fn on an ext4 image; returns its output (throws unless clean). */
export async function ext4Clean(image: string): Promise<string> {
  const r = await runTool('e2fsck', ['-fn', image], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`e2fsck -fn ${image} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

/** xfs_repair -n on an xfs image file; returns its output (throws unless clean). */
export async function xfsClean(image: string): Promise<string> {
  const r = await runTool('xfs_repair', ['-n', '-f', image], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`xfs_repair -n -f ${image} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

/** Dumps an ext4 image's tree with debugfs rdump and returns its manifest (no mounts). */
export async function ext4Manifest(image: string, dir: string, scratch: string): Promise<Map<string, string>> {
  const out = join(scratch, `rdump-${Date.now()}-${Math.floor(Math.random() * 1e6)}`);
  mkdirSync(out, { recursive: true });
  const r = await runTool('debugfs', ['-R', `rdump ${dir} ${out}`, image], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`debugfs rdump ${dir} exited ${r.code}:\n${r.stderr}`);
  const top = readdirSync(out);
  if (top.length !== 1) throw new Error(`debugfs rdump ${dir} produced ${JSON.stringify(top)}:\n${r.stderr}`);
  const manifest = manifestOf(join(out, top[0]));
  // lost+found is the filesystem's, not the copy's.
  for (const key of [...manifest.keys()]) if (key.startsWith('./lost+found/')) manifest.delete(key);
  return manifest;
}

/**
 * Writes what `destination` shows of an image under a map (extent by extent),
 * sparse where the image reads zeroes: after finish, the image under the map is the
 * new layout, so a rotated disk is un-rotated into an ordinary partitioned image.
 */
export function destinationViewOf(image: string, extents: readonly MapExtent[], out: string): void {
  const chunk = 4 * MiB;
  const buf = Buffer.alloc(chunk);
  const inFd = openSync(image, 'r');
  const outFd = openSync(out, 'w');
  try {
    const size = extents.reduce((sum, e) => sum + e.length, 0);
    ftruncateSync(outFd, size);
    for (const e of extents) {
      for (let done = 0; done < e.length; done += chunk) {
        const n = Math.min(chunk, e.length - done);
        const got = readSync(inFd, buf, 0, n, e.diskOffset + done);
        if (got !== n) throw new Error(`short read of ${image} at ${e.diskOffset + done}`);
        const piece = buf.subarray(0, n);
        if (piece.some((b) => b !== 0)) writeSync(outFd, piece, 0, n, e.destOffset + done);
      }
    }
  } finally {
    closeSync(inFd);
    closeSync(outFd);
  }
}
