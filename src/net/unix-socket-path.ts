/**
 * A unix socket's address holds at most 108 bytes of path, the terminating
 * NUL included. Node (libuv) cuts a longer path short without an error: a
 * server would listen, and a client connect, at another path than the one
 * named — even an existing socket of someone else. So a path that does not
 * fit is refused before anything binds, connects or removes a stale socket.
 */
const MAX_UNIX_SOCKET_PATH_BYTES = 107;

/** Why `path` cannot be a unix socket's address, or undefined when it fits. */
export function unixSocketPathTooLong(path: string): string | undefined {
  const bytes = Buffer.byteLength(path);
  if (bytes <= MAX_UNIX_SOCKET_PATH_BYTES) return undefined;
  return `the unix socket path ${path} is ${bytes} bytes long; a socket address holds at most ${MAX_UNIX_SOCKET_PATH_BYTES}, and a longer path would be cut short to another one`;
}
