import type { Socket } from 'node:net';

/**
 * Bytes of the write in progress that the kernel has not taken yet (libuv's
 * write queue). Falls as a slow client reads a large reply, where the
 * write's completion — the only public sign — comes once it has read all
 * of it. Node internals (`_handle.writeQueueSize`, present since Node 0.x):
 * undefined where they are missing, and callers then go by completions alone.
 */
export function unsentBytes(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
  const size = handle?.writeQueueSize;
  return typeof size === 'number' ? size : undefined;
}
