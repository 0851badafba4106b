import { expect, it } from 'vitest';
import { UnreadSourceReplies } from '../../../src/remap/unread-source-replies.js';

it('counts replies until each is said read, once each, and tells a waiter when none are left or that some still are', async () => {
  const unread = new UnreadSourceReplies();
  expect(await unread.noneWithin(10)).toBe(true);
  const first = unread.take({ start: 0, end: 4 });
  const second = unread.take();
  expect(unread.count).toBe(2);
  first();
  first(); // said twice: counted once
  expect(unread.count).toBe(1);
  expect(await unread.noneWithin(20)).toBe(false);
  const waiting = unread.noneWithin(60_000);
  second();
  expect(await waiting).toBe(true);
  expect(unread.count).toBe(0);
});

it('splits a run of blocks into those no unread reply covers and those one does', () => {
  const unread = new UnreadSourceReplies();
  expect(unread.split(0, 10)).toEqual({ free: [{ start: 0, end: 10 }], covered: [] });
  const a = unread.take({ start: 2, end: 4 });
  unread.take({ start: 3, end: 6 });
  unread.take({ start: 8, end: 20 });
  unread.take(); // counted, covering nothing
  expect(unread.covers(0, 2)).toBe(false);
  expect(unread.covers(0, 3)).toBe(true);
  expect(unread.split(0, 10)).toEqual({
    free: [
      { start: 0, end: 2 },
      { start: 6, end: 8 },
    ],
    covered: [
      { start: 2, end: 6 },
      { start: 8, end: 10 },
    ],
  });
  a();
  expect(unread.split(0, 10).free).toEqual([
    { start: 0, end: 3 },
    { start: 6, end: 8 },
  ]);
});
