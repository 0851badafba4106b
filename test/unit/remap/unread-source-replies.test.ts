import { expect, it } from 'vitest';
import { UnreadSourceReplies } from '../../../src/remap/unread-source-replies.js';

it('counts replies until each is said read, once each, and tells a waiter when none are left or that some still are', async () => {
  const unread = new UnreadSourceReplies();
  expect(await unread.noneWithin(10)).toBe(true);
  const first = unread.take();
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
