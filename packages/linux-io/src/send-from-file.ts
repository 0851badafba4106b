import { addon } from './addon.js';

/** sendfile replies are offered by this build (the addon loaded); the kernel may still refuse them (ENOSYS before Linux 6.5). */
export const canSendFromFile: boolean = !(addon instanceof Error);

/**
 * Writes `header`, then `length` bytes of `fileFd` from `position`, to a
 * non-blocking stream socket without copying the data through this process
 * (sendfile: the socket takes references to the page cache's pages). Sends
 * nothing and returns -1 unless every page of the range is cached, so it
 * never waits for the device. Otherwise returns the bytes written, header
 * first: fewer than header.length + length when the socket's buffer filled,
 * and the caller writes the rest its own way.
 *
 * The socket holds the pages, not copies of them, until the peer reads them:
 * a write to those bytes of the file before then reaches the peer too.
 *
 * Throws what cachestat, send or sendfile report, with `code`: ENOSYS (no
 * cachestat: Linux before 6.5), EINVAL (a file that cannot be spliced),
 * EPIPE or ECONNRESET (the peer is gone). An error of sendfile itself
 * carries `written`: the header went before it (see writtenBefore). Throws
 * Error when the addon is missing (check canSendFromFile).
 */
export function sendFromFile(socketFd: number, header: Uint8Array, fileFd: number, position: number, length: number): number {
  if (addon instanceof Error) throw addon;
  if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`position out of range: ${position}`);
  if (!Number.isSafeInteger(length) || length <= 0) throw new RangeError(`length out of range: ${length}`);
  return addon.sendFromFile(socketFd, header, fileFd, position, length);
}

/** Bytes sendFromFile wrote before it threw `err`: 0 unless the header went first. */
export function writtenBefore(err: unknown): number {
  const written = (err as { written?: unknown } | null)?.written;
  return typeof written === 'number' ? written : 0;
}
