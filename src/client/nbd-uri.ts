import { unixSocketPathTooLong } from '../net/unix-socket-path.js';

/**
 * NBD URIs as libnbd and QEMU write them (the NBD project's doc/uri.md):
 *
 *   nbd://HOST[:PORT]/[EXPORT]           TCP, port 10809 unless given
 *   nbd+unix:///[EXPORT]?socket=PATH     unix socket
 *   nbds://…, nbds+unix://…              the same with TLS (NBD_OPT_STARTTLS);
 *                                        ?tls-certificates=DIR (DIR/ca-cert.pem,
 *                                        and DIR/client-cert.pem + client-key.pem
 *                                        if there), ?tls-hostname=NAME
 *
 * Parsed by hand rather than with WHATWG URL: URL folds `+` in queries into
 * spaces and normalises `..` in paths, and both would silently change a socket
 * path or an export name.
 */

export const DEFAULT_NBD_PORT = 10809;

/** Export names are protocol strings: at most this many UTF-8 bytes. */
const MAX_EXPORT_NAME_BYTES = 4096;

export type NbdTransport = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** TLS as the URI asks for it (libnbd's parameter names). */
export interface NbdTls {
  /** Directory with ca-cert.pem (else the system's CAs) and optionally client-cert.pem and client-key.pem. */
  certificates?: string;
  /** The name the server's certificate must carry: for TCP the URI's host unless given; for a unix socket none is checked unless given. */
  hostname?: string;
}

export interface NbdTarget {
  /** The URI as the user wrote it, for messages. */
  uri: string;
  transport: NbdTransport;
  /** Decoded; '' is the server's default export. */
  exportName: string;
  /** Present for nbds:// and nbds+unix://. */
  tls?: NbdTls;
}

const TLS_PARAMETERS = ['tls-certificates', 'tls-hostname'];

/** A URI that cannot name an NBD export; `fix` says how to write one. */
export class NbdUriError extends Error {
  override readonly name = 'NbdUriError';
  readonly fix = 'write nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH (nbds:// and nbds+unix:// for TLS), e.g. nbd+unix:///source?socket=/run/nbd-remapper.sock';

  constructor(
    readonly uri: string,
    reason: string,
  ) {
    super(`'${uri}' is not an NBD URI: ${reason}`);
  }
}

const URI_SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?(#.*)?$/;
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const IPV6_LITERAL = /^[0-9A-Fa-f:.]+$/;

export function parseNbdUri(uri: string): NbdTarget {
  const fail = (reason: string): never => {
    throw new NbdUriError(uri, reason);
  };
  const shape = URI_SHAPE.exec(uri);
  if (!shape) fail('it does not have the form SCHEME://…');
  const [, schemeText, authority, path, query, fragment] = shape as RegExpExecArray;
  const scheme = schemeText.toLowerCase();
  if (fragment !== undefined) fail('a #fragment means nothing in an NBD URI');
  if (authority.includes('@')) fail('user names are not supported (remove the part before @)');
  const exportName = decodeExportName(path, fail);
  const params = parseQuery(query, fail);

  const secure = scheme === 'nbds' || scheme === 'nbds+unix';
  const tls = secure ? tlsOf(params) : undefined;
  const understood = (names: string[]): void => {
    for (const key of params.keys()) {
      if (names.includes(key)) continue;
      if (!secure && TLS_PARAMETERS.includes(key)) fail(`${key}= needs TLS: write nbds${scheme.slice(3)}://`);
      fail(names.length === 0 ? `${scheme}:// takes no query parameters (got ${key})` : `unknown query parameter '${key}' (understood: ${names.map((n) => `${n}=`).join(', ')})`);
    }
  };
  switch (scheme) {
    case 'nbd':
    case 'nbds': {
      understood(secure ? TLS_PARAMETERS : []);
      return { uri, transport: parseHostPort(authority, fail, scheme), exportName, ...(tls && { tls }) };
    }
    case 'nbd+unix':
    case 'nbds+unix': {
      if (authority !== '') fail(`${scheme}:// takes no host (got '${authority}'); write three slashes: ${scheme}:///EXPORT?socket=PATH`);
      const socket = params.get('socket');
      understood(secure ? ['socket', ...TLS_PARAMETERS] : ['socket']);
      if (socket === undefined || socket === '') fail(`${scheme}:// needs ?socket=PATH`);
      // A NUL would cut the path short where the kernel reads it (or, first, make it an abstract socket).
      if ((socket as string).includes('\0')) fail(`?socket= must not contain a NUL byte (%00)`);
      const tooLong = unixSocketPathTooLong(socket as string);
      if (tooLong !== undefined) fail(tooLong);
      return { uri, transport: { kind: 'unix', path: socket as string }, exportName, ...(tls && { tls }) };
    }
    default:
      return fail(`unknown scheme '${schemeText}' (expected nbd, nbd+unix, nbds or nbds+unix)`);
  }
}

function tlsOf(params: Map<string, string>): NbdTls {
  const tls: NbdTls = {};
  const certificates = params.get('tls-certificates');
  const hostname = params.get('tls-hostname');
  if (certificates !== undefined && certificates !== '') tls.certificates = certificates;
  if (hostname !== undefined && hostname !== '') tls.hostname = hostname;
  return tls;
}

/** "host:port" or "[v6]:port" for messages; the socket path for unix. */
export function describeTransport(transport: NbdTransport): string {
  if (transport.kind === 'unix') return `unix socket ${transport.path}`;
  const host = transport.host.includes(':') ? `[${transport.host}]` : transport.host;
  return `${host}:${transport.port}`;
}

/** True when two targets name the same export on the same endpoint, as far as the URIs tell. */
export function sameExport(a: NbdTarget, b: NbdTarget): boolean {
  return a.exportName === b.exportName && sameServer(a, b);
}

/** Both name the same socket (or host and port). */
export function sameServer(a: NbdTarget, b: NbdTarget): boolean {
  if (a.transport.kind !== b.transport.kind) return false;
  if (a.transport.kind === 'unix' && b.transport.kind === 'unix') return a.transport.path === b.transport.path;
  if (a.transport.kind === 'tcp' && b.transport.kind === 'tcp') {
    return a.transport.host.toLowerCase() === b.transport.host.toLowerCase() && a.transport.port === b.transport.port;
  }
  return false;
}

type Fail = (reason: string) => never;

function parseHostPort(authority: string, fail: Fail, scheme: string): NbdTransport {
  if (authority === '') fail(`${scheme}:// needs a host, e.g. ${scheme}://127.0.0.1:10809/EXPORT`);
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(authority);
  if (bracketed) {
    host = bracketed[1];
    portText = bracketed[2];
    if (!IPV6_LITERAL.test(host) || !host.includes(':')) fail(`'[${host}]' is not an IPv6 address`);
  } else {
    const colon = authority.lastIndexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
    if (!HOST_NAME.test(host)) fail(`'${host}' is not a host name or address (IPv6 goes in brackets: [::1])`);
  }
  let port = DEFAULT_NBD_PORT;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) fail(`port '${portText}' is not a number from 1 to 65535`);
  }
  return { kind: 'tcp', host, port };
}

function decodeExportName(path: string | undefined, fail: Fail): string {
  if (path === undefined) return '';
  let name = '';
  try {
    name = decodeURIComponent(path.slice(1));
  } catch {
    fail(`the export name '${path.slice(1)}' has a broken %-escape`);
  }
  if (name.includes('\0')) fail('the export name contains a NUL byte');
  if (Buffer.byteLength(name, 'utf8') > MAX_EXPORT_NAME_BYTES) fail(`the export name is longer than ${MAX_EXPORT_NAME_BYTES} bytes`);
  return name;
}

function parseQuery(query: string | undefined, fail: Fail): Map<string, string> {
  const params = new Map<string, string>();
  if (query === undefined || query === '?') return params;
  for (const part of query.slice(1).split('&')) {
    const eq = part.indexOf('=');
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    let key = '';
    let value = '';
    try {
      key = decodeURIComponent(rawKey);
      value = decodeURIComponent(rawValue);
    } catch {
      fail(`the query parameter '${part}' has a broken %-escape`);
    }
    if (params.has(key)) fail(`query parameter '${key}' is given twice`);
    params.set(key, value);
  }
  return params;
}
