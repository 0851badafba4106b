import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import type { Endpoint } from '../server/nbd-server.js';
import { UserError } from './user-error.js';
import { shellQuote } from '../format/shell-quote.js';

export const DEFAULT_PORT = 10809;
export const DEFAULT_HOST = '127.0.0.1';

/** Parses --listen HOST:PORT (also [v6]:PORT, :PORT and bare PORT). */
export function parseListen(text: string): Endpoint {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  const plain = /^([^:]*):(\d+)$/.exec(text);
  const bare = /^(\d+)$/.exec(text);
  const [host, portText] = bracketed
    ? [bracketed[1], bracketed[2]]
    : plain
      ? [plain[1] || DEFAULT_HOST, plain[2]]
      : bare
        ? [DEFAULT_HOST, bare[1]]
        : [undefined, undefined];
  const port = Number(portText);
  if (host === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UserError(`--listen '${text}' is not HOST:PORT`, 'write it like 127.0.0.1:10809 (port 0 picks a free one)', 2);
  }
  return { kind: 'tcp', host, port };
}

/** An address that listens on every interface of the machine. */
export function isWildcard(endpoint: Endpoint): boolean {
  return endpoint.kind === 'tcp' && (endpoint.host === '0.0.0.0' || endpoint.host === '::' || endpoint.host === '');
}

/** A TCP address other machines can reach: not loopback. */
export function isReachableFromElsewhere(endpoint: Endpoint): boolean {
  if (endpoint.kind !== 'tcp') return false;
  const host = endpoint.host;
  return !(host === 'localhost' || host === '::1' || host.startsWith('127.'));
}

/** Where a client on this machine connects to reach `endpoint`: a wildcard is no address to connect to. */
export function localEndpoint(endpoint: Endpoint): Endpoint {
  if (endpoint.kind !== 'tcp' || !isWildcard(endpoint)) return endpoint;
  return { ...endpoint, host: endpoint.host === '::' ? '::1' : '127.0.0.1' };
}

/** This machine's own addresses (not loopback): what a client elsewhere connects to. */
export function externalAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a): a is NonNullable<typeof a> => a !== undefined && !a.internal)
    .map((a) => a.address);
}

/** For a wildcard listen address, which the printed URIs show as loopback: what a client elsewhere connects to. */
export function otherMachinesLine(open: Endpoint, addresses: readonly string[] = externalAddresses()): string {
  const here = localEndpoint(open);
  const port = open.kind === 'tcp' ? open.port : 0;
  const loopback = here.kind === 'tcp' ? here.host : '';
  const there = addresses.length > 0 ? `one of this machine's addresses (${addresses.join(', ')})` : "this machine's address";
  return `listening on every interface (port ${port}): from another machine, connect to ${there} instead of ${loopback}`;
}

/** No client is authenticated (TLS, when required, only encrypts): a port other machines reach is open to all of them. */
export function openPortWarning(open: Endpoint, readOnly: boolean, tlsRequired = false): string {
  const where = isWildcard(open) ? 'every interface' : nbdUri(open, '', tlsRequired).replace(/\/$/, '');
  const port = open.kind === 'tcp' ? open.port : 0;
  const what = `read this disk${readOnly ? '' : ' and write its new layout'}`;
  if (tlsRequired) {
    return `listening on ${where}: the traffic is encrypted (TLS), but anyone who can reach port ${port} can ${what}: clients are not authenticated; keep the port behind a firewall`;
  }
  return `listening on ${where}: anyone who can reach port ${port} can ${what}, and the traffic is not encrypted (--tls-certificates); listen on 127.0.0.1 or a unix socket (--socket), or keep the port behind a firewall`;
}

export function unixEndpoint(path: string): Endpoint {
  return { kind: 'unix', path: resolve(path) };
}

/** The NBD URI of an export (the libnbd/QEMU convention). */
export function nbdUri(endpoint: Endpoint, exportName: string, tls = false): string {
  const scheme = tls ? 'nbds' : 'nbd';
  // Percent-encoded (slashes kept readable): a space or a `&` in the path would break the URI for every client.
  if (endpoint.kind === 'unix') return `${scheme}+unix:///${exportName}?socket=${encodeURIComponent(endpoint.path).replace(/%2F/g, '/')}`;
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${scheme}://${host}:${endpoint.port}/${exportName}`;
}

/**
 * The kernel client's command to attach an export. -t sets the request timeout:
 * past it the kernel fails the request with EIO, so it is set generously. No -b:
 * the kernel reads MBR/GPT sector numbers in logical blocks, so a 4096-byte block
 * size would misplace every partition made for 512-byte sectors.
 */
export function nbdClientCommand(endpoint: Endpoint, exportName: string, device: string, tls?: { caCertFile: string }): string {
  // -x: STARTTLS, checking the server's certificate against the CA's.
  const secure = tls === undefined ? '' : ` -x -A ${shellQuote(tls.caCertFile)}`;
  if (endpoint.kind === 'unix') return `nbd-client -N ${exportName} -u ${shellQuote(endpoint.path)} ${device} -t 60${secure}`;
  return `nbd-client -N ${exportName} ${endpoint.host} ${endpoint.port} ${device} -t 60${secure}`;
}
