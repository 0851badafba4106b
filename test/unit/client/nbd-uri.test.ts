import { describe, expect, it } from 'vitest';
import { NbdUriError, describeTransport, parseNbdUri, sameExport } from '../../../src/client/nbd-uri.js';

describe('parseNbdUri accepts', () => {
  it.each([
    ['nbd://127.0.0.1:10810/source', { kind: 'tcp', host: '127.0.0.1', port: 10810 }, 'source'],
    ['nbd://example.org/disk', { kind: 'tcp', host: 'example.org', port: 10809 }, 'disk'],
    ['nbd://localhost', { kind: 'tcp', host: 'localhost', port: 10809 }, ''],
    ['nbd://localhost:1/', { kind: 'tcp', host: 'localhost', port: 1 }, ''],
    ['nbd://[::1]:10809/destination', { kind: 'tcp', host: '::1', port: 10809 }, 'destination'],
    ['nbd://[fe80::1]/x', { kind: 'tcp', host: 'fe80::1', port: 10809 }, 'x'],
    ['NBD://host:65535/a%20b', { kind: 'tcp', host: 'host', port: 65535 }, 'a b'],
    ['nbd://host//leading-slash', { kind: 'tcp', host: 'host', port: 10809 }, '/leading-slash'],
    ['nbd+unix:///source?socket=/run/nbd-remapper.sock', { kind: 'unix', path: '/run/nbd-remapper.sock' }, 'source'],
    ['nbd+unix:///?socket=relative.sock', { kind: 'unix', path: 'relative.sock' }, ''],
    ['nbd+unix://?socket=/tmp/s', { kind: 'unix', path: '/tmp/s' }, ''],
    // '+' in a socket path stays a '+': URLSearchParams would turn it into a space.
    ['nbd+unix:///d?socket=/tmp/a+b%3Dc.sock', { kind: 'unix', path: '/tmp/a+b=c.sock' }, 'd'],
    ['nbd+unix:///../x?socket=/s', { kind: 'unix', path: '/s' }, '../x'],
  ])('%s', (uri, transport, exportName) => {
    const target = parseNbdUri(uri);
    expect(target.transport).toEqual(transport);
    expect(target.exportName).toBe(exportName);
    expect(target.uri).toBe(uri);
    expect(target.tls).toBeUndefined();
  });

  it.each([
    ['nbds://127.0.0.1:10810/source', { kind: 'tcp', host: '127.0.0.1', port: 10810 }, {}],
    ['nbds://host/d?tls-certificates=/etc/pki/nbd&tls-hostname=nbd.example.org', { kind: 'tcp', host: 'host', port: 10809 }, { certificates: '/etc/pki/nbd', hostname: 'nbd.example.org' }],
    ['nbds+unix:///d?socket=/run/s.sock&tls-certificates=pki', { kind: 'unix', path: '/run/s.sock' }, { certificates: 'pki' }],
  ])('%s (TLS)', (uri, transport, tls) => {
    const target = parseNbdUri(uri);
    expect(target.transport).toEqual(transport);
    expect(target.tls).toEqual(tls);
  });
});

describe('parseNbdUri refuses, naming the URI and the reason', () => {
  it.each([
    ['', /form SCHEME/],
    ['/dev/nbd0', /form SCHEME/],
    ['nbd:/source', /form SCHEME/],
    ['http://host/x', /unknown scheme 'http'/],
    ['nbds://host/x?socket=/s', /unknown query parameter 'socket' \(understood: tls-certificates=, tls-hostname=\)/],
    ['nbd://host/x?tls-certificates=/etc/pki', /tls-certificates= needs TLS: write nbds:\/\//],
    ['nbd+unix:///x?socket=/s&tls-certificates=/etc/pki', /tls-certificates= needs TLS: write nbds\+unix:\/\//],
    ['nbds+unix:///x', /nbds\+unix:\/\/ needs \?socket=PATH/],
    ['nbd+vsock://2/x', /unknown scheme/],
    ['nbd:///x', /needs a host/],
    ['nbd://host:0/x', /port '0'/],
    ['nbd://host:65536/x', /port '65536'/],
    ['nbd://host:12ab/x', /port '12ab'/],
    ['nbd://host:/x', /port ''/],
    ['nbd://user@host/x', /user names/],
    ['nbd://host/x#frag', /fragment/],
    ['nbd://host/x?socket=/s', /no query parameters/],
    ['nbd://ho st/x', /not a host name/],
    ['nbd://::1/x', /not a host name/],
    ['nbd://[zz]/x', /not an IPv6 address/],
    ['nbd://host/%zz', /broken %-escape/],
    ['nbd://host/a%00b', /NUL/],
    [`nbd://host/${'x'.repeat(4097)}`, /longer than 4096/],
    ['nbd+unix:///x', /needs \?socket=PATH/],
    ['nbd+unix:///x?socket=', /needs \?socket=PATH/],
    ['nbd+unix:///x?socket=/run/s.sock%00junk', /\?socket= must not contain a NUL byte/],
    ['nbd+unix:///x?socket=%00abstract', /\?socket= must not contain a NUL byte/],
    ['nbd+unix://host/x?socket=/s', /takes no host/],
    ['nbd+unix:///x?socket=/s&tls=on', /unknown query parameter 'tls' \(understood: socket=\)/],
    ['nbd+unix:///x?socket=/a&socket=/b', /given twice/],
  ])('%j', (uri, reason) => {
    let caught: unknown;
    try {
      parseNbdUri(uri);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NbdUriError);
    const error = caught as NbdUriError;
    expect(error.message).toContain(`'${uri}'`);
    expect(error.message).toMatch(reason);
    expect(error.fix).toMatch(/nbd\+unix:\/\/\/EXPORT\?socket=PATH/);
  });
});

describe('describeTransport and sameExport', () => {
  it('describe TCP with brackets for IPv6, and unix sockets by path', () => {
    expect(describeTransport(parseNbdUri('nbd://[::1]:99/x').transport)).toBe('[::1]:99');
    expect(describeTransport(parseNbdUri('nbd://h/x').transport)).toBe('h:10809');
    expect(describeTransport(parseNbdUri('nbd+unix:///x?socket=/s').transport)).toBe('unix socket /s');
  });

  it('tell the same export apart from a different one', () => {
    const a = parseNbdUri('nbd://Host:10809/disk');
    expect(sameExport(a, parseNbdUri('nbd://host/disk'))).toBe(true);
    expect(sameExport(a, parseNbdUri('nbd://host/other'))).toBe(false);
    expect(sameExport(a, parseNbdUri('nbd://host:10810/disk'))).toBe(false);
    expect(sameExport(a, parseNbdUri('nbd+unix:///disk?socket=/s'))).toBe(false);
    expect(sameExport(parseNbdUri('nbd+unix:///d?socket=/s'), parseNbdUri('nbd+unix:///d?socket=/s'))).toBe(true);
    expect(sameExport(parseNbdUri('nbd+unix:///d?socket=/s'), parseNbdUri('nbd+unix:///d?socket=/t'))).toBe(false);
  });
});
