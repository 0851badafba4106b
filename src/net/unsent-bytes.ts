import type { Socket } from 'node:net';
import { sendQueueBytes } from 'linux-io';
import { socketFd } from './socket-fd.js';

/**
 * Bytes written that the peer has not taken yet: what libuv still holds of
 * the write in progress, plus what sits in the kernel's send buffer. Falls as
 * a slow client reads a large reply, where the write's completion — the only
 * public sign — comes once it has read all of it. The kernel's part matters
 * once the buffer is large (src/net/unix-send-buffer.ts): the kernel takes
 * more from libuv only after three quarters of it have drained, which a slow
 * reader of a 2 MiB buffer takes long to do. Node internals
 * (`_handle.writeQueueSize`, present since Node 0.x): undefined where they
 * are missing, and callers then go by completions alone; without the addon
 * the kernel's part is left out.
 */
export function unsentBytes(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
  const size = handle?.writeQueueSize;
  if (typeof size !== 'number') return undefined;
  return size + (kernelQueue(socket) ?? 0);
}

function kernelQueue(socket: Socket): number | undefined {
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  try {
    return sendQueueBytes(fd);
  } catch {
    // Closed between the look and the call: nothing queued any more.
    return undefined;
  }
}
