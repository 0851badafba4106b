import { shellQuote } from '../format/shell-quote.js';
import type { LoopAttachment } from './loop-attachments.js';

/**
 * Why a disk could not be opened or used, said for a person: `message` names
 * the path and the cause, `fix` says what to do. The CLI prints both and no
 * stack trace, so the text has to stand on its own.
 */
export class DiskError extends Error {
  override readonly name: string = 'DiskError';
  constructor(
    message: string,
    readonly path: string,
    readonly fix: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class DiskNotFoundError extends DiskError {
  override readonly name = 'DiskNotFoundError';
}

export class DiskPermissionError extends DiskError {
  override readonly name = 'DiskPermissionError';
}

export class DiskLockedError extends DiskError {
  override readonly name = 'DiskLockedError';
}

/** An image file that a loop device also exposes: the kernel could write it (a mount) behind the server's back. */
export class DiskAttachedError extends DiskError {
  override readonly name = 'DiskAttachedError';
}

export class DiskNotUsableError extends DiskError {
  override readonly name = 'DiskNotUsableError';
}

/** A request reached the disk after close() began: a bug in the caller, never the user's doing. */
export class DiskClosedError extends DiskError {
  override readonly name = 'DiskClosedError';
  constructor(path: string) {
    super(`the disk ${path} is closed`, path, 'this is a bug in nbd-remapper (a request ran after shutdown began); please report it');
  }
}

/** A write reached a disk opened read-only: the layers above should have refused it with their own error. */
export class DiskReadOnlyError extends DiskError {
  override readonly name = 'DiskReadOnlyError';
  readonly code = 'EROFS';
  constructor(path: string) {
    super(`the disk ${path} was opened read-only; a write cannot go through`, path, 'serve the disk without --read-only to allow writes');
  }
}

/** The image file ends before the size it had when it was opened: something truncated or replaced it while it was served. */
export class DiskShrunkError extends DiskError {
  override readonly name = 'DiskShrunkError';
  readonly code = 'EIO';
  constructor(path: string, openedSize: number, endsAt: number) {
    super(
      `the disk ${path} ends at or before byte ${endsAt}, but it had ${openedSize} bytes when it was opened: something truncated or replaced it while it was served`,
      path,
      'stop the server and find what changed the image: nothing else may write to a disk nbd-remapper serves; restore it from a copy if it was cut short',
    );
  }
}

/**
 * A positional write that the kernel accepted with zero bytes for a non-empty
 * request. Retrying would spin forever, so it fails with the errno a client
 * understands as a media error.
 */
export class DiskNoProgressError extends Error {
  override readonly name = 'DiskNoProgressError';
  readonly code = 'EIO';
  constructor(position: number, length: number) {
    super(`a write of ${length} bytes at offset ${position} made no progress`);
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An image file opened for writing that loop devices expose (loopAttachmentsOf): the person must detach them first. */
export function loopAttachedError(path: string, attachments: readonly LoopAttachment[], backingFile?: string): DiskAttachedError {
  const described = attachments
    .map((a) => `${a.device}${a.readOnly ? ' (read-only)' : ''}${a.mountedAt.length > 0 ? `, mounted at ${a.mountedAt.join(', ')}` : ''}`)
    .join('; ');
  const mounts = attachments.flatMap((a) => a.mountedAt);
  const steps = [
    ...(mounts.length > 0 ? [`unmount it (${mounts.map((m) => `umount ${shellQuote(m)}`).join('; ')})`] : []),
    `detach it (${attachments.map((a) => `losetup -d ${a.device}`).join('; ')})`,
  ];
  const many = attachments.length > 1;
  // An image names itself; a loop device names the image behind it, which the other devices share.
  const subject = backingFile === undefined ? `the image ${path} is` : `the loop device ${path} serves the image ${backingFile}, which is`;
  const as = backingFile === undefined ? (many ? 'loop devices' : 'a loop device') : many ? 'other loop devices' : 'another loop device';
  const orServeTheDevice =
    backingFile === undefined ? ` Or serve the loop device itself (--disk ${many ? '/dev/loopN' : attachments[0].device}), which the server claims exclusively` : '';
  return new DiskAttachedError(
    `${subject} also attached as ${as}: ${described}. Through it the kernel can write the image behind the server's back, and a filesystem read through it bypasses the source export (its reads release nothing, and after blocks move it reads the new layout)`,
    path,
    `${steps.join(', then ')}, and start again; the old filesystems are mounted from the source export, never from the image.${orServeTheDevice}`,
  );
}

/** Turns the failure of stat/open/flock on `path` into the error a person can act on. */
export function diskOpenError(path: string, err: unknown, readOnly: boolean, exclusive = false): DiskError {
  const code = errnoCode(err);
  if (code === 'EBUSY' && exclusive) {
    return new DiskLockedError(
      `the disk ${path} is in use (EBUSY): a filesystem on it or on one of its partitions is mounted, or another program holds it exclusively (another nbd-remapper, LVM, RAID, swap, mkfs)`,
      path,
      `see what holds it with "findmnt -S ${shellQuote(path)}", "lsblk ${shellQuote(path)}" and "fuser -v ${shellQuote(path)}"; unmount it (the old filesystems are mounted from the source export, never from the disk itself) or stop that program, then start again`,
      { cause: err },
    );
  }
  const mode = readOnly ? 'reading' : 'reading and writing';
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new DiskNotFoundError(
        `the disk ${path} does not exist (${code})`,
        path,
        'check the path; an image file must be created first (e.g. truncate -s 1G disk.img), a block device must be attached (lsblk lists them)',
        { cause: err },
      );
    case 'EACCES':
    case 'EPERM':
      return new DiskPermissionError(
        `permission denied opening the disk ${path} for ${mode} (${code})`,
        path,
        `run as root (sudo), or give this user ${readOnly ? 'read' : 'read and write'} access to it (ls -l ${shellQuote(path)}; block devices usually need the "disk" group)`,
        { cause: err },
      );
    case 'EROFS':
      return new DiskPermissionError(
        `permission denied opening the disk ${path} for writing: it is on a read-only filesystem or is a write-protected device (${code})`,
        path,
        'serve it read-only (--read-only), or remount the filesystem read-write / remove the write protection',
        { cause: err },
      );
    case 'EAGAIN':
    case 'EWOULDBLOCK':
      return new DiskLockedError(
        `the disk ${path} is locked: it is in use by another nbd-remapper (or another program holding a flock on it)`,
        path,
        `find that process with "fuser -v ${shellQuote(path)}" or "lsof ${shellQuote(path)}", stop it, then try again`,
        { cause: err },
      );
    case 'EISDIR':
      return notUsable(path, 'is a directory', err);
    case 'ENXIO':
    case 'ENODEV':
    case 'ENOMEDIUM':
      return notUsable(path, `is a device node with no device or medium behind it (${code})`, err);
    case 'EBUSY':
      return new DiskError(
        `the disk ${path} is busy (${code}): the kernel is using it exclusively`,
        path,
        'unmount its filesystems and stop whatever holds it (RAID, LVM, swap); lsblk and fuser -v show the users',
        { cause: err },
      );
    default: {
      const detail = err instanceof Error ? err.message : String(err);
      return new DiskError(`cannot open the disk ${path}: ${detail}`, path, 'check that the path names an image file or a block device you can open', {
        cause: err,
      });
    }
  }
}

export function notUsable(path: string, why: string, cause?: unknown): DiskNotUsableError {
  return new DiskNotUsableError(
    `the disk ${path} cannot be served: it ${why}`,
    path,
    'give an image file of non-zero size (e.g. truncate -s 1G disk.img) or a block device such as /dev/sdb',
    cause === undefined ? undefined : { cause },
  );
}
