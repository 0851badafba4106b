import { Errno, type ErrnoValue } from 'nbd-protocol-ts';

/**
 * The NBD error for a request that failed with an error the export did not
 * type as an NbdError: a system call's failure (Node's `code` and `syscall`)
 * keeps what it means to the client where the spec has a value for it — a
 * full backing file system is ENOSPC (the spec maps EDQUOT and EFBIG there
 * too; QEMU can pause a guest on it, `werror=enospc`, until space is freed).
 * Everything else is EIO, including failures of our own that merely carry an
 * errno name, like a state file that can no longer be written (final, so a
 * client must not be told that freeing space and retrying would help); one
 * that may pass (its file system is full) names its system call, so it is
 * ENOSPC like the rest.
 */
export function nbdErrnoOf(err: unknown): ErrnoValue {
  const failure = err as { code?: unknown; syscall?: unknown } | null;
  if (typeof failure?.code !== 'string' || typeof failure.syscall !== 'string') return Errno.EIO;
  switch (failure.code) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return Errno.ENOSPC;
    case 'ENOMEM':
      return Errno.ENOMEM;
    case 'EROFS':
      return Errno.EPERM;
    default:
      return Errno.EIO;
  }
}
