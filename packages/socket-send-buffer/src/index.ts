import { createRequire } from 'node:module';

/** The addon's two functions; both throw an Error with `code` and `errno` when the call fails. */
interface SendBufferAddon {
  sendBufferSize(fd: number): number;
  setSendBufferSize(fd: number, bytes: number): number;
  sendQueueBytes(fd: number): number;
}

function isSendBufferAddon(value: unknown): value is SendBufferAddon {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v['sendBufferSize'] === 'function' && typeof v['setSendBufferSize'] === 'function' && typeof v['sendQueueBytes'] === 'function';
}

function load(): SendBufferAddon | Error {
  try {
    const addon: unknown = createRequire(import.meta.url)('../build/Release/socket_send_buffer.node');
    return isSendBufferAddon(addon) ? addon : new Error('socket_send_buffer.node lacks a function: rebuild it (npm ci)');
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

const loaded = load();

/** Why the addon is missing (not built: `npm ci` builds it with node-gyp), or undefined when it loaded. */
export const unavailableReason: string | undefined = loaded instanceof Error ? loaded.message : undefined;

/** The socket's send buffer as the kernel counts it (twice what was asked), or undefined without the addon. */
export function sendBufferSize(fd: number): number | undefined {
  return loaded instanceof Error ? undefined : loaded.sendBufferSize(fd);
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
  return loaded instanceof Error ? undefined : loaded.setSendBufferSize(fd, bytes);
}

/**
 * Bytes written to the socket that its peer has not taken yet (for TCP: not
 * yet acknowledged), or undefined without the addon. Throws what the ioctl
 * reports (EBADF; ENOTTY or EINVAL for what is not a stream socket).
 */
export function sendQueueBytes(fd: number): number | undefined {
  return loaded instanceof Error ? undefined : loaded.sendQueueBytes(fd);
}
