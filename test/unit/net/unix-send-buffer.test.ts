import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { sendBufferSize } from 'linux-io';
import { UNIX_SEND_BUFFER_REQUEST, widenUnixSendBuffer } from '../../../src/net/unix-send-buffer.js';
import { unixSocketPair } from '../../helpers/unix-socket-pair.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function acceptedUnixSocket(): Promise<net.Socket> {
  const pair = await unixSocketPair();
  closers.push(() => pair.close());
  return pair.accepted;
}

const fdOf = (socket: net.Socket): number => (socket as unknown as { _handle: { fd: number } })._handle.fd;

it("widens a live unix socket to the kernel's double of the request, capped by net.core.wmem_max", async () => {
  const socket = await acceptedUnixSocket();
  const wmemMax = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8').trim());
  const expected = 2 * Math.min(UNIX_SEND_BUFFER_REQUEST, wmemMax);
  expect(widenUnixSendBuffer(socket)).toEqual({ widened: true, bytes: expected });
  expect(sendBufferSize(fdOf(socket))).toBe(expected);
});

it('says why, and does not throw, when the socket has no descriptor any more', async () => {
  const socket = await acceptedUnixSocket();
  socket.destroy();
  const outcome = widenUnixSendBuffer(socket);
  expect(outcome.widened).toBe(false);
  expect(outcome).toMatchObject({ why: expect.stringMatching(/file descriptor/) });
});
