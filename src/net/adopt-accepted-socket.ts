import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';

/** What Node 20's Pipe and TCP handles offer that the move relies on. */
interface StreamHandle {
  readStart(): number;
  readStop(): number;
  useUserBuffer(buffer: Uint8Array): void;
}

/** The Socket constructor's options as Node reads them: `handle` wraps an open handle, `onread` picks each recv's memory. */
interface AdoptingSocketOptions extends SocketConstructorOpts {
  handle: StreamHandle;
  onread: OnReadOpts;
}

function isStreamHandle(value: unknown): value is StreamHandle {
  if (typeof value !== 'object' || value === null) return false;
  const h = value as Record<string, unknown>;
  return typeof h['readStart'] === 'function' && typeof h['readStop'] === 'function' && typeof h['useUserBuffer'] === 'function';
}

/**
 * Node lets the reader choose the memory of each recv (`onread`) only on
 * sockets it creates to connect, not on those a server accepts; without it,
 * every recv lands in a fresh 64 KiB buffer and a 1 MiB WRITE payload is
 * gathered from sixteen of them (measured: ~40% of the server's CPU per GiB
 * received, and most of its garbage collection). This moves an accepted
 * socket's handle into a new Socket that has `onread`.
 *
 * It relies on Node internals (the `_handle` property and the Socket
 * constructor's `handle` option, both unchanged since Node 12), so it checks
 * for them and returns undefined when they are missing: the caller then keeps
 * the accepted socket and its 'data' events. The server must be created with
 * `pauseOnConnect: true`, so that nothing is read before the move. The
 * accepted socket is left without a handle and destroyed, which closes
 * nothing and keeps the net.Server's connection count right.
 */
export function adoptAcceptedSocket(accepted: Socket, onread: OnReadOpts): Socket | undefined {
  const shell = accepted as unknown as { _handle: unknown };
  const handle = shell._handle;
  if (!isStreamHandle(handle) || accepted.destroyed) return undefined;
  shell._handle = null;
  const options: AdoptingSocketOptions = { handle, onread, readable: true, writable: true };
  const socket = new Socket(options);
  accepted.destroy();
  return socket;
}
