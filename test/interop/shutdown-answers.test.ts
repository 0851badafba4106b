import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { RawNbdClient } from '../helpers/raw-nbd-client.js';
import { scratchDisk } from '../helpers/scratch.js';
import { startServerProcess } from '../helpers/server-process.js';

const cleanup = useCleanups();
const KiB = 1024;

/**
 * A server that shuts down serves the requests it has received before it
 * ends the connection (spec, "Terminating the transmission phase"): a client
 * that pipelined many requests gets a reply to every one the server read,
 * not EOF in place of most of them.
 */
it('SIGTERM: every request already received is answered before the connection ends', async () => {
  const { dir, original, serveArgs } = scratchDisk('nbd-remapper-shutdown-', 8 * 1024 * KiB, cleanup);
  const server = await startServerProcess([...serveArgs, '--state', dir.file('state')]);
  cleanup(() => server.stop('SIGKILL'));
  const client = await RawNbdClient.attach({ path: dir.file('nbd.sock') }, 'source');
  cleanup(() => client.close());

  // 400 reads of 1 MiB in one write (11 KiB of requests: one receive), far more than the 64 served at once.
  const count = 400;
  const length = 1024 * KiB;
  const offsetOf = (i: number): number => (i * length) % original.length;
  client.socket.cork();
  for (let i = 0; i < count; i++) client.sendRequest({ type: 0, cookie: BigInt(i), offset: offsetOf(i), length });
  client.socket.uncork();
  // The first reply says the requests have arrived.
  const first = await client.readSimpleReply(length);
  server.child.kill('SIGTERM');

  const answered = new Set<bigint>([first.cookie]);
  const wrong: string[] = [];
  const check = (r: { error: number; cookie: bigint; data: Buffer }): void => {
    const i = Number(r.cookie);
    if (r.error !== 0 || !r.data.equals(original.subarray(offsetOf(i), offsetOf(i) + length))) wrong.push(`request ${i}: error ${r.error}`);
    answered.add(r.cookie);
  };
  check(first);
  while (answered.size < count) {
    let reply: { error: number; cookie: bigint; data: Buffer };
    try {
      reply = await client.readSimpleReply(length);
    } catch (err) {
      throw new Error(`${answered.size} of ${count} requests answered before the connection ended: ${(err as Error).message}`);
    }
    check(reply);
  }
  expect(wrong).toEqual([]);
  expect(await server.exited).toBe(0);
}, 60_000);

it('SIGTERM during the handshake: options sent afterwards are not answered on a connection the server has ended', async () => {
  const { dir, serveArgs } = scratchDisk('nbd-remapper-shutdown-', 1024 * KiB, cleanup);
  const server = await startServerProcess([...serveArgs, '--state', dir.file('state'), '-v']);
  cleanup(() => server.stop('SIGKILL'));
  // An attached client that does not close keeps the server up for its grace after the SIGTERM.
  const attached = await RawNbdClient.connect({ path: dir.file('nbd.sock') }, { halfOpen: true });
  cleanup(() => attached.close());
  await attached.greet();
  await attached.go('source');
  // Half open too: its side stays writable after the server ends the connection.
  const client = await RawNbdClient.connect({ path: dir.file('nbd.sock') }, { halfOpen: true });
  cleanup(() => client.close());
  await client.greet();
  server.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 200));
  await client.serverEnded;
  for (let i = 0; i < 5; i++) client.sendOption(3); // NBD_OPT_LIST
  await new Promise((resolve) => setTimeout(resolve, 200));
  client.close();
  expect(await server.exited).toBe(0);
  expect(server.stderr() + server.stdout()).not.toMatch(/write after end/);
}, 30_000);
