import type net from 'node:net';
import {
  Errno,
  NbdError,
  ReplyFlag,
  encodeChunkHeader,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHole,
  encodeSimpleReply,
} from 'nbd-protocol-ts';
import { afterEach, describe, expect, it } from 'vitest';
import { rejection } from '../../helpers/rejection.js';
import { NbdClient } from '../../../src/client/nbd-client.js';
import { NbdClientError } from '../../../src/client/nbd-client-error.js';
import { ExportList, registryOf } from '../../../src/server/export-table.js';
import { MemoryExport } from './memory-export.js';
import { handshakeThen, scriptedServer, seeded, writeInPieces, type RequestHeader } from './scripted-nbd-server.js';

const MiB = 1024 * 1024;
const DONE = ReplyFlag.DONE;
const SIZE = 64 * MiB;
const registry = registryOf(new ExportList([new MemoryExport('mem', SIZE, {}, { minimum: 1, preferred: 4096, maximum: 32 * MiB })]));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(onRequest: (socket: net.Socket, request: RequestHeader) => void, extra?: Buffer): Promise<string> {
  const server = await scriptedServer(handshakeThen(registry, onRequest, extra));
  cleanups.push(() => server.close());
  return server.uri;
}

async function connect(uri: string, structuredReplies: boolean): Promise<NbdClient> {
  const client = await NbdClient.connect(uri, { structuredReplies, maxInFlight: 64 });
  cleanups.push(() => client.destroy());
  return client;
}

/** What the export holds at each offset: recognisable, and different for every byte position mod 251. */
function contents(offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = ((offset + i) * 7 + 3) % 251;
  return out;
}

/**
 * The structured reply to a READ cut into data and hole chunks at random
 * places, in random order (DONE on the last), and what the client must make
 * of it: holes read as zeroes.
 */
function structuredReply(request: RequestHeader, random: (n: number) => number): { chunks: Buffer[]; expected: Buffer } {
  const cuts = new Set<number>([0, request.length]);
  for (let i = random(6); i > 0; i--) cuts.add(random(request.length));
  const edges = [...cuts].sort((a, b) => a - b);
  const expected = Buffer.alloc(request.length);
  const chunks: Buffer[] = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    const start = edges[i];
    const length = edges[i + 1] - start;
    if (random(3) === 0) {
      chunks.push(encodeOffsetHole(0, request.cookie, request.offset + start, length));
    } else {
      const data = contents(request.offset + start, length);
      data.copy(expected, start);
      chunks.push(Buffer.concat([encodeOffsetDataHeader(0, request.cookie, request.offset + start, length), data]));
    }
  }
  for (let i = chunks.length - 1; i > 0; i--) {
    const j = random(i + 1);
    [chunks[i], chunks[j]] = [chunks[j], chunks[i]];
  }
  // The flags are the u16 at byte 4 of every chunk header.
  const last = Buffer.from(chunks[chunks.length - 1]);
  last.writeUInt16BE(DONE, 4);
  chunks[chunks.length - 1] = last;
  return { chunks, expected };
}

/** Interleaves the replies' chunks (each reply's stay in order), as the spec lets a server do. */
function interleave(replies: Buffer[][], random: (n: number) => number): Buffer {
  const queues = replies.map((chunks) => [...chunks]);
  const out: Buffer[] = [];
  for (;;) {
    const open = queues.filter((q) => q.length > 0);
    if (open.length === 0) return Buffer.concat(out);
    out.push(open[random(open.length)].shift() as Buffer);
  }
}

const READS = [
  { offset: 0, length: 4 * MiB },
  { offset: 5 * MiB + 3, length: 100 },
  { offset: 7 * MiB, length: MiB + 5 },
  { offset: 9 * MiB, length: 1 },
  { offset: 10 * MiB + 1, length: 65_536 },
  { offset: 11 * MiB, length: 300_000 },
];

describe('NbdClient receives READ replies however the server splits, orders and interleaves them', () => {
  it.each([1, 2, 3])('structured replies, data and holes, chunks interleaved, written in pieces of every size (seed %i)', async (seed) => {
    const random = seeded(seed);
    let expected: Buffer[] = [];
    const requests: RequestHeader[] = [];
    const uri = await serve((socket, request) => {
      requests.push(request);
      if (requests.length < READS.length * 2) return;
      const replies = requests.map((r) => structuredReply(r, random));
      expected = replies.map((r) => r.expected);
      void writeInPieces(socket, interleave(replies.map((r) => r.chunks), random), 70_000, random);
    });
    const client = await connect(uri, true);
    const dirty = READS.map((r) => Buffer.alloc(r.length, 0xee));
    const [plain, into] = await Promise.all([
      Promise.all(READS.map((r) => client.pread(r.offset, r.length))),
      Promise.all(READS.map((r, i) => client.preadInto(dirty[i], r.offset))),
    ]);
    // Requests go out in call order: the preads, then the preadIntos.
    READS.forEach((_, i) => {
      expect(plain[i].equals(expected[i]), `pread ${i}`).toBe(true);
      expect(dirty[i].equals(expected[READS.length + i]), `preadInto ${i}`).toBe(true);
    });
    expect(into).toEqual(READS.map(() => undefined));
  });

  it('simple replies, answered in reverse order, written in pieces of every size', async () => {
    const random = seeded(4);
    const requests: RequestHeader[] = [];
    const uri = await serve((socket, request) => {
      requests.push(request);
      // The preads and the preadInto.
      if (requests.length !== READS.length + 1) return;
      const stream = Buffer.concat([...requests].reverse().flatMap((r) => [encodeSimpleReply(r.cookie, 0), contents(r.offset, r.length)]));
      void writeInPieces(socket, stream, 70_000, random);
    });
    const client = await connect(uri, false);
    const dirty = Buffer.alloc(READS[2].length, 0xee);
    const results = await Promise.all([...READS.map((r) => client.pread(r.offset, r.length)), client.preadInto(dirty, READS[2].offset)]);
    READS.forEach((r, i) => expect((results[i] as Buffer).equals(contents(r.offset, r.length)), `read ${i}`).toBe(true));
    expect(dirty.equals(contents(READS[2].offset, READS[2].length))).toBe(true);
  });
});

describe('NbdClient fails READs whose replies go wrong', () => {
  it.each([true, false])('a connection lost in the middle of a READ\'s data fails it and the others in flight (structured: %s)', async (structured) => {
    const uri = await serve((socket, request) => {
      if (request.offset !== 0) return;
      const header = structured ? encodeOffsetDataHeader(DONE, request.cookie, 0, request.length) : encodeSimpleReply(request.cookie, 0);
      socket.write(Buffer.concat([header, contents(0, request.length / 2)]));
      setImmediate(() => socket.destroy());
    });
    const client = await connect(uri, structured);
    const results = await Promise.allSettled([client.pread(4096, 512), client.pread(0, MiB)]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as NbdClientError;
      expect(err).toBeInstanceOf(NbdClientError);
      expect(err.kind).toBe('disconnected');
      expect(err.message).toMatch(/closed with 2 requests unanswered/);
    }
  });

  it('an error chunk fails the READ with the server\'s errno and words, even between its data chunks; the connection goes on', async () => {
    const uri = await serve((socket, request) => {
      if (request.offset === 0) {
        socket.write(Buffer.concat([
          encodeOffsetDataHeader(0, request.cookie, 0, 100_000),
          contents(0, 100_000),
          encodeErrorChunk(0, request.cookie, Errno.EIO, 'sector 7 unreadable'),
          encodeOffsetDataHeader(0, request.cookie, 100_000, request.length - 100_000),
          contents(100_000, request.length - 100_000),
          encodeErrorChunk(DONE, request.cookie, Errno.ENOSPC, 'a second error is not reported'),
        ]));
      } else {
        socket.write(Buffer.concat([encodeOffsetDataHeader(DONE, request.cookie, request.offset, request.length), contents(request.offset, request.length)]));
      }
    });
    const client = await connect(uri, true);
    const err = await rejection(client.pread(0, 200_000));
    expect(err).toBeInstanceOf(NbdError);
    expect((err as NbdError).errno).toBe(Errno.EIO);
    expect(err.message).toMatch(/READ of 200000 bytes at offset 0 on .* failed with EIO: sector 7 unreadable/);
    expect((await client.pread(MiB, 70_000)).equals(contents(MiB, 70_000))).toBe(true);
  });

  it.each([
    ['a chunk for a cookie never sent', (cookie: bigint) => Buffer.concat([encodeOffsetDataHeader(DONE, cookie + 1000n, 0, 10), Buffer.alloc(10)]), /a reply chunk for cookie \d+, which no request in flight has/],
    ['data outside the read', (cookie: bigint) => Buffer.concat([encodeOffsetDataHeader(DONE, cookie, 1_000_000, 10), Buffer.alloc(10)]), /a data chunk at 1000000\+10 lies outside the read at 0\+65536/],
    // Refused on its header alone: the payload is never sent.
    ['a chunk longer than the read could need', (cookie: bigint) => encodeChunkHeader(DONE, 1, cookie, 65_536 + 9), /a 65545-byte reply chunk for READ of 65536 bytes at offset 0/],
    ['a success that leaves bytes out', (cookie: bigint) => Buffer.concat([encodeOffsetDataHeader(0, cookie, 0, 10), Buffer.alloc(10), encodeNoneChunk(cookie)]), /sent only 10 bytes/],
    ['bad magic', () => Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex'), /bad reply magic 0x01020304/],
  ])('%s, mid-stream, drops the connection: every request in flight fails as a protocol error', async (_, reply, message) => {
    const uri = await serve((socket, request) => {
      if (request.offset === 0) {
        // A good data chunk for the other read, then the broken frame.
        socket.write(Buffer.concat([encodeOffsetDataHeader(0, request.cookie + 1n, 4096, 512), contents(4096, 512), reply(request.cookie)]));
      }
    });
    const client = await connect(uri, true);
    const results = await Promise.allSettled([client.pread(0, 65_536), client.pread(4096, 1024)]);
    for (const r of results) {
      const err = (r as PromiseRejectedResult).reason as NbdClientError;
      expect(err).toBeInstanceOf(NbdClientError);
      expect(err.kind).toBe('protocol');
      expect(err.message).toMatch(message);
    }
    expect(((await rejection(client.pread(0, 1))) as NbdClientError).kind).toBe('protocol');
  });

  it('bytes that arrive in the same read as the end of the handshake are replies: garbage there is a protocol error', async () => {
    const uri = await serve(() => undefined, Buffer.from('ffffffff', 'hex'));
    const client = await connect(uri, true);
    const err = (await rejection(client.pread(0, 512))) as NbdClientError;
    expect(err.kind).toBe('protocol');
    expect(err.message).toMatch(/bad reply magic 0xffffffff/);
  });
});

describe('NbdClient under a flood', () => {
  it('a server that sends 512 MiB of error chunks for one READ does not fill memory; the READ fails with the first error', async () => {
    const flood = 512 * MiB;
    let sent = 0;
    const uri = await serve((socket, request) => {
      const message = 'x'.repeat(65_000);
      const chunk = encodeErrorChunk(0, request.cookie, Errno.EIO, message);
      const first = encodeErrorChunk(0, request.cookie, Errno.EPERM, 'the first error');
      socket.write(first);
      const pump = (): void => {
        while (sent < flood) {
          sent += chunk.length;
          // The same buffer every time, and only when the socket drains: the server itself holds nothing.
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        socket.write(encodeNoneChunk(request.cookie));
      };
      pump();
    });
    const client = await connect(uri, true);
    let peak = 0;
    const baseline = process.memoryUsage().arrayBuffers;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline)), 5);
    try {
      const err = await rejection(client.pread(0, 4096));
      expect((err as NbdError).errno).toBe(Errno.EPERM);
      expect(err.message).toMatch(/the first error/);
    } finally {
      clearInterval(sampler);
    }
    expect(sent).toBeGreaterThanOrEqual(flood);
    expect(peak).toBeLessThan(192 * MiB);
  }, 60_000);
});
