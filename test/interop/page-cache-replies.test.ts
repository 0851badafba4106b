import { readFileSync, readSync, openSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evictFromPageCache } from '../helpers/page-cache.js';
import { RawNbdClient } from '../helpers/raw-nbd-client.js';
import { mustRun } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;
const READ = 0;
const EINVAL = 22;
/** On the repository's file system, not /tmp: a tmpfs has no page cache to evict. */
const SCRATCH = fileURLToPath(new URL('../../.cache/test-scratch/', import.meta.url));

/** Drops the image from the page cache, then reads [0, cachedBytes) back in. */
function cacheOnly(path: string, cachedBytes: number): void {
  evictFromPageCache(path);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, Buffer.alloc(cachedBytes), 0, cachedBytes, 0);
  } finally {
    closeSync(fd);
  }
}

/**
 * A read-only serve sends reads of cached data from the page cache
 * (sendfile), the rest by copying. Every mix of the two must make the same
 * stream: replies whole, each with its own bytes, when the socket fills in
 * the middle of one and other replies wait behind it.
 */
describe('read replies sent from the page cache', () => {
  const dir = scratchDir('nbd-remapper-page-cache-replies-', SCRATCH);
  const disk = dir.file('disk.img');
  const socketPath = dir.file('nbd.sock');
  const SIZE = 64 * MiB;
  let content: Buffer;
  let server: ServerProcess;

  beforeAll(async () => {
    content = randomImage(disk, SIZE);
    server = await startServerProcess(['serve', '--disk', disk, '--socket', socketPath, '--listen', '127.0.0.1:0', '--read-only']);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  });

  it('a client that reads late gets every reply whole, cached and uncached data and errors mixed', async () => {
    // The first half cached, the second not: replies of both kinds, and some that span the two.
    cacheOnly(disk, SIZE / 2);
    const client = await RawNbdClient.attach({ path: socketPath }, 'source');
    client.socket.pause();
    const sizes = [1, 4095, 65536, MiB, 3 * MiB + 17, 16 * MiB];
    const asked = new Map<bigint, { offset: number; length: number }>();
    let cookie = 1n;
    for (let i = 0; i < 48; i++) {
      const length = sizes[i % sizes.length] as number;
      const offset = (i * 5 * MiB + i * 4099) % (SIZE - length);
      asked.set(cookie, { offset, length });
      client.sendRequest({ type: READ, cookie: cookie++, offset, length });
      // Past the end: an error reply, which goes by the copying path and must wait its turn too.
      if (i % 4 === 0) {
        asked.set(cookie, { offset: SIZE, length: 0 });
        client.sendRequest({ type: READ, cookie: cookie++, offset: SIZE - 10, length: 4096 });
      }
    }
    // The server fills the socket and holds the rest while the client reads nothing.
    await new Promise((resolve) => setTimeout(resolve, 500));
    client.socket.resume();
    const answered = new Set<bigint>();
    for (let n = 0; n < asked.size; n++) {
      const header = await client.read(16, 30_000);
      expect(header.readUInt32BE(0)).toBe(0x67446698);
      const got = header.readBigUInt64BE(8);
      const request = asked.get(got);
      if (request === undefined) throw new Error(`reply for unknown cookie ${got}`);
      expect(answered.has(got)).toBe(false);
      answered.add(got);
      if (request.length === 0) {
        expect(header.readUInt32BE(4)).toBe(EINVAL);
        continue;
      }
      expect(header.readUInt32BE(4)).toBe(0);
      const data = await client.read(request.length, 30_000);
      expect(data.equals(content.subarray(request.offset, request.offset + request.length))).toBe(true);
    }
    expect(answered.size).toBe(asked.size);
    client.close();
  }, 120_000);

  it('nbdcopy over four connections (structured replies) copies the image exactly, half of it uncached', async () => {
    cacheOnly(disk, SIZE / 2);
    const copy = dir.file('copy.img');
    await mustRun('nbdcopy', ['-C', '4', '--request-size', String(4 * MiB), `nbd+unix:///source?socket=${socketPath}`, copy]);
    expect(readFileSync(copy).equals(content)).toBe(true);
    // Once all of it is cached, every reply can go from the page cache.
    await mustRun('nbdcopy', ['-C', '4', `nbd+unix:///source?socket=${socketPath}`, copy]);
    expect(readFileSync(copy).equals(content)).toBe(true);
  });

  it('over TCP too: qemu-img compares the image through the server, half of it uncached', async () => {
    cacheOnly(disk, SIZE / 2);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', disk, server.uri('source', 'tcp')]);
    const copy = dir.file('tcp-copy.img');
    await mustRun('nbdcopy', ['-C', '2', server.uri('source', 'tcp'), copy]);
    expect(readFileSync(copy).equals(content)).toBe(true);
  });
});
