import type { Endpoint } from './nbd-server.js';

/** Listening failed; `fix` tells the user what to do. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }

  static from(err: NodeJS.ErrnoException, endpoint: Endpoint): ListenError {
    const where = endpoint.kind === 'tcp' ? `${endpoint.host}:${endpoint.port}` : endpoint.path;
    switch (err.code) {
      case 'EADDRINUSE':
        return new ListenError(
          `${where} is already in use`,
          endpoint.kind === 'tcp' ? 'stop the program using that port, or pick another with --listen HOST:PORT' : 'choose another --socket path',
        );
      case 'EACCES':
      case 'EPERM':
        return new ListenError(`no permission to listen on ${where}`, 'use a port above 1023, or a --socket path in a writable directory');
      case 'EADDRNOTAVAIL':
        return new ListenError(`${where}: no such local address`, 'listen on an address of this machine, e.g. 127.0.0.1');
      default:
        return new ListenError(`cannot listen on ${where}: ${err.message}`, 'check the address with --listen/--socket');
    }
  }
}
