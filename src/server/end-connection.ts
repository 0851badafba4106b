import type { Socket } from 'node:net';

/** How long a client may take to close its side after the server has ended the connection. */
export const CLOSE_GRACE_MS = 2000;

/**
 * Ends the server's side of `socket` (what was written still goes out) and
 * destroys it if the client has not closed its side within `graceMs`. A
 * client that keeps a half-closed connection open (after NBD_OPT_ABORT, a
 * refused handshake, NBD_CMD_DISC or a shutdown) would otherwise hold its
 * place among the capped connections for good (G8). `onCutOff` runs when the
 * grace ran out.
 */
export function endConnection(socket: Socket, graceMs: number, onCutOff?: () => void): void {
  if (socket.destroyed) return;
  socket.end();
  const cutOff = setTimeout(() => {
    onCutOff?.();
    socket.destroy();
  }, graceMs);
  socket.once('close', () => clearTimeout(cutOff));
}
