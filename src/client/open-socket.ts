import net from 'node:net';
import { NbdClientError } from './nbd-client-error.js';
import { describeTransport, type NbdTarget } from './nbd-uri.js';

const START_SERVER = 'start the server (`nbd-remapper serve --disk DISK --socket PATH`, or the NBD server you meant) or correct the URI';

/**
 * Starts connecting to the socket a target names, receiving through `onread`
 * (so the receiver picks the memory each recv lands in). `connected` rejects
 * with an error that says what is missing and how to fix it, or — when the
 * socket is destroyed while connecting (a timeout) — with `onAbandoned()`.
 */
export function openSocket(target: NbdTarget, onread: net.OnReadOpts, onAbandoned: () => Error): { socket: net.Socket; connected: Promise<void> } {
  const { transport } = target;
  const socket = transport.kind === 'unix' ? net.connect({ path: transport.path, onread }) : net.connect({ host: transport.host, port: transport.port, onread });
  const connected = new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      socket.destroy();
      reject(connectError(target, err));
    };
    const onClose = (): void => reject(onAbandoned());
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('connect', () => {
      socket.off('error', onError);
      socket.off('close', onClose);
      // Requests are small and latency-bound; Nagle would hold a request header back waiting for more.
      if (transport.kind === 'tcp') socket.setNoDelay(true);
      resolve();
    });
  });
  return { socket, connected };
}

function connectError(target: NbdTarget, err: NodeJS.ErrnoException): NbdClientError {
  const where = describeTransport(target.transport);
  const cause = { cause: err };
  switch (err.code) {
    case 'ENOENT':
      return new NbdClientError('connect', `no NBD server at ${target.uri}: the ${where} does not exist`, START_SERVER, cause);
    case 'ECONNREFUSED':
      return new NbdClientError(
        'connect',
        target.transport.kind === 'unix'
          ? `no NBD server at ${target.uri}: nothing listens on the ${where} (a server that stopped may have left it behind)`
          : `no NBD server at ${target.uri}: nothing listens on ${where}`,
        START_SERVER,
        cause,
      );
    case 'EACCES':
    case 'EPERM':
      return new NbdClientError('connect', `no permission to connect to ${where} (${target.uri})`, 'run as the user that started the server (often root), or fix the socket\'s permissions', cause);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new NbdClientError('connect', `cannot resolve the host in ${target.uri}`, 'check the host name, or use an address such as 127.0.0.1', cause);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new NbdClientError('connect', `cannot reach ${where} (${target.uri}): ${err.code}`, 'check the address, the network and any firewall between here and the server', cause);
    default:
      return new NbdClientError('connect', `cannot connect to ${target.uri}: ${err.message}`, START_SERVER, cause);
  }
}
