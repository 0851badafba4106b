import type { Socket } from 'node:net';
import { setSendBufferSize, unavailableReason } from 'linux-io';
import { socketFd } from './socket-fd.js';

/**
 * What a unix stream socket asks for as its send buffer; the kernel doubles
 * it (to 2 MiB) within net.core.wmem_max. A unix socket starts at
 * net.core.wmem_default (~208 KiB) whatever its listener has, and the kernel
 * says it is writable again only when three quarters of that have drained:
 * one event-loop wake-up then queues ~200 KB, and the reader idles between
 * wake-ups. Measured with nbdcopy -C 1 reading 1 GiB from the source export
 * (2026-12-02): ~0.9–1.4 GB/s at 208 KiB, 1.5–2.0 at 512 KiB, 1.8–2.3 at
 * 2 MiB, not more at 4 MiB; nbdkit 1.4–2.3 in the same minutes. TCP sockets
 * are left alone: the kernel sizes their buffers itself, and setting one
 * turns that off.
 */
export const UNIX_SEND_BUFFER_REQUEST = 1024 * 1024;

/** How a socket's send buffer was set; `bytes` is the kernel's figure. */
export type SendBufferOutcome = { widened: true; bytes: number } | { widened: false; why: string };

/**
 * Widens a connected unix socket's send buffer. Never throws: a socket
 * without the room still works, at the old speed, so the caller only logs
 * the reason.
 */
export function widenUnixSendBuffer(socket: Socket, request = UNIX_SEND_BUFFER_REQUEST): SendBufferOutcome {
  const fd = socketFd(socket);
  if (fd === undefined) return { widened: false, why: 'the socket has no file descriptor (closed, or this Node does not show it)' };
  try {
    // undefined only without the addon.
    const bytes = setSendBufferSize(fd, request);
    return bytes === undefined ? { widened: false, why: `the linux-io addon did not load (${unavailableReason})` } : { widened: true, bytes };
  } catch (err) {
    return { widened: false, why: err instanceof Error ? err.message : String(err) };
  }
}
