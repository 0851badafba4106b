import { closeSync, openSync, readSync } from 'node:fs';
import type net from 'node:net';
import { expect, it } from 'vitest';
import { canSendFromFile, sendFromFile, setSendBufferSize, writtenBefore } from '../src/index.js';
import { cleanups, connectedUnixPair, evictedFile, fdOf } from './helpers.js';

const MiB = 1024 * 1024;
const HEADER = Buffer.from('reply-header:0123456789');

/** Everything the peer receives until `bytes` have come. */
function receive(socket: net.Socket, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= bytes) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.resume();
  });
}

/** Pages in the page cache again: read through it. */
function cache(fd: number, size: number): void {
  readSync(fd, Buffer.alloc(size), 0, size, 0);
}

it('is offered: npm ci builds the addon', () => {
  expect(canSendFromFile).toBe(true);
});

it('sends the header and the cached range, byte for byte', async () => {
  const { fd, data } = evictedFile(4 * MiB);
  cache(fd, 4 * MiB);
  const { client, accepted } = await connectedUnixPair();
  // Within the default send buffer (net.core.wmem_default, ~208 KiB): the socket takes it all at once.
  const length = 100_000;
  const arriving = receive(client, HEADER.length + length);
  expect(sendFromFile(fdOf(accepted), HEADER, fd, MiB + 7, length)).toBe(HEADER.length + length);
  const got = await arriving;
  expect(got.subarray(0, HEADER.length).equals(HEADER)).toBe(true);
  expect(got.subarray(HEADER.length).equals(data.subarray(MiB + 7, MiB + 7 + length))).toBe(true);
});

it('sends nothing of a range the page cache does not hold all of (sendfile would wait for the device)', async () => {
  const { fd } = evictedFile(32 * MiB);
  // The first MiB is cached (and what readahead brings after it), the end is not: a range across both is refused whole.
  readSync(fd, Buffer.alloc(MiB), 0, MiB, 0);
  const { client, accepted } = await connectedUnixPair();
  const received: Buffer[] = [];
  client.on('data', (c: Buffer) => received.push(c));
  expect(sendFromFile(fdOf(accepted), HEADER, fd, 0, 32 * MiB)).toBe(-1);
  expect(sendFromFile(fdOf(accepted), HEADER, fd, 31 * MiB, 4096)).toBe(-1);
  // A marker through the same socket arrives first and alone: nothing went before it.
  accepted.write('marker');
  await new Promise((resolve) => client.once('data', resolve));
  expect(Buffer.concat(received).toString()).toBe('marker');
});

it('stops where the socket fills, and what went is the reply from its start', async () => {
  const { fd, data } = evictedFile(8 * MiB);
  cache(fd, 8 * MiB);
  const { client, accepted } = await connectedUnixPair();
  client.pause();
  setSendBufferSize(fdOf(accepted), 64 * 1024);
  const written = sendFromFile(fdOf(accepted), HEADER, fd, 0, 8 * MiB);
  expect(written).toBeGreaterThan(HEADER.length);
  expect(written).toBeLessThan(HEADER.length + 8 * MiB);
  // Full: the next call sends nothing, header included.
  expect(sendFromFile(fdOf(accepted), HEADER, fd, 0, 4096)).toBe(0);
  const got = await receive(client, written);
  expect(got.length).toBe(written);
  expect(got.subarray(0, HEADER.length).equals(HEADER)).toBe(true);
  expect(got.subarray(HEADER.length).equals(data.subarray(0, written - HEADER.length))).toBe(true);
});

it('names what fails: EBADF and ENOTSOCK before anything went, a sendfile error with what went before it, EPIPE once the socket is shut', async () => {
  const { path, fd } = evictedFile(MiB);
  cache(fd, MiB);
  const { accepted } = await connectedUnixPair();
  const threw = (call: () => unknown): { code?: unknown; syscall?: unknown; written: number } => {
    try {
      call();
    } catch (err) {
      const e = err as { code?: unknown; syscall?: unknown };
      return { code: e.code, syscall: e.syscall, written: writtenBefore(err) };
    }
    throw new Error('did not throw');
  };
  expect(threw(() => sendFromFile(fdOf(accepted), HEADER, 999_999, 0, 4096))).toEqual({ code: 'EBADF', syscall: 'cachestat', written: 0 });
  expect(threw(() => sendFromFile(fd, HEADER, fd, 0, 4096))).toMatchObject({ code: 'ENOTSOCK', syscall: 'send', written: 0 });
  // A file open for writing only: cachestat answers, the header goes, sendfile cannot read it.
  const wo = openSync(path, 'a');
  cleanups.push(() => closeSync(wo));
  expect(threw(() => sendFromFile(fdOf(accepted), HEADER, wo, 0, 4096))).toEqual({ code: 'EBADF', syscall: 'sendfile', written: HEADER.length });
  // Our side shut for writing (end: shutdown(SHUT_WR), the descriptor stays open), as a peer gone would leave it.
  const socket = fdOf(accepted);
  await new Promise<void>((resolve) => accepted.end(resolve));
  expect(threw(() => sendFromFile(socket, HEADER, fd, 0, 4096))).toMatchObject({ code: 'EPIPE', syscall: 'send' });
  expect(() => sendFromFile(fdOf(accepted), HEADER, fd, -1, 4096)).toThrow(RangeError);
  expect(() => sendFromFile(fdOf(accepted), HEADER, fd, 0, 0)).toThrow(RangeError);
});
