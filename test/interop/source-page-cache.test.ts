import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { evictFromPageCache } from '../helpers/page-cache.js';
import { RawNbdClient } from '../helpers/raw-nbd-client.js';
import { runTool, type ToolResult } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * Before sealing, the source sends cached reads from the page cache: the
 * socket holds the disk's pages until the client reads them. Once sealed, a
 * destination write may land on those bytes, so seal waits until every such
 * reply has been read (G2) — and on TCP, where the server cannot tell, the
 * replies are copied.
 */
const MiB = 1024 * 1024;
const READ = 0;
const WRITE = 1;
const FLUSH = 3;
/** On the repository's file system, as a disk would be. */
const SCRATCH = fileURLToPath(new URL('../../.cache/test-scratch/', import.meta.url));
const cleanup = useCleanups();

const cli = (args: string[]): Promise<ToolResult> => runTool(process.execPath, [CLI, ...args], { timeoutMs: 60_000 });

async function serveUnsealed(serveArgs: string[] = []): Promise<{ disk: string; original: Buffer; control: string; socket: string; server: ServerProcess; port: number }> {
  const dir = scratchDir('nbd-remapper-source-page-cache-', SCRATCH);
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  const original = randomImage(disk, 16 * MiB);
  const control = dir.file('control.sock');
  const socket = dir.file('nbd.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', socket, '--listen', '127.0.0.1:0', '--control', control, ...serveArgs]);
  cleanup(async () => {
    await server.stop();
  });
  const port = Number(new URL(server.uri('source', 'tcp')).port);
  return { disk, original, control, socket, server, port };
}

async function expectSealed(control: string): Promise<void> {
  const sealed = await cli(['seal', '--control', control]);
  expect(sealed.code, sealed.stderr).toBe(0);
}

/** Four 1 MiB reads of [0, 4 MiB) that the client does not read yet. */
async function unreadReads(client: RawNbdClient): Promise<void> {
  client.socket.pause();
  for (let k = 0; k < 4; k++) client.sendRequest({ type: READ, cookie: BigInt(k + 1), offset: k * MiB, length: MiB });
  // The server answers at once; the replies wait in the socket.
  await new Promise((resolve) => setTimeout(resolve, 300));
}

/** unreadReads, then a bad request magic: the server drops the connection. What it sent stays in the client's queue. */
async function unreadReadsThenCutOff(client: RawNbdClient): Promise<void> {
  await unreadReads(client);
  client.sendRequest({ type: READ, cookie: 99n, offset: 0, length: 4096, magic: 0xdeadbeef });
  await new Promise((resolve) => setTimeout(resolve, 300));
}

/** Reads the four replies and checks each against the original bytes. */
async function readReplies(client: RawNbdClient, original: Buffer): Promise<void> {
  client.socket.resume();
  for (let n = 0; n < 4; n++) {
    const reply = await client.readSimpleReply(MiB);
    expect(reply.error).toBe(0);
    const at = (Number(reply.cookie) - 1) * MiB;
    expect(reply.data.equals(original.subarray(at, at + MiB)), `reply ${reply.cookie} holds the original bytes`).toBe(true);
  }
}

function diskBytes(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const out = Buffer.alloc(length);
    readSync(fd, out, 0, length, offset);
    return out;
  } finally {
    closeSync(fd);
  }
}

it('seal refuses while a unix client has not read replies sent from the page cache, names the cause and the fix, and seals once it has', async () => {
  const m = await serveUnsealed();
  const reader = await RawNbdClient.attach({ path: m.socket }, 'source');
  cleanup(() => reader.close());
  await unreadReads(reader);

  const refused = await cli(['seal', '--control', m.control]);
  expect(refused.code).not.toBe(0);
  // Those the socket took before it filled; the others waited, and are copied from the seal on.
  expect(refused.stderr).toMatch(/[1-4] read repl(y|ies) of source sent before sealing ha(s|ve) not been read by (its client|their clients) within 5 s/);
  expect(refused.stderr).toMatch(/disconnect them \(umount, then nbd-client -d\), and seal again/);
  // Refused, not half done: the source still takes writes.
  const writer = await RawNbdClient.attach({ path: m.socket }, 'source');
  cleanup(() => writer.close());
  writer.sendRequest({ type: WRITE, cookie: 9n, offset: 8 * MiB, length: 4096 }, m.original.subarray(8 * MiB, 8 * MiB + 4096));
  expect((await writer.readSimpleReply()).error).toBe(0);

  await readReplies(reader, m.original);
  await expectSealed(m.control);
}, 60_000);

it('a unix client that goes without reading does not hold up the seal', async () => {
  const m = await serveUnsealed();
  const reader = await RawNbdClient.attach({ path: m.socket }, 'source');
  await unreadReads(reader);
  reader.close();
  await reader.closed;
  await expectSealed(m.control);
}, 60_000);

it('connections leave no descriptor behind, whether their reads went from the page cache or not', async () => {
  const m = await serveUnsealed();
  const fds = (): number => readdirSync(`/proc/${m.server.child.pid}/fd`).length;
  const before = fds();
  for (const cached of [true, false]) {
    // Not cached: the server makes ready to watch the reply, then copies it after all.
    if (!cached) evictFromPageCache(m.disk);
    const reader = await RawNbdClient.attach({ path: m.socket }, 'source');
    reader.sendRequest({ type: READ, cookie: 1n, offset: 0, length: MiB });
    expect((await reader.readSimpleReply(MiB)).data.equals(m.original.subarray(0, MiB))).toBe(true);
    reader.close();
    await reader.closed;
  }
  // The server sees the closes and lets go within a few polls.
  for (let i = 0; i < 50 && fds() !== before; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(fds()).toBe(before);
}, 60_000);

it('a client the server cuts off can still read what it was sent: seal waits for that too, and seals once it has', async () => {
  const m = await serveUnsealed();
  const reader = await RawNbdClient.attach({ path: m.socket }, 'source');
  cleanup(() => reader.close());
  await unreadReadsThenCutOff(reader);
  const refused = await cli(['seal', '--control', m.control]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/not been read by/);

  reader.socket.resume();
  let whole = 0;
  for (;;) {
    let reply;
    try {
      reply = await reader.readSimpleReply(MiB);
    } catch {
      break; // the end of the stream (a reply cut off by the drop included)
    }
    const at = (Number(reply.cookie) - 1) * MiB;
    expect(reply.data.equals(m.original.subarray(at, at + MiB))).toBe(true);
    whole++;
  }
  expect(whole).toBeGreaterThan(0);
  await expectSealed(m.control);
}, 60_000);

it('on TCP the replies are copied: sealed at once, and a reply read after destination data landed on its bytes still holds the originals (G2)', async () => {
  // A cache of 1 MiB: the destination's 4 MiB cannot all be held, and lands on the released blocks.
  const m = await serveUnsealed(['--cache', '1M']);
  const late = await RawNbdClient.attach({ host: '127.0.0.1', port: m.port }, 'source');
  cleanup(() => late.close());
  await unreadReads(late);
  await expectSealed(m.control);

  // Another client reads the sealed source there (releasing the blocks), then the destination is written over them.
  const copier = await RawNbdClient.attach({ path: m.socket }, 'source');
  cleanup(() => copier.close());
  copier.sendRequest({ type: READ, cookie: 1n, offset: 0, length: 4 * MiB });
  expect((await copier.readSimpleReply(4 * MiB)).data.equals(m.original.subarray(0, 4 * MiB))).toBe(true);
  const destination = await RawNbdClient.attach({ path: m.socket }, 'destination');
  cleanup(() => destination.close());
  const pattern = Buffer.alloc(4 * MiB, 0x5a);
  destination.sendRequest({ type: WRITE, cookie: 2n, offset: 0, length: 4 * MiB }, pattern);
  expect((await destination.readSimpleReply()).error).toBe(0);
  destination.sendRequest({ type: FLUSH, cookie: 3n, offset: 0, length: 0 });
  expect((await destination.readSimpleReply()).error).toBe(0);
  // The destination data is on the disk now (all but what the cache holds), where the late reader's bytes were.
  const onDisk = diskBytes(m.disk, 0, 4 * MiB);
  let landed = 0;
  for (let at = 0; at < onDisk.length; at += 4096) if (onDisk.subarray(at, at + 4096).equals(pattern.subarray(0, 4096))) landed++;
  console.log(`destination blocks landed where the late reader's bytes were: ${landed} of 1024`);
  expect(landed).toBeGreaterThanOrEqual(512);

  await readReplies(late, m.original);
}, 60_000);

async function statusOf(control: string): Promise<{ released: number; landed: number; heldInRam: number; phase: string }> {
  const status = await cli(['status', '--json', '--control', control]);
  expect(status.code, status.stderr).toBe(0);
  return JSON.parse(status.stdout) as { released: number; landed: number; heldInRam: number; phase: string };
}

/** A sealed server with a 1 MiB cache, and a unix client of source that has not read its replies of [0, 4 MiB). */
async function sealedWithUnreadReplies(): Promise<{ m: Awaited<ReturnType<typeof serveUnsealed>>; late: RawNbdClient }> {
  const m = await serveUnsealed(['--cache', '1M']);
  await expectSealed(m.control);
  const late = await RawNbdClient.attach({ path: m.socket }, 'source');
  cleanup(() => late.close());
  await unreadReads(late);
  return { m, late };
}

it('once sealed, blocks under a unix reply from the page cache are released only when it is read: destination data for them is held meanwhile, and the reply holds the originals (G2)', async () => {
  const { m, late } = await sealedWithUnreadReplies();
  // Sent from the page cache and unread, or not sent yet: none of those blocks may be overwritten, so none is released.
  expect((await statusOf(m.control)).released).toBe(0);

  // A checkpoint confirms what was released: were those blocks released, the write below would land on them at once.
  const checkpoint = await cli(['checkpoint', '--control', m.control]);
  expect(checkpoint.code, checkpoint.stderr).toBe(0);
  // The destination writes over the first 512 KiB of those blocks (identity map: same homes): held in RAM, not landed.
  const destination = await RawNbdClient.attach({ path: m.socket }, 'destination');
  cleanup(() => destination.close());
  const pattern = Buffer.alloc(512 * 1024, 0x5a);
  destination.sendRequest({ type: WRITE, cookie: 2n, offset: 0, length: pattern.length }, pattern);
  expect((await destination.readSimpleReply()).error).toBe(0);
  const held = await statusOf(m.control);
  expect(held.landed).toBe(0);
  expect(held.heldInRam).toBe(128);
  expect(diskBytes(m.disk, 0, pattern.length).equals(m.original.subarray(0, pattern.length))).toBe(true);

  await readReplies(late, m.original);
  // Read now: released as each whole reply was (one the socket took part of at first releases its rest only).
  let released = 0;
  for (let i = 0; i < 100 && released === 0; i++) {
    released = (await statusOf(m.control)).released;
    if (released === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(released).toBeGreaterThanOrEqual(256);
  late.close();
  await late.closed;
  destination.close();
  await destination.closed;

  const finished = await cli(['finish', '--control', m.control]);
  expect(finished.code, finished.stderr).toBe(0);
  expect(diskBytes(m.disk, 0, pattern.length).equals(pattern)).toBe(true);
  expect(diskBytes(m.disk, pattern.length, 4 * MiB).equals(m.original.subarray(pattern.length, pattern.length + 4 * MiB))).toBe(true);
}, 60_000);

it('finish waits for a reply from the page cache that a client the server cut off has not read, and finishes once it has', async () => {
  const m = await serveUnsealed();
  await expectSealed(m.control);
  const reader = await RawNbdClient.attach({ path: m.socket }, 'source');
  cleanup(() => reader.close());
  await unreadReadsThenCutOff(reader);
  const refused = await cli(['finish', '--control', m.control]);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/finish refused: [1-4] read repl(y|ies) of source sent from the page cache ha(s|ve) not been read by (its client|their clients) within 5 s/);
  expect(refused.stderr).toMatch(/let the client read what it was sent or close its connection/);
  expect((await statusOf(m.control)).phase).toBe('sealed');

  reader.socket.resume();
  for (;;) {
    try {
      const reply = await reader.readSimpleReply(MiB);
      const at = (Number(reply.cookie) - 1) * MiB;
      expect(reply.data.equals(m.original.subarray(at, at + MiB))).toBe(true);
    } catch {
      break;
    }
  }
  const finished = await cli(['finish', '--control', m.control]);
  expect(finished.code, finished.stderr).toBe(0);
}, 60_000);

it('a destination write that needs the blocks of unix replies not read yet waits for their client to read them instead of failing ENOSPC, and fails once that client does not (G9)', async () => {
  // [0, 4 MiB) sent from the page cache and unread: nothing is released yet.
  const { m, late } = await sealedWithUnreadReplies();
  const destination = await RawNbdClient.attach({ path: m.socket }, 'destination');
  cleanup(() => destination.close());
  // 2 MiB whose homes are unread: 1 MiB fills the cache, the rest needs spill room that only those replies' blocks give.
  destination.sendRequest({ type: WRITE, cookie: 7n, offset: 8 * MiB, length: 2 * MiB }, Buffer.alloc(2 * MiB, 0x5a));
  const written = destination.readSimpleReply();
  await new Promise((resolve) => setTimeout(resolve, 200));
  // The copier's case: it reads what it asked for a moment later (a read-ahead still in its socket when it writes).
  await readReplies(late, m.original);
  expect((await written).error).toBe(0);
  expect((await statusOf(m.control)) as unknown as { enospc: number }).toMatchObject({ enospc: 0 });

  // A client that keeps its replies unread holds the write up only for a bounded grace: then ENOSPC, as before.
  const stalled = await RawNbdClient.attach({ path: m.socket }, 'source');
  cleanup(() => stalled.close());
  stalled.socket.pause();
  for (let k = 0; k < 4; k++) stalled.sendRequest({ type: READ, cookie: BigInt(k + 1), offset: (4 + k) * MiB, length: MiB });
  await new Promise((resolve) => setTimeout(resolve, 300));
  // 3 MiB of spill room is left in [0, 4 MiB): a 4 MiB write needs 1 MiB more, which only the stalled replies could give.
  destination.sendRequest({ type: WRITE, cookie: 8n, offset: 12 * MiB, length: 4 * MiB }, Buffer.alloc(4 * MiB, 0xa5));
  expect((await destination.readSimpleReply()).error).toBe(28);
  expect((await statusOf(m.control)) as unknown as { enospc: number }).toMatchObject({ enospc: 1 });
}, 60_000);
