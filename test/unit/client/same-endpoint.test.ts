import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNbdUri } from '../../../src/client/nbd-uri.js';
import { sameEndpoint } from '../../../src/client/same-endpoint.js';

describe('sameEndpoint: the same server, however the URIs spell it (copy refuses overlapping moves within one export)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-same-endpoint-'));
  const socket = join(dir, 'nbd.sock');
  const other = join(dir, 'other.sock');
  const servers = [net.createServer(), net.createServer()];

  beforeAll(async () => {
    await Promise.all([
      new Promise<void>((resolve) => servers[0].listen(socket, resolve)),
      new Promise<void>((resolve) => servers[1].listen(other, resolve)),
    ]);
    symlinkSync(socket, join(dir, 'link.sock'));
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  const unix = (path: string) => parseNbdUri(`nbd+unix:///d?socket=${path}`);

  it('a unix socket by an absolute path, a relative one, a symlink or with extra slashes', async () => {
    for (const spelling of [relative(process.cwd(), socket), join(dir, 'link.sock'), socket.replace(/\//g, '//'), join(dir, '.', 'nbd.sock')]) {
      expect(await sameEndpoint(unix(socket), unix(spelling)), spelling).toBe(true);
    }
    expect(await sameEndpoint(unix(socket), unix(other))).toBe(false);
    expect(await sameEndpoint(unix(socket), unix(join(dir, 'missing.sock')))).toBe(false);
  });

  it('TCP by port and address: localhost and 127.0.0.1 are the same, another port or host is not', async () => {
    const tcp = (host: string, port = 10809) => parseNbdUri(`nbd://${host}:${port}/d`);
    expect(await sameEndpoint(tcp('localhost'), tcp('127.0.0.1'))).toBe(true);
    expect(await sameEndpoint(tcp('127.0.0.1'), tcp('127.0.0.2'))).toBe(true);
    expect(await sameEndpoint(tcp('localhost'), tcp('127.0.0.1', 10810))).toBe(false);
    expect(await sameEndpoint(tcp('127.0.0.1'), tcp('192.0.2.1'))).toBe(false);
    expect(await sameEndpoint(tcp('127.0.0.1'), unix(socket))).toBe(false);
  });
});
