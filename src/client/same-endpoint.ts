import { lookup } from 'node:dns/promises';
import { stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { sameServer, type NbdTarget } from './nbd-uri.js';

/** Loopback as the kernel routes it: 127.0.0.0/8, ::1 and IPv4 mapped into IPv6. */
function isLoopback(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return (isIP(v4) === 4 && v4.startsWith('127.')) || address === '::1';
}

async function addressesOf(host: string): Promise<string[]> {
  if (isIP(host) !== 0) return [host];
  return (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
}

/**
 * Whether two targets reach the same server, as far as this machine can
 * tell: unix sockets by the file they name (a relative path, a symlink or
 * another spelling of the same socket is the same), TCP by port and the
 * addresses their hosts resolve to (localhost and 127.0.0.1 are the same).
 * A server reached through two different addresses of its own machine is
 * not recognised.
 */
export async function sameEndpoint(a: NbdTarget, b: NbdTarget): Promise<boolean> {
  if (sameServer(a, b)) return true;
  const x = a.transport;
  const y = b.transport;
  if (x.kind === 'unix' && y.kind === 'unix') {
    const [sx, sy] = await Promise.all([stat(x.path).catch(() => undefined), stat(y.path).catch(() => undefined)]);
    return sx !== undefined && sy !== undefined && sx.dev === sy.dev && sx.ino === sy.ino;
  }
  if (x.kind === 'tcp' && y.kind === 'tcp') {
    if (x.port !== y.port) return false;
    const [ax, ay] = await Promise.all([addressesOf(x.host), addressesOf(y.host)]);
    return ax.some((p) => ay.some((q) => p === q || (isLoopback(p) && isLoopback(q))));
  }
  return false;
}
