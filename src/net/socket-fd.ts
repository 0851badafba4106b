import type { Socket } from 'node:net';

/**
 * The file descriptor under a connected socket, for the system calls Node
 * does not make (packages/linux-io). Node internals
 * (`_handle.fd`, present on Unix since Node 0.x): undefined where missing or
 * once the socket is closed.
 */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
