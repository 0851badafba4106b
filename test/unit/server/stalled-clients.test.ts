import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log/logger.js';
import { ExportList } from '../../../src/server/export-table.js';
import { DEFAULT_SERVER_OPTIONS, NbdServer } from '../../../src/server/nbd-server.js';
import { RawNbdClient } from '../../helpers/raw-nbd-client.js';
import { scratchDir } from '../../helpers/scratch.js';
import { MemoryExport } from '../client/memory-export.js';

/**
 * The stall sweep (NbdServer): while a connection waits for room in the
 * memory budget, a client that holds part of it without progress is dropped
 * after stallTimeoutMs — and only such a client, not a slow one that reads.
 */
const MiB = 1024 * 1024;
const READ = 0;
const WRITE = 1;
const STALL_MS = 300;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(): Promise<{ path: string; warnings: string[]; data: Buffer; server: NbdServer }> {
  const dir = scratchDir();
  const path = dir.file('nbd.sock');
  const exp = new MemoryExport('mem', 16 * MiB);
  const warnings: string[] = [];
  const log = createLogger({ level: 'warn', write: (line) => warnings.push(line) });
  // A budget of one 4 MiB read: the second client's read waits for it.
  const server = new NbdServer(new ExportList([exp]), { ...DEFAULT_SERVER_OPTIONS, maxBufferedBytes: 4 * MiB, stallTimeoutMs: STALL_MS }, log);
  await server.listen({ kind: 'unix', path });
  cleanups.push(() => dir.cleanup(), () => server.close());
  return { path, warnings, data: exp.data, server };
}

async function attach(path: string): Promise<RawNbdClient> {
  const c = await RawNbdClient.attach({ path }, 'mem');
  cleanups.push(() => c.close());
  return c;
}

/** A client that reads, slowly: what Node has buffered (up to its high-water mark) every 30 ms. */
function drainSlowly(c: RawNbdClient): () => void {
  c.socket.pause();
  const timer = setInterval(() => c.socket.read(), 30);
  return () => {
    clearInterval(timer);
    c.socket.resume();
  };
}

describe('clients that hold the memory others wait for', () => {
  it('a client that reads its reply slowly, for many times the stall timeout, is not dropped', async () => {
    const { path, warnings, data, server } = await serve();
    const slow = await attach(path);
    const stop = drainSlowly(slow);
    slow.sendRequest({ type: READ, cookie: 1n, offset: 0, length: 4 * MiB });
    const slowReply = slow.readSimpleReply(4 * MiB);
    const waiting = await attach(path);
    const started = performance.now();
    waiting.sendRequest({ type: READ, cookie: 2n, offset: 4 * MiB, length: 4 * MiB });
    const reply = await slowReply;
    const took = performance.now() - started;
    stop();
    expect(reply.error).toBe(0);
    expect(reply.data.equals(data.subarray(0, 4 * MiB))).toBe(true);
    const second = await waiting.readSimpleReply(4 * MiB);
    expect(second.data.equals(data.subarray(4 * MiB, 8 * MiB))).toBe(true);
    console.log(`slow client read 4 MiB in ${Math.round(took)} ms with a ${STALL_MS} ms stall timeout`);
    // The case means something only if reading took longer than the timeout.
    expect(took).toBeGreaterThan(2 * STALL_MS);
    expect(slow.isClosed).toBe(false);
    expect(server.droppedStalled).toBe(0);
    expect(warnings.filter((w) => /disconnecting/.test(w))).toEqual([]);
  });

  it('a client that does not read is dropped while another waits, and not before', async () => {
    const { path, warnings, data, server } = await serve();
    const hog = await attach(path);
    hog.socket.pause();
    hog.sendRequest({ type: READ, cookie: 1n, offset: 0, length: 4 * MiB });
    // Alone, it harms no one: it keeps its connection however long it sits.
    await new Promise((resolve) => setTimeout(resolve, 4 * STALL_MS));
    expect(hog.isClosed).toBe(false);
    expect(warnings).toEqual([]);

    const waiting = await attach(path);
    waiting.sendRequest({ type: READ, cookie: 2n, offset: 4 * MiB, length: 4 * MiB });
    const reply = await waiting.readSimpleReply(4 * MiB);
    expect(reply.data.equals(data.subarray(4 * MiB, 8 * MiB))).toBe(true);
    // Reading again, the hog finds its connection closed by the server.
    hog.socket.resume();
    await hog.closed;
    expect(warnings.join('\n')).toMatch(/\[c1\] disconnecting the client: it holds 4\.0 MiB of request memory that other clients wait for, and has neither read its replies nor sent the rest of a request for \d+\.\d s \(--stall-timeout\)/);
    expect(warnings.filter((w) => /disconnecting/.test(w))).toHaveLength(1);
    expect(server.droppedStalled).toBe(1);
  });

  it('a client that stops in the middle of a write payload is dropped while another waits', async () => {
    const { path, warnings, data } = await serve();
    const writer = await attach(path);
    // 3 of the write's 4 MiB: its payload buffer, the whole budget, waits for the rest.
    writer.sendRequest({ type: WRITE, cookie: 1n, offset: 0, length: 4 * MiB });
    writer.write(Buffer.alloc(3 * MiB, 0xee));
    await new Promise((resolve) => setTimeout(resolve, 2 * STALL_MS));
    const waiting = await attach(path);
    waiting.sendRequest({ type: READ, cookie: 2n, offset: 0, length: 4 * MiB });
    const reply = await waiting.readSimpleReply(4 * MiB);
    expect(reply.data.equals(data.subarray(0, 4 * MiB))).toBe(true);
    await writer.closed;
    expect(warnings.join('\n')).toMatch(/\[c1\] disconnecting the client: it holds 4\.0 MiB of request memory/);
    // The write never completed: nothing of it reached the export.
    expect(data.subarray(0, 4 * MiB).every((b) => b !== 0xee)).toBe(true);
  });
});
