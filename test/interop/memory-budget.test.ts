import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUARANTEED_REQUEST_BYTES } from '../../src/server/memory-budget.js';
import { RawNbdClient } from '../helpers/raw-nbd-client.js';
import { rssOf, settledRss } from '../helpers/process-memory.js';
import { mustRun } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;
const READ = 0;
const WRITE = 1;
/** DEFAULT_MAX_BUFFERED_BYTES: what all connections together may hold. */
const BUDGET = 256 * MiB;
const HOGS = 12;

/** HOGS clients that each ask for four 32 MiB reads and from then on read nothing: the server's replies pile up on its side. */
async function readHogs(target: { path: string } | { host: string; port: number }): Promise<RawNbdClient[]> {
  const hogs: RawNbdClient[] = [];
  for (let i = 0; i < HOGS; i++) {
    const c = await RawNbdClient.attach(target, 'source');
    c.socket.pause();
    for (let k = 0; k < 4; k++) c.sendRequest({ type: READ, cookie: BigInt(k), offset: k * 8 * MiB, length: 32 * MiB });
    hogs.push(c);
  }
  return hogs;
}

/** The server's TCP endpoint. */
function tcpTarget(server: ServerProcess): { host: string; port: number } {
  return { host: '127.0.0.1', port: Number(new URL(server.uri('source', 'tcp')).port) };
}

describe('memory of all connections together is bounded (G8)', () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  const socketPath = dir.file('nbd.sock');
  let server: ServerProcess;
  let content: Buffer;

  beforeAll(async () => {
    content = randomImage(disk, 64 * MiB);
    // Stalled clients are not dropped here (--stall-timeout): these cases measure what the budget alone bounds.
    // Their hogs come over TCP, where reads are copied into request memory (over a unix socket cached data goes
    // from the page cache without it: the read-only case).
    server = await startServerProcess(['serve', '--disk', disk, '--socket', socketPath, '--listen', '127.0.0.1:0', '--stall-timeout', '600']);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  });

  it('clients that never read their replies hold at most the budget, and an honest client is still served in full', async () => {
    const pid = server.child.pid as number;
    // Warm: the server's own buffers and code, so that what follows measures the hogs.
    await mustRun('nbdcopy', ['-C', '1', `nbd+unix:///source?socket=${socketPath}`, 'null:']);
    const before = rssOf(pid);

    const hogs = await readHogs(tcpTarget(server));
    const held = (await settledRss(pid)) - before;
    // Without the budget each hog holds ~64 MiB (two 32 MiB reads in flight, their replies queued): ~770 MiB here.
    // With it: the budget, one request over it, the guaranteed request per connection, and the idle pool's 64 MiB.
    const bound = BUDGET + 32 * MiB + HOGS * GUARANTEED_REQUEST_BYTES + 64 * MiB + 32 * MiB;
    console.log(`${HOGS} clients not reading: server RSS grew ${(held / MiB).toFixed(0)} MiB (bound ${(bound / MiB).toFixed(0)} MiB)`);
    expect(held).toBeLessThan(bound);

    // The budget is spent on the hogs; an honest client still gets every byte, one request at a time if need be,
    // with requests as large as the guarantee (the kernel's are up to 1.25 MiB).
    const copy = dir.file('copy.img');
    await mustRun('nbdcopy', ['-C', '1', '--request-size', String(GUARANTEED_REQUEST_BYTES), `nbd+unix:///source?socket=${socketPath}`, copy], { timeoutMs: 120_000 });
    expect(readFileSync(copy).equals(content)).toBe(true);

    for (const c of hogs) c.close();
    await Promise.all(hogs.map((c) => c.closed));
    // Their share came back: a request larger than the guaranteed one is served at once again.
    await mustRun('nbdcopy', ['-C', '1', '--request-size', String(16 * MiB), `nbd+unix:///source?socket=${socketPath}`, copy], { timeoutMs: 60_000 });
    expect(readFileSync(copy).equals(content)).toBe(true);
  });

  /**
   * A server of its own, on a disk of its own (the first holds its disk's lock), so that nothing
   * an earlier case left behind is counted.
   */
  async function ownServer(name: string, stallTimeout: string, mode: string[] = []): Promise<{ path: string; ownContent: Buffer; own: ServerProcess }> {
    const path = dir.file(`${name}.sock`);
    const ownDisk = dir.file(`${name}.img`);
    const ownContent = randomImage(ownDisk, 64 * MiB);
    const own = await startServerProcess(['serve', '--disk', ownDisk, '--socket', path, '--listen', '127.0.0.1:0', ...mode, '--stall-timeout', stallTimeout]);
    return { path, ownContent, own };
  }

  it('a read-only serve sends cached data from the page cache: clients that do not read hold no request memory, get every byte once they read, and do not hold up shutdown', async () => {
    const { path, ownContent, own } = await ownServer('page-cache', '600', ['--read-only']);
    const pid = own.child.pid as number;
    let stopped = false;
    try {
      // Warm: the page cache holds the image (randomImage wrote it), and the server has its code and buffers.
      await mustRun('nbdcopy', ['-C', '1', `nbd+unix:///source?socket=${path}`, 'null:']);
      const before = await settledRss(pid);
      const hogs = await readHogs({ path });
      const held = (await settledRss(pid)) - before;
      // Copied into request memory, the same hogs take the whole budget (256 MiB; the first case).
      console.log(`${HOGS} clients not reading cached data: server RSS grew ${(held / MiB).toFixed(0)} MiB`);
      expect(held).toBeLessThan(32 * MiB);

      // One hog reads after all: its four replies arrive whole and in the stream's order, each with its own data.
      const reader = hogs[0] as RawNbdClient;
      reader.socket.resume();
      const seen = new Set<bigint>();
      for (let k = 0; k < 4; k++) {
        const reply = await reader.readSimpleReply(32 * MiB);
        expect(reply.error).toBe(0);
        const at = Number(reply.cookie) * 8 * MiB;
        expect(reply.data.equals(ownContent.subarray(at, at + 32 * MiB))).toBe(true);
        seen.add(reply.cookie);
      }
      expect(seen.size).toBe(4);

      // The others still read nothing: shutdown answers what they asked (copied now) and cuts them off, instead of waiting for them.
      expect(await own.stop()).toBe(0);
      stopped = true;
      for (const c of hogs) c.close();
    } finally {
      if (!stopped) expect(await own.stop()).toBe(0);
    }
  }, 90_000);

  it('clients that send most of a large write and stall hold at most the budget, and give it all back when they go', async () => {
    const { path, ownContent, own } = await ownServer('writes', '600');
    try {
      await writeHogs(own, path, ownContent);
    } finally {
      expect(await own.stop()).toBe(0);
    }
  });

  it('clients that hold the budget and make no progress are disconnected after --stall-timeout while others wait: large requests are served again', async () => {
    const { path, ownContent, own } = await ownServer('stall', '1');
    try {
      const hogs = await readHogs(tcpTarget(own));
      // One that stalls in the middle of a write's payload instead.
      const writer = await RawNbdClient.attach({ path }, 'source');
      writer.sendRequest({ type: WRITE, cookie: 1n, offset: 0, length: 32 * MiB });
      writer.write(Buffer.alloc(31 * MiB));
      hogs.push(writer);

      // 16 MiB requests need room in the budget the hogs hold: without the stall timeout they would wait for ever.
      const copy = dir.file('copy3.img');
      await mustRun('nbdcopy', ['-C', '1', '--request-size', String(16 * MiB), `nbd+unix:///source?socket=${path}`, copy], { timeoutMs: 30_000 });
      expect(readFileSync(copy).equals(ownContent)).toBe(true);
      const dropped = own.stderr().match(/disconnecting the client: it holds .* of request memory that other clients wait for, and has neither read its replies nor sent the rest of a request for \d+\.\d s \(--stall-timeout\)/g) ?? [];
      // Only while someone waits: once the copy has room, the hogs left are left alone.
      console.log(`stalled clients dropped while the copy waited: ${dropped.length} of ${hogs.length}`);
      expect(dropped.length).toBeGreaterThan(0);
      for (const c of hogs) c.close();
      await Promise.all(hogs.map((c) => c.closed));
    } finally {
      expect(await own.stop()).toBe(0);
    }
  }, 90_000);

  async function writeHogs(own: ServerProcess, socketPath: string, content: Buffer): Promise<void> {
    const pid = own.child.pid as number;
    await mustRun('nbdcopy', ['-C', '1', `nbd+unix:///source?socket=${socketPath}`, 'null:']);
    const before = await settledRss(pid);
    const part = Buffer.alloc(31 * MiB);
    const hogs: RawNbdClient[] = [];
    for (let i = 0; i < 16; i++) {
      const c = await RawNbdClient.attach({ path: socketPath }, 'source');
      // 31 of the write's 32 MiB, then nothing: its payload buffer waits, half received, for bytes that never come.
      c.sendRequest({ type: WRITE, cookie: 1n, offset: 0, length: 32 * MiB });
      c.write(part);
      hogs.push(c);
    }
    const held = (await settledRss(pid)) - before;
    // Without the budget the server takes in every payload: 16 × 31 MiB.
    const bound = BUDGET + 32 * MiB + 16 * GUARANTEED_REQUEST_BYTES + 32 * MiB;
    console.log(`16 stalled 32 MiB writes: server RSS grew ${(held / MiB).toFixed(0)} MiB (bound ${(bound / MiB).toFixed(0)} MiB)`);
    expect(held).toBeLessThan(bound);

    for (const c of hogs) c.close();
    await Promise.all(hogs.map((c) => c.closed));
    // A payload still arriving when its connection closed gave its share back: 16 MiB requests go through, not wait.
    const copy = dir.file('copy2.img');
    await mustRun('nbdcopy', ['-C', '1', '--request-size', String(16 * MiB), `nbd+unix:///source?socket=${socketPath}`, copy], { timeoutMs: 60_000 });
    expect(readFileSync(copy).equals(content)).toBe(true);
  }
});
