import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { unsentBytes } from '../../../src/net/unsent-bytes.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

it("counts what sits in the kernel's send buffer, not only what libuv still holds", async () => {
  const path = join(tmpdir(), `unsent-${process.pid}-${Math.random().toString(16).slice(2)}.sock`);
  const server = net.createServer();
  const acceptedP = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  closers.push(() => server.close());
  const client = net.connect(path);
  client.pause();
  closers.push(() => client.destroy());
  const accepted = await acceptedP;
  closers.push(() => accepted.destroy());

  expect(unsentBytes(accepted)).toBe(0);
  // Fits the kernel's buffer whole: the write completes, libuv holds nothing, the client has read nothing.
  await new Promise<void>((resolve, reject) => accepted.write(Buffer.alloc(64 * 1024), (err) => (err ? reject(err) : resolve())));
  expect(accepted.writableLength).toBe(0);
  expect(unsentBytes(accepted)).toBeGreaterThanOrEqual(64 * 1024);

  accepted.destroy();
  expect(unsentBytes(accepted)).toBeUndefined();
});
