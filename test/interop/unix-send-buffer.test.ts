import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { UNIX_SEND_BUFFER_REQUEST } from '../../src/net/unix-send-buffer.js';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { startServerProcess } from '../helpers/server-process.js';

/**
 * The server widens the send buffer of each unix socket it accepts
 * (src/net/unix-send-buffer.ts): at the kernel's default a sequential reader
 * gets about half of what the disk gives. Seen from outside, as an operator
 * would check it: `ss` shows each socket's send buffer (skmem's `tb`).
 */
const cleanup = useCleanups();

interface SocketLine {
  localAddress: string;
  sendBuffer: number;
}

/** The server process's unix sockets as `ss -x -m -p` shows them; a socket's skmem may be printed on a line of its own. */
async function unixSocketsOf(pid: number): Promise<SocketLine[]> {
  const stdout = await mustRun('ss', ['-x', '-n', '-m', '-p']);
  const entries = stdout.replace(/\n\s+/g, ' ').split('\n');
  const found: SocketLine[] = [];
  for (const entry of entries) {
    if (!entry.includes(`pid=${pid},`)) continue;
    const tb = /skmem:\([^)]*\btb(\d+)/.exec(entry);
    const columns = entry.split(/\s+/);
    if (tb && columns.length > 4) found.push({ localAddress: columns[4], sendBuffer: Number(tb[1]) });
  }
  return found;
}

/** Polls until the server has accepted the connection (bounded: 100 looks). */
async function acceptedUnixSocket(pid: number, local: (address: string) => boolean): Promise<SocketLine> {
  for (let look = 0; look < 100; look++) {
    const match = (await unixSocketsOf(pid)).find((s) => local(s.localAddress));
    if (match) return match;
    await sleep(50);
  }
  throw new Error(`ss never showed the server's accepted socket (pid ${pid}):\n${JSON.stringify(await unixSocketsOf(pid))}`);
}

// TCP sockets are left to the kernel's own sizing (on loopback it gives them ~4 MB by itself).
it("widens each accepted unix socket's send buffer", async () => {
  const dir = scratchDir('nbd-remapper-sndbuf-');
  cleanup(() => dir.cleanup());
  const image = dir.file('disk.img');
  randomImage(image, 4 * 1024 * 1024);
  const socketPath = dir.file('nbd.sock');
  const server = await startServerProcess(['serve', '--disk', image, '--socket', socketPath]);
  cleanup(() => server.stop());
  const pid = server.child.pid!;

  const unixClient = net.connect(socketPath);
  cleanup(() => void unixClient.destroy());
  const unixSide = await acceptedUnixSocket(pid, (address) => address === socketPath);
  const wmemMax = Number(readFileSync('/proc/sys/net/core/wmem_max', 'utf8').trim());
  expect(unixSide.sendBuffer).toBe(2 * Math.min(UNIX_SEND_BUFFER_REQUEST, wmemMax));

  // The widened socket serves: a whole read through it is byte-exact.
  const copy = dir.file('copy.bin');
  await mustRun('nbdcopy', ['-C', '1', server.uri('source', 'unix'), copy]);
  expect(readFileSync(copy).equals(readFileSync(image))).toBe(true);
  expect(server.stderr()).not.toMatch(/default send buffer/);
});
