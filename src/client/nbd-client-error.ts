/**
 * What went wrong with the connection itself (as opposed to one request,
 * which fails with the server's NbdError). The CLI prints `message` and `fix`.
 *
 * - connect:      no socket could be opened
 * - handshake:    the server refused or could not be negotiated with
 * - timeout:      the handshake did not finish in time
 * - protocol:     the server broke the wire format; the connection was dropped
 * - disconnected: the connection ended while requests were in flight
 * - closed:       a request was made after close()
 * - unsupported:  the export did not negotiate what the request needs
 */
export type NbdClientErrorKind = 'connect' | 'handshake' | 'timeout' | 'protocol' | 'disconnected' | 'closed' | 'unsupported';

export class NbdClientError extends Error {
  override readonly name = 'NbdClientError';

  constructor(
    readonly kind: NbdClientErrorKind,
    message: string,
    readonly fix: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
