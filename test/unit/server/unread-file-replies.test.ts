import { afterEach, expect, it } from 'vitest';
import { UnreadFileReplies } from '../../../src/server/unread-file-replies.js';
import { unixSocketPair } from '../../helpers/unix-socket-pair.js';

const pairs: Array<{ close(): void }> = [];
afterEach(() => {
  for (const p of pairs.splice(0)) p.close();
});

async function pair(): Promise<Awaited<ReturnType<typeof unixSocketPair>>> {
  const p = await unixSocketPair();
  pairs.push(p);
  return p;
}

it('holds at most so many sockets at once (each a descriptor that may outlive its connection), and one more once one lets go', async () => {
  const first = await pair();
  const second = await pair();
  const watchFirst = new UnreadFileReplies(first.accepted, 1);
  const watchSecond = new UnreadFileReplies(second.accepted, 1);
  expect(watchFirst.ready()).toBe(true);
  expect(watchSecond.ready()).toBe(false);
  // Something sent and not read yet: the hold stays.
  first.client.pause();
  await new Promise<void>((resolve) => first.accepted.write(Buffer.alloc(1000), () => resolve()));
  let taken = false;
  watchFirst.add(() => (taken = true));
  watchFirst.check();
  expect(taken).toBe(false);
  expect(watchSecond.ready()).toBe(false);
  // Read: the hold goes, and the other socket may be held.
  first.client.resume();
  for (let i = 0; i < 100 && !taken; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(taken).toBe(true);
  expect(watchSecond.ready()).toBe(true);
  watchSecond.check(); // nothing added: lets go
  expect(watchFirst.ready()).toBe(true);
  watchFirst.check();
});

it('is not ready once its socket is closed (TCP is not either: test/interop/source-page-cache.test.ts)', async () => {
  const p = await pair();
  const watch = new UnreadFileReplies(p.accepted, 1);
  p.accepted.destroy();
  await new Promise((resolve) => p.accepted.once('close', resolve));
  expect(watch.ready()).toBe(false);
});
