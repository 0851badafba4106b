import { closeSync, openSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { sendBufferSize, sendQueueBytes, setSendBufferSize, unavailableReason } from '../src/index.js';
import { connectedUnixPair, fdOf } from './helpers.js';

/** The kernel caps a request at net.core.wmem_max and doubles it. */
function kernelFigure(request: number): number {
  const wmemMax = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8').trim());
  return 2 * Math.min(request, wmemMax);
}

it('loads: npm ci builds the addon', () => {
  expect(unavailableReason).toBeUndefined();
});

it("sets an accepted unix socket's send buffer and reads back the kernel's figure", async () => {
  const { client, accepted } = await connectedUnixPair();
  const fd = fdOf(accepted);
  const before = sendBufferSize(fd);
  const wmemDefault = Number(readFileSync('/proc/sys/net/core/wmem_default', 'utf8').trim());
  expect(before).toBe(wmemDefault);
  expect(setSendBufferSize(fd, 1024 * 1024)).toBe(kernelFigure(1024 * 1024));
  expect(sendBufferSize(fd)).toBe(kernelFigure(1024 * 1024));
  // Only that socket: its peer keeps the default.
  expect(sendBufferSize(fdOf(client))).toBe(wmemDefault);
  // A smaller request shrinks it again: the call sets, it does not only grow.
  expect(setSendBufferSize(fd, 64 * 1024)).toBe(kernelFigure(64 * 1024));
});

it('shows what the peer has not read yet, and nothing once it has', async () => {
  const { client, accepted } = await connectedUnixPair();
  const fd = fdOf(accepted);
  expect(sendQueueBytes(fd)).toBe(0);
  client.pause();
  const written = 100_000;
  await new Promise<void>((resolve, reject) => accepted.write(Buffer.alloc(written, 7), (err) => (err ? reject(err) : resolve())));
  // The kernel counts its bookkeeping with the bytes, so at least what was written.
  const queued = sendQueueBytes(fd)!;
  expect(queued).toBeGreaterThanOrEqual(written);
  let read = 0;
  client.on('data', (chunk: Buffer) => (read += chunk.length));
  client.resume();
  for (let look = 0; look < 200 && read < written; look++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(read).toBe(written);
  expect(sendQueueBytes(fd)).toBe(0);
});

it('names the failure: ENOTSOCK (or the ioctl\'s ENOTTY) for a file, EBADF for a closed descriptor', () => {
  const fd = openSync('/proc/self/status', 'r');
  try {
    expect(() => setSendBufferSize(fd, 65536)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', errno: 88, syscall: 'setsockopt', message: expect.stringMatching(/setsockopt\(SO_SNDBUF\): Socket operation on non-socket/) }));
    expect(() => sendBufferSize(fd)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
    expect(() => sendQueueBytes(fd)).toThrow(expect.objectContaining({ message: expect.stringMatching(/^ioctl\(SIOCOUTQ\): /) }));
  } finally {
    closeSync(fd);
  }
  expect(() => sendBufferSize(fd)).toThrow(expect.objectContaining({ code: 'EBADF', errno: 9 }));
  expect(() => sendQueueBytes(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
});

it('refuses what is not a descriptor or a size before any system call', () => {
  expect(() => setSendBufferSize(-1, 65536)).toThrow(RangeError);
  expect(() => setSendBufferSize(1.5, 65536)).toThrow(RangeError);
  expect(() => setSendBufferSize(0, 0)).toThrow(RangeError);
  expect(() => setSendBufferSize(0, 2 ** 31)).toThrow(RangeError);
});
