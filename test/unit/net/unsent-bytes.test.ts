import { afterEach, expect, it } from 'vitest';
import { unsentBytes } from '../../../src/net/unsent-bytes.js';
import { unixSocketPair } from '../../helpers/unix-socket-pair.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

it("counts what sits in the kernel's send buffer, not only what libuv still holds", async () => {
  const { client, accepted, close } = await unixSocketPair();
  closers.push(close);
  client.pause();

  expect(unsentBytes(accepted)).toBe(0);
  // Fits the kernel's buffer whole: the write completes, libuv holds nothing, the client has read nothing.
  await new Promise<void>((resolve, reject) => accepted.write(Buffer.alloc(64 * 1024), (err) => (err ? reject(err) : resolve())));
  expect(accepted.writableLength).toBe(0);
  expect(unsentBytes(accepted)).toBeGreaterThanOrEqual(64 * 1024);

  accepted.destroy();
  expect(unsentBytes(accepted)).toBeUndefined();
});
