import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawNbdClient, u16, u32 } from '../helpers/raw-nbd-client.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;
const READ = 0;
const WRITE = 1;
const DISC = 2;
const EINVAL = 22;
const ERR_UNSUP = 0x80000001;
const ERR_TOO_BIG = 0x80000009;
const ERR_UNKNOWN = 0x80000006;

describe('hostile and unusual clients (G7, G8)', () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  const socketPath = dir.file('nbd.sock');
  const controlPath = dir.file('control.sock');
  let server: ServerProcess;
  let content: Buffer;

  beforeAll(async () => {
    content = randomImage(disk, 4 * MiB);
    server = await startServerProcess(['serve', '--disk', disk, '--socket', socketPath, '--control', controlPath, '--handshake-timeout', '1', '--max-connections', '4']);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  });

  const connect = () => RawNbdClient.connect({ path: socketPath });

  it('answers unknown options (and EXTENDED_HEADERS) with ERR_UNSUP and haggling goes on to a working GO', async () => {
    const c = await connect();
    await c.greet();
    c.sendOption(11); // NBD_OPT_EXTENDED_HEADERS: newer QEMU asks first
    expect((await c.readOptionReply()).type).toBe(ERR_UNSUP);
    c.sendOption(0x1234, Buffer.from('whatever'));
    const unknown = await c.readOptionReply();
    expect(unknown.option).toBe(0x1234);
    expect(unknown.type).toBe(ERR_UNSUP);
    const { size } = await c.go('source');
    expect(size).toBe(4 * MiB);
    c.sendRequest({ type: READ, cookie: 7n, offset: 4096, length: 512 });
    const reply = await c.readSimpleReply(512);
    expect(reply.error).toBe(0);
    expect(reply.cookie).toBe(7n);
    expect(reply.data.equals(content.subarray(4096, 4608))).toBe(true);
    c.close();
  });

  it('refuses an unknown export by name with ERR_UNKNOWN, and an oversized option with ERR_TOO_BIG, then carries on', async () => {
    const c = await connect();
    await c.greet();
    const name = Buffer.from('no-such-export');
    c.sendOption(7, Buffer.concat([u32(name.length), name, u16(0)]));
    const reply = await c.readOptionReply();
    expect(reply.type).toBe(ERR_UNKNOWN);
    c.sendOption(6, Buffer.alloc(MiB)); // NBD_OPT_INFO with an absurd payload
    expect((await c.readOptionReply()).type).toBe(ERR_TOO_BIG);
    expect((await c.go('source')).size).toBe(4 * MiB);
    c.close();
  });

  it('closes a client without FIXED_NEWSTYLE', async () => {
    const c = await connect();
    await c.read(18);
    c.write(u32(0));
    await c.closed;
    expect(c.isClosed).toBe(true);
  });

  it('drops a client that never finishes the handshake', async () => {
    const c = await connect();
    await c.read(18);
    // say nothing; the server's 1 s deadline must close us (bounded wait, not a timing assertion)
    await Promise.race([c.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not dropped within 15 s')), 15_000))]);
    expect(c.isClosed).toBe(true);
  });

  it('caps the number of connections; a refused client does not disturb the others', async () => {
    // A server of its own, so connections of other tests closing in the background do not count.
    const capDir = scratchDir();
    const capSocket = capDir.file('cap.sock');
    const capDisk = capDir.file('cap.img');
    randomImage(capDisk, 4 * MiB);
    const capped = await startServerProcess(['serve', '--disk', capDisk, '--socket', capSocket, '--max-connections', '3']);
    try {
      const held = [];
      for (let i = 0; i < 3; i++) {
        const c = await RawNbdClient.connect({ path: capSocket });
        await c.read(18);
        held.push(c);
      }
      const extra = await RawNbdClient.connect({ path: capSocket });
      await extra.closed;
      expect(extra.isClosed).toBe(true);
      // A client reconnecting in a loop does not flood the log: the first refusals, then every 1000th.
      for (let i = 0; i < 40; i++) await (await RawNbdClient.connect({ path: capSocket })).closed;
      expect(capped.stderr().match(/refusing client/g)?.length).toBe(10);
      // the held ones still work
      held[0].write(Buffer.from([0, 0, 0, 3]));
      expect((await held[0].go('source')).size).toBe(4 * MiB);

      // Clients that leave free their places: a DISC (the server answers by ending the connection, and must
      // still read on to see the client's close), a close in transmission, a close mid-handshake.
      held[1].write(Buffer.from([0, 0, 0, 3]));
      expect((await held[1].go('source')).size).toBe(4 * MiB);
      held[0].sendRequest({ type: DISC, cookie: 1n, offset: 0, length: 0 });
      await held[0].closed;
      held[1].close();
      held[2].close();
      let admitted = 0;
      for (let attempt = 0; attempt < 50 && admitted < 3; attempt++) {
        const again = await Promise.all([0, 1, 2].map(() => RawNbdClient.connect({ path: capSocket })));
        const greeted = await Promise.all(again.map((c) => c.read(18, 2000).then(() => true, () => false)));
        admitted = greeted.filter(Boolean).length;
        for (const c of again) c.close();
        if (admitted < 3) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(admitted).toBe(3);
    } finally {
      expect(await capped.stop()).toBe(0);
      capDir.cleanup();
    }
  });

  it('frees the place of a client that keeps its side open after the server ended the connection (ABORT, bad flags, DISC)', async () => {
    const capDir = scratchDir();
    const capSocket = capDir.file('half-open.sock');
    const capDisk = capDir.file('half-open.img');
    randomImage(capDisk, 4 * MiB);
    const capped = await startServerProcess(['serve', '--disk', capDisk, '--socket', capSocket, '--max-connections', '3', '--handshake-timeout', '1']);
    const hostile: RawNbdClient[] = [];
    try {
      const open = () => RawNbdClient.connect({ path: capSocket }, { halfOpen: true });
      const aborting = await open();
      await aborting.greet();
      aborting.sendOption(2); // NBD_OPT_ABORT
      const badFlags = await open();
      await badFlags.read(18);
      badFlags.write(u32(0x5)); // FIXED_NEWSTYLE plus a flag the server does not know
      const disconnecting = await open();
      await disconnecting.greet();
      await disconnecting.go('source');
      disconnecting.sendRequest({ type: DISC, cookie: 1n, offset: 0, length: 0 });
      hostile.push(aborting, badFlags, disconnecting);
      // Each is told the connection is over, and none of them closes its side.
      await Promise.all(hostile.map((c) => c.serverEnded));
      let admitted = false;
      for (let attempt = 0; attempt < 75 && !admitted; attempt++) {
        const c = await RawNbdClient.connect({ path: capSocket });
        admitted = await c.read(18, 2000).then(() => true, () => false);
        c.close();
        if (!admitted) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(admitted, 'a new client is greeted once the half-closed ones are cut off').toBe(true);
    } finally {
      for (const c of hostile) c.close();
      expect(await capped.stop()).toBe(0);
      capDir.cleanup();
    }
  });

  it('stops on SIGTERM with clients attached: a client that closes in return is let go, one that does not is cut off', async () => {
    const ownDir = scratchDir();
    const ownSocket = ownDir.file('stop.sock');
    const ownDisk = ownDir.file('stop.img');
    randomImage(ownDisk, 4 * MiB);
    const own = await startServerProcess(['serve', '--disk', ownDisk, '--socket', ownSocket, '-v']);
    try {
      const polite = await RawNbdClient.connect({ path: ownSocket });
      await polite.greet();
      await polite.go('source');
      // Keeps its side open after the server ends the connection (half-open), as a stuck client would.
      const stubborn = net.connect({ path: ownSocket, allowHalfOpen: true });
      stubborn.on('data', () => undefined);
      stubborn.on('error', () => undefined);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      expect(await own.stop('SIGTERM')).toBe(0);
      expect(Date.now() - started).toBeLessThan(10_000);
      await polite.closed;
      stubborn.destroy();
      const log = own.stdout() + own.stderr();
      // Only the stubborn one needed cutting off: the polite client's close was seen.
      expect(log.match(/cutting it off/g)?.length).toBe(1);
    } finally {
      await own.stop();
      ownDir.cleanup();
    }
  });

  it('disconnects on a bad request magic without hurting another connection', async () => {
    const victim = await connect();
    await victim.greet();
    await victim.go('source');
    const bystander = await connect();
    await bystander.greet();
    await bystander.go('source');
    victim.sendRequest({ type: READ, cookie: 1n, offset: 0, length: 512, magic: 0xdeadbeef });
    await victim.closed;
    bystander.sendRequest({ type: READ, cookie: 2n, offset: 0, length: 4096 });
    const reply = await bystander.readSimpleReply(4096);
    expect(reply.error).toBe(0);
    expect(reply.data.equals(content.subarray(0, 4096))).toBe(true);
    bystander.close();
  });

  it('answers a write longer than the maximum block size with EINVAL, skips its payload and carries on', async () => {
    const c = await connect();
    await c.greet();
    await c.go('source');
    const huge = 33 * MiB;
    c.sendRequest({ type: WRITE, cookie: 9n, offset: 0, length: huge }, Buffer.alloc(huge, 0xee));
    const refused = await c.readSimpleReply();
    expect(refused.cookie).toBe(9n);
    expect(refused.error).toBe(EINVAL);
    expect(readFileSync(disk).subarray(0, 16).equals(content.subarray(0, 16))).toBe(true);
    c.sendRequest({ type: READ, cookie: 10n, offset: 0, length: 16 });
    const after = await c.readSimpleReply(16);
    expect(after.data.equals(content.subarray(0, 16))).toBe(true);
    c.close();
  });

  it('answers many pipelined requests, each with its own cookie and data', async () => {
    const c = await connect();
    await c.greet();
    await c.go('source');
    const lengths = new Map<bigint, { offset: number; length: number }>();
    for (let i = 0; i < 300; i++) {
      const offset = (i * 7919 * 512) % (4 * MiB - 65536);
      const length = 512 * (1 + (i % 64));
      lengths.set(BigInt(i + 1), { offset, length });
      c.sendRequest({ type: READ, cookie: BigInt(i + 1), offset, length });
    }
    const seen = new Set<bigint>();
    for (let i = 0; i < 300; i++) {
      const header = await c.read(16);
      expect(header.readUInt32BE(0)).toBe(0x67446698);
      expect(header.readUInt32BE(4)).toBe(0);
      const cookie = header.readBigUInt64BE(8);
      const asked = lengths.get(cookie);
      expect(asked).toBeDefined();
      const data = await c.read(asked!.length);
      expect(data.equals(content.subarray(asked!.offset, asked!.offset + asked!.length))).toBe(true);
      seen.add(cookie);
    }
    expect(seen.size).toBe(300);
    c.sendRequest({ type: DISC, cookie: 0n, offset: 0, length: 0 });
    await c.closed;
  });
  it('the control socket: owner-only, and garbage, oversized headers, a huge body or a pile of idle connections neither crash it nor block status', async () => {
    expect(statSync(controlPath).mode & 0o777).toBe(0o600);
    const raw = (bytes: Buffer | string): Promise<string> =>
      new Promise((resolve) => {
        const s = net.connect(controlPath);
        let got = '';
        s.on('data', (c: Buffer) => (got += c.toString('latin1')));
        s.on('error', () => undefined);
        s.on('close', () => resolve(got));
        s.end(bytes);
      });
    // Refused (400, 431) — or, when the server closes while we are still sending, the reply is lost to the reset.
    // Either way the server must survive: status is asked below.
    expect(await raw(randomBytes(4096))).toMatch(/^(HTTP\/1\.1 400|$)/);
    expect(await raw(`GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(256 * 1024)}\r\n\r\n`)).toMatch(/^(HTTP\/1\.1 431|$)/);
    // A 64 MiB body the server never asked for: answered (404: no such request), drained without being kept.
    const body = await new Promise<number>((resolve, reject) => {
      const req = http.request({ socketPath: controlPath, method: 'POST', path: '/nothing-here', headers: { 'content-length': String(64 * MiB) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(MiB);
      let sent = 0;
      const pump = (): void => {
        while (sent < 64 && req.write(chunk)) sent++;
        if (sent < 64) req.once('drain', () => (sent++, pump()));
        else req.end();
      };
      pump();
    });
    expect(body).toBe(404);
    const idle = await Promise.all(Array.from({ length: 40 }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect(controlPath, () => resolve(s));
      s.on('error', () => undefined);
    })));
    try {
      const status = await new Promise<Record<string, unknown>>((resolve, reject) => {
        // The cap may refuse this one while the idle ones hold their slots: retry a bounded number of times after closing some.
        const attempt = (left: number): void => {
          http
            .get({ socketPath: controlPath, path: '/status' }, (res) => {
              let text = '';
              res.on('data', (c: Buffer) => (text += c.toString()));
              res.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
            })
            .on('error', (err) => {
              if (left === 0) return reject(err);
              idle.splice(0, 10).forEach((s) => s.destroy());
              setTimeout(() => attempt(left - 1), 100);
            });
        };
        attempt(4);
      });
      expect(status.phase).toBe('unsealed');
    } finally {
      for (const s of idle) s.destroy();
    }
    // The NBD side never noticed.
    const c = await connect();
    await c.greet();
    await c.go('source');
    c.sendRequest({ type: READ, cookie: 1n, offset: 0, length: 4096 });
    expect((await c.readSimpleReply(4096)).data.equals(content.subarray(0, 4096))).toBe(true);
    c.close();
  });
});
