import { describe, expect, it } from 'vitest';
import { isReachableFromElsewhere, isWildcard, localEndpoint, nbdClientCommand, nbdUri, openPortWarning, otherMachinesLine, parseListen } from '../../../src/cli/endpoints.js';

/** Listen addresses are checked here, without binding: tests listen on 127.0.0.1 and unix sockets only. */
describe('listen addresses', () => {
  it('shows a wildcard as loopback in URIs and commands: 0.0.0.0 is where a server listens, not where a client connects', () => {
    const v4 = parseListen('0.0.0.0:10809');
    const v6 = parseListen('[::]:10809');
    expect(isWildcard(v4) && isWildcard(v6)).toBe(true);
    expect(nbdUri(localEndpoint(v4), 'source')).toBe('nbd://127.0.0.1:10809/source');
    expect(nbdUri(localEndpoint(v6), 'source')).toBe('nbd://[::1]:10809/source');
    expect(nbdClientCommand(localEndpoint(v4), 'destination', '/dev/nbd1')).toBe('nbd-client -N destination 127.0.0.1 10809 /dev/nbd1 -t 60');
    // A socket path with a space and a `&`: percent-encoded in the URI (slashes kept), quoted for the shell in the command.
    const odd = { kind: 'unix' as const, path: '/tmp/my dir/n&x.sock' };
    expect(nbdUri(odd, 'source')).toBe('nbd+unix:///source?socket=/tmp/my%20dir/n%26x.sock');
    expect(nbdClientCommand(odd, 'source', '/dev/nbd0')).toBe(`nbd-client -N source -u '/tmp/my dir/n&x.sock' /dev/nbd0 -t 60`);
    const specific = parseListen('192.0.2.7:10809');
    expect(localEndpoint(specific)).toEqual(specific);
  });

  it('names the addresses other machines connect to', () => {
    const open = parseListen('0.0.0.0:10809');
    expect(otherMachinesLine(open, ['192.0.2.7', 'fd00::7'])).toBe(
      "listening on every interface (port 10809): from another machine, connect to one of this machine's addresses (192.0.2.7, fd00::7) instead of 127.0.0.1",
    );
    expect(otherMachinesLine(open, [])).toMatch(/connect to this machine's address instead of 127\.0\.0\.1$/);
  });

  it('warns about every address other machines can reach, and about none that they cannot', () => {
    for (const text of ['0.0.0.0:1', '[::]:1', '192.0.2.7:1', '[fd00::7]:1']) expect(isReachableFromElsewhere(parseListen(text)), text).toBe(true);
    for (const text of ['127.0.0.1:1', '127.1.2.3:1', '[::1]:1', 'localhost:1', '1']) expect(isReachableFromElsewhere(parseListen(text)), text).toBe(false);
    expect(isReachableFromElsewhere({ kind: 'unix', path: '/run/x.sock' })).toBe(false);
    expect(openPortWarning(parseListen('0.0.0.0:10809'), false)).toBe(
      'listening on every interface: anyone who can reach port 10809 can read this disk and write its new layout, and the traffic is not encrypted (--tls-certificates); listen on 127.0.0.1 or a unix socket (--socket), or keep the port behind a firewall',
    );
    expect(openPortWarning(parseListen('192.0.2.7:10809'), true)).toMatch(/^listening on nbd:\/\/192\.0\.2\.7:10809: anyone who can reach port 10809 can read this disk, and the traffic/);
    // With TLS required the traffic is safe from eavesdroppers, not the disk from strangers: no client is authenticated.
    expect(openPortWarning(parseListen('192.0.2.7:10809'), false, true)).toBe(
      'listening on nbds://192.0.2.7:10809: the traffic is encrypted (TLS), but anyone who can reach port 10809 can read this disk and write its new layout: clients are not authenticated; keep the port behind a firewall',
    );
  });
});
