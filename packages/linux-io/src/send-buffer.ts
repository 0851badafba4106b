import { addon } from './addon.js';

/** The socket's send buffer as the kernel counts it (twice what was asked), or undefined without the addon. */
export function sendBufferSize(fd: number): number | undefined {
  return addon instanceof Error ? undefined : addon.sendBufferSize(fd);
}

/**
 * Asks for `bytes` of send buffer (the kernel caps the request at
 * net.core.wmem_max, then doubles it) and returns what the kernel gave, or
 * undefined without the addon. Throws what setsockopt reports (EBADF,
 * ENOTSOCK).
 */
export function setSendBufferSize(fd: number, bytes: number): number | undefined {
  if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`not a file descriptor: ${fd}`);
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes > 0x7fffffff) throw new RangeError(`send buffer size out of range: ${bytes}`);
  return addon instanceof Error ? undefined : addon.setSendBufferSize(fd, bytes);
}

/**
 * Bytes written to the socket that its peer has not taken yet (for TCP: not
 * yet acknowledged; the kernel counts its bookkeeping too), or undefined
 * without the addon. Throws what the ioctl reports (EBADF; ENOTTY or EINVAL
 * for what is not a stream socket).
 */
export function sendQueueBytes(fd: number): number | undefined {
  return addon instanceof Error ? undefined : addon.sendQueueBytes(fd);
}
