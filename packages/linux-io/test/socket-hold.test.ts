import { expect, it } from 'vitest';
import { closeDescriptor, holdDescriptor, sendQueueBytes, shutdownSocket } from '../src/index.js';
import { connectedUnixPair, fdOf } from './helpers.js';

it('keeps a socket open after Node closes its descriptor: the peer reads what was queued, then the end once it is shut down', async () => {
  const { client, accepted } = await connectedUnixPair();
  client.pause();
  const held = holdDescriptor(fdOf(accepted));
  expect(held).not.toBe(fdOf(accepted));
  await new Promise<void>((resolve) => accepted.write(Buffer.alloc(100_000, 7), () => resolve()));
  accepted.destroy();
  await new Promise((resolve) => accepted.once('close', resolve));
  // Node's descriptor is closed; the held one still counts what the peer has not read.
  expect(sendQueueBytes(held)).toBeGreaterThanOrEqual(100_000);
  let ended = false;
  client.once('end', () => (ended = true));
  const received: Buffer[] = [];
  client.on('data', (c: Buffer) => received.push(c));
  client.resume();
  await new Promise((resolve) => setTimeout(resolve, 100));
  // Everything arrived, but no end yet: the socket is still open through the held descriptor.
  expect(Buffer.concat(received).length).toBe(100_000);
  expect(ended).toBe(false);
  expect(sendQueueBytes(held)).toBe(0);
  shutdownSocket(held);
  await new Promise((resolve) => client.once('end', resolve));
  client.destroy();
  await new Promise((resolve) => setTimeout(resolve, 20));
  shutdownSocket(held);
  closeDescriptor(held);
  // Shut down twice, or once the peer is gone: no error. Closed: EBADF.
  expect(() => closeDescriptor(held)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'close' }));
});
