/**
 * Writes a cpio archive in the "newc" format the kernel unpacks as an initramfs.
 * The kernel unpacks concatenated archives one after the other, so a small
 * archive appended to the cached initramfs adds files to the guest without a rebuild.
 */

export interface ArchiveEntry {
  /** Path inside the guest, without a leading slash; parents must come earlier. */
  path: string;
  /** Bytes of a regular file; a directory has none. */
  content?: Uint8Array;
}

const MAGIC = '070701';
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

/** Zero bytes that bring `length` up to a multiple of 4, as newc wants after headers and data. */
function padding(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function header(ino: number, mode: number, fileSize: number, nameSize: number): string {
  const fields = [ino, mode, 0, 0, 1, 0, fileSize, 0, 0, 0, 0, nameSize, 0];
  return MAGIC + fields.map(hex8).join('');
}

export function newcArchive(entries: readonly ArchiveEntry[]): Buffer {
  const parts: Buffer[] = [];
  let length = 0;
  const push = (chunk: Buffer): void => {
    parts.push(chunk);
    length += chunk.length;
  };
  const entry = (ino: number, mode: number, name: string, content: Uint8Array): void => {
    const nameBytes = Buffer.from(`${name}\0`);
    push(Buffer.from(header(ino, mode, content.length, nameBytes.length), 'ascii'));
    push(nameBytes);
    push(padding(length));
    push(Buffer.from(content.buffer, content.byteOffset, content.byteLength));
    push(padding(length));
  };
  entries.forEach((e, i) => {
    if (e.path.startsWith('/') || e.path.split('/').includes('..')) throw new Error(`archive path '${e.path}' must be relative, without '..'`);
    // Inode numbers only need to differ within the archive (the kernel links equal ones).
    entry(i + 1, e.content === undefined ? S_IFDIR | 0o755 : S_IFREG | 0o644, e.path, e.content ?? new Uint8Array(0));
  });
  entry(0, 0, 'TRAILER!!!', new Uint8Array(0));
  return Buffer.concat(parts);
}
