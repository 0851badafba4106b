import net from 'node:net';
import {
  Command,
  Errno,
  HandshakeMachine,
  NbdError,
  REQUEST_MAGIC,
  decodeRequest,
  encodeSimpleReply,
  type ExportRegistry,
} from 'nbd-protocol-ts';
import { afterEach, describe, expect, it } from 'vitest';
import { rejection } from '../../helpers/rejection.js';
import { NbdClient } from '../../../src/client/nbd-client.js';
import { NbdClientError } from '../../../src/client/nbd-client-error.js';
import { silentLogger } from '../../../src/log/logger.js';
import type { BlockExport } from '../../../src/server/block-export.js';
import { ExportList, registryOf } from '../../../src/server/export-table.js';
import { DEFAULT_SERVER_OPTIONS, NbdServer } from '../../../src/server/nbd-server.js';
import { scratchDir } from '../../helpers/scratch.js';
import { MemoryExport } from './memory-export.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Our own server, in process, on a unix socket. */
async function serve(...exports: BlockExport[]): Promise<{ uri(name: string): string; server: NbdServer }> {
  const dir = scratchDir();
  const path = dir.file('nbd.sock');
  const server = new NbdServer(new ExportList(exports), DEFAULT_SERVER_OPTIONS, silentLogger);
  await server.listen({ kind: 'unix', path });
  cleanups.push(() => dir.cleanup(), () => server.close());
  return { uri: (name) => `nbd+unix:///${name}?socket=${path}`, server };
}

/** A server whose every move a test scripts, for misbehaviour our own server never shows. */
async function scripted(onConnection: (socket: net.Socket) => void): Promise<{ uri: string; received: Buffer[] }> {
  const dir = scratchDir();
  const path = dir.file('scripted.sock');
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(
    () => dir.cleanup(),
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { uri: `nbd+unix:///mem?socket=${path}`, received };
}

/** Runs the real handshake for one export, then hands the socket to `transmission`. */
function handshakeThen(registry: ExportRegistry, transmission: (socket: net.Socket) => void): (socket: net.Socket) => void {
  return (socket) => {
    const machine = new HandshakeMachine(registry);
    socket.write(machine.greeting());
    const onData = (chunk: Buffer): void => {
      for (const event of machine.push(chunk)) {
        if (event.type === 'send') socket.write(event.data);
        else if (event.type === 'close') socket.end();
        else if (event.type === 'done') {
          socket.off('data', onData);
          transmission(socket);
        }
      }
    };
    socket.on('data', onData);
  };
}

function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

describe.each([true, false])('NbdClient against our server (structured replies: %s)', (structuredReplies) => {
  it('negotiates size, flags and block size, then reads, writes, zeroes, trims and flushes', async () => {
    const mem = new MemoryExport('mem', 256 * 1024);
    const { uri } = await serve(mem);
    const client = await NbdClient.connect(uri('mem'), { structuredReplies });
    cleanups.push(() => client.close());
    expect(client.size).toBe(256 * 1024);
    expect(client.structuredReplies).toBe(structuredReplies);
    expect(client.blockSizeAdvertised).toBe(true);
    expect(client.blockSize).toEqual({ minimum: 1, preferred: 4096, maximum: 1024 * 1024 });
    expect([client.readOnly, client.canFlush, client.canFua, client.canTrim, client.canWriteZeroes, client.canFastZero]).toEqual([false, true, true, true, true, false]);

    const data = pattern(10_000, 1);
    await client.pwrite(1000, data, { fua: true });
    expect(mem.data.subarray(1000, 11_000).equals(data)).toBe(true);
    expect((await client.pread(1000, 10_000)).equals(data)).toBe(true);
    await client.zero(2000, 3000);
    expect((await client.pread(2000, 3000)).equals(Buffer.alloc(3000))).toBe(true);
    await client.trim(8000, 100);
    expect(mem.data[8000]).toBe(0xdd);
    await client.flush();
    expect(mem.arrivals).toContain('flush 0');
    expect((await client.pread(0, 0)).length).toBe(0);
  });

  it('pipelines: many requests in flight, answered out of order, sent in call order, bounded by maxInFlight', async () => {
    const mem = new MemoryExport('mem', 1024 * 1024, {}, undefined, 5);
    const { uri } = await serve(mem);
    const client = await NbdClient.connect(uri('mem'), { structuredReplies, maxInFlight: 6 });
    cleanups.push(() => client.close());
    const blocks = 64;
    await Promise.all([...Array(blocks)].map((_, i) => client.pwrite(i * 4096, pattern(4096, i))));
    const reads = await Promise.all([...Array(blocks)].map((_, i) => client.pread(i * 4096, 4096)));
    reads.forEach((buf, i) => expect(buf.equals(pattern(4096, i))).toBe(true));
    expect(mem.maxActive).toBeLessThanOrEqual(6);
    expect(mem.maxActive).toBeGreaterThan(1);
    const readArrivals = mem.arrivals.filter((a) => a.startsWith('read'));
    expect(readArrivals).toEqual([...Array(blocks)].map((_, i) => `read ${i * 4096}`));
    expect(client.requestsInFlight).toBe(0);
  });

  it('fails a request with the server\'s errno and a message naming the operation, range and URI; others go on', async () => {
    const mem = new MemoryExport('mem', 64 * 1024);
    mem.faults.push({ op: 'write', offset: 8192, errno: Errno.ENOSPC, message: 'out of cache and spill room' });
    mem.faults.push({ op: 'read', offset: 4096, errno: Errno.EIO, message: 'original is gone' });
    const { uri } = await serve(mem);
    const client = await NbdClient.connect(uri('mem'), { structuredReplies });
    cleanups.push(() => client.close());
    const [before, failed, after] = await Promise.allSettled([client.pwrite(0, Buffer.alloc(4096, 1)), client.pwrite(8192, Buffer.alloc(4096, 2)), client.pwrite(12_288, Buffer.alloc(4096, 3))]);
    expect(before.status).toBe('fulfilled');
    expect(after.status).toBe('fulfilled');
    expect(failed.status).toBe('rejected');
    const err = (failed as PromiseRejectedResult).reason as NbdError;
    expect(err).toBeInstanceOf(NbdError);
    expect(err.errno).toBe(Errno.ENOSPC);
    expect(err.message).toContain(`WRITE of 4096 bytes at offset 8192 on ${uri('mem')} failed with ENOSPC`);
    // Only structured replies carry the server's words.
    if (structuredReplies) expect(err.message).toContain('out of cache and spill room');
    else expect(err.message).not.toContain('out of cache');

    const readErr = await rejection(client.pread(4096, 100));
    expect(readErr).toBeInstanceOf(NbdError);
    expect((readErr as NbdError).errno).toBe(Errno.EIO);
    expect(readErr.message).toContain('READ of 100 bytes at offset 4096');
    // The connection is still good.
    expect((await client.pread(0, 4096)).equals(Buffer.alloc(4096, 1))).toBe(true);
  });
});

describe('NbdClient refuses what the export did not negotiate, without sending it', () => {
  it('writes to a read-only export fail with EPERM; zeroes and trims without support are refused; ranges are checked', async () => {
    const ro = new MemoryExport('ro', 8192, { readOnly: true, writeZeroes: false, trim: false, flush: false, fua: false });
    const aligned = new MemoryExport('aligned', 8192 + 100, {}, { minimum: 512, preferred: 4096, maximum: 4096 });
    const { uri } = await serve(ro, aligned);
    const client = await NbdClient.connect(uri('ro'));
    cleanups.push(() => client.close());
    expect(client.readOnly).toBe(true);
    const eperm = await rejection(client.pwrite(0, Buffer.alloc(10)));
    expect((eperm as NbdError).errno).toBe(Errno.EPERM);
    expect(eperm.message).toMatch(/read-only/);
    expect(((await rejection(client.zero(0, 10))) as NbdClientError).kind).toBe('unsupported');
    expect(((await rejection(client.trim(0, 10))) as NbdClientError).kind).toBe('unsupported');
    expect(((await rejection(client.flush())) as NbdClientError).kind).toBe('unsupported');
    expect(await rejection(client.pread(8000, 200))).toBeInstanceOf(RangeError);
    expect(ro.arrivals).toEqual([]);

    const a = await NbdClient.connect(uri('aligned'));
    cleanups.push(() => a.close());
    expect((await rejection(a.pread(100, 512))).message).toMatch(/minimum block size of 512/);
    expect((await rejection(a.pread(0, 8192))).message).toMatch(/maximum payload of 4096/);
    // The last partial block of an export is reachable.
    expect((await a.pread(8192, 100)).length).toBe(100);
  });
});

describe('NbdClient connection errors name the cause and the fix', () => {
  it('no server at the socket', async () => {
    const dir = scratchDir();
    cleanups.push(() => dir.cleanup());
    const uri = `nbd+unix:///source?socket=${dir.file('missing.sock')}`;
    const err = (await rejection(NbdClient.connect(uri))) as NbdClientError;
    expect(err).toBeInstanceOf(NbdClientError);
    expect(err.kind).toBe('connect');
    expect(err.message).toContain(`no NBD server at ${uri}`);
    expect(err.fix).toMatch(/nbd-remapper serve/);
  });

  it('nothing listening on a TCP port', async () => {
    // Bind and release a port so that (almost certainly) nobody listens there.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const address = probe.address() as net.AddressInfo;
        probe.close(() => resolve(address.port));
      });
    });
    const err = (await rejection(NbdClient.connect(`nbd://127.0.0.1:${port}/x`))) as NbdClientError;
    expect(err.kind).toBe('connect');
    expect(err.message).toContain(`nothing listens on 127.0.0.1:${port}`);
  });

  it('an unknown export lists the ones the server has', async () => {
    const { uri } = await serve(new MemoryExport('source', 4096), new MemoryExport('destination', 4096));
    const err = (await rejection(NbdClient.connect(uri('nope')))) as NbdClientError;
    expect(err.kind).toBe('handshake');
    expect(err.message).toMatch(/export 'nope' does not exist/);
    expect(err.fix).toContain("'source', 'destination'");
  });

  it('something that is not an NBD server', async () => {
    const { uri } = await scripted((socket) => socket.write('SSH-2.0-OpenSSH_9.6\r\n'));
    const err = (await rejection(NbdClient.connect(uri))) as NbdClientError;
    expect(err.kind).toBe('handshake');
    expect(err.message).toMatch(/does not answer like an NBD server/);
  });

  it('a server that hangs up during the handshake, and one that never answers', async () => {
    const hangUp = await scripted((socket) => socket.destroy());
    expect(((await rejection(NbdClient.connect(hangUp.uri))) as NbdClientError).message).toMatch(/closed the connection during the NBD handshake/);
    const silent = await scripted(() => undefined);
    const err = (await rejection(NbdClient.connect(silent.uri, { handshakeTimeoutMs: 200 }))) as NbdClientError;
    expect(err.kind).toBe('timeout');
    expect(err.message).toMatch(/did not finish connecting and the NBD handshake within 0.2 s/);
  });
});

describe('NbdClient in transmission', () => {
  const registry = registryOf(new ExportList([new MemoryExport('mem', 65536)]));

  it('fails every request in flight when the server drops the connection, and every later one', async () => {
    const { uri } = await scripted(handshakeThen(registry, (socket) => socket.once('data', () => socket.destroy())));
    const client = await NbdClient.connect(uri);
    const [a, b] = await Promise.allSettled([client.pread(0, 512), client.pread(512, 512)]);
    for (const r of [a, b]) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as NbdClientError;
      expect(err.kind).toBe('disconnected');
      expect(err.message).toMatch(/closed with 2 requests unanswered/);
    }
    expect(((await rejection(client.pread(0, 1))) as NbdClientError).kind).toBe('disconnected');
    await client.close();
  });

  it('drops a server that breaks the protocol (a reply to a request never made)', async () => {
    const { uri } = await scripted(handshakeThen(registry, (socket) => socket.once('data', () => socket.write(encodeSimpleReply(999n, 0)))));
    const client = await NbdClient.connect(uri, { structuredReplies: false });
    const err = (await rejection(client.pread(0, 512))) as NbdClientError;
    expect(err.kind).toBe('protocol');
    expect(err.message).toMatch(/broke the NBD protocol \(a reply for cookie 999/);
    await client.close();
  });

  it('close() waits for requests in flight, then sends NBD_CMD_DISC; later requests are refused', async () => {
    const requests: number[] = [];
    const { uri } = await scripted(
      handshakeThen(registry, (socket) => {
        let pending = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          pending = Buffer.concat([pending, chunk]);
          while (pending.length >= 28) {
            expect(pending.readUInt32BE(0)).toBe(REQUEST_MAGIC);
            const request = decodeRequest(pending);
            pending = pending.subarray(28);
            requests.push(request.type);
            if (request.type === Command.DISC) socket.end();
            // Answer late, so close() has something to wait for.
            else setImmediate(() => socket.write(encodeSimpleReply(request.cookie, 0)));
          }
        });
      }),
    );
    const client = await NbdClient.connect(uri, { structuredReplies: false });
    const flushed = client.flush();
    const closed = client.close();
    expect(((await rejection(client.pread(0, 1))) as NbdClientError).kind).toBe('closed');
    await flushed;
    await closed;
    expect(requests).toEqual([Command.FLUSH, Command.DISC]);
  });
});
