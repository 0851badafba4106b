import {
  Errno,
  ProtocolError,
  ReplyFlag,
  encodeChunkHeader,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHole,
  encodeSimpleReply,
  type ChunkHeader,
  type ChunkPayload,
} from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { ReplyReceiver, type Landing, type ReplyHandler } from '../../../src/client/reply-receiver.js';

const DONE = ReplyFlag.DONE;
/** The READ every OFFSET_DATA chunk here belongs to starts at BASE and is this long. */
const BASE = 1 << 20;
const READ_LENGTH = 60_000;

/** Deterministic bytes that differ from chunk to chunk and from the scribble pattern. */
function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + seed * 29 + 1) % 251;
  return out;
}

/**
 * A handler that writes down what it is told. Each cookie has its own result
 * buffer; OFFSET_DATA lands in it at (offset - base), like a READ at `base`.
 */
class Recorder implements ReplyHandler {
  readonly events: string[] = [];
  readonly results = new Map<bigint, Buffer>();

  constructor(
    private readonly base: number,
    /** Cookies whose simple reply carries this many bytes of data. */
    private readonly simpleData: Map<bigint, number> = new Map(),
    /** chunkHeader() refuses these, as the client does a cookie it never sent. */
    private readonly unknownCookies: Set<bigint> = new Set(),
  ) {}

  simpleReply(cookie: bigint, errno: number): Landing | undefined {
    this.events.push(`simple ${cookie} errno ${errno}`);
    const length = this.simpleData.get(cookie);
    if (length === undefined) return undefined;
    const into = this.result(cookie, length);
    return { into, done: () => this.events.push(`simple data ${cookie} ${hash(into)}`) };
  }

  chunkHeader(header: ChunkHeader): void {
    if (this.unknownCookies.has(header.cookie)) throw new ProtocolError(`a reply chunk for cookie ${header.cookie}, which no request in flight has`);
    this.events.push(`header ${header.cookie} type ${header.type} length ${header.length}`);
  }

  dataChunk(header: ChunkHeader, offset: number, length: number): Landing {
    const start = offset - this.base;
    const into = this.result(header.cookie, READ_LENGTH).subarray(start, start + length);
    return { into, done: () => this.events.push(`data ${header.cookie} ${offset}+${length} ${hash(into)}${header.flags & DONE ? ' done' : ''}`) };
  }

  chunk(header: ChunkHeader, payload: ChunkPayload): void {
    const what =
      payload.kind === 'hole' ? `hole ${payload.offset}+${payload.length}`
      : payload.kind === 'error' ? `error ${payload.errno} '${payload.message}'`
      : payload.kind === 'unknown' ? `unknown ${payload.type} ${payload.payload.toString('hex')}`
      : payload.kind;
    this.events.push(`chunk ${header.cookie} ${what}${header.flags & DONE ? ' done' : ''}`);
  }

  /** The results as hex, to compare quickly. */
  hexResults(): Record<string, string> {
    return Object.fromEntries([...this.results].map(([cookie, buf]) => [String(cookie), buf.toString('hex')]));
  }

  private result(cookie: bigint, length: number): Buffer {
    let buf = this.results.get(cookie);
    if (!buf) {
      buf = Buffer.alloc(length, 0xee);
      this.results.set(cookie, buf);
    }
    return buf;
  }
}

function hash(bytes: Buffer): string {
  let h = 0;
  for (const b of bytes) h = (h * 31 + b) >>> 0;
  return h.toString(16);
}

/**
 * Plays a byte stream into a receiver as the kernel would: each recv lands
 * at the start of the buffer the receiver offers, is at most its length, and
 * here also at most `cut(at)` bytes. After every recv into scratch, scratch
 * is scribbled over, so anything the receiver kept a view of goes wrong.
 */
function play(receiver: ReplyReceiver, scratch: Buffer, stream: Buffer, cut: (at: number) => number): { recvs: number; inPlaceAfterScratch: number[] } {
  let recvs = 0;
  let lastWasScratch = false;
  /** Where in the stream recvs into the handler's memory began, right after a recv into scratch. */
  const inPlaceAfterScratch: number[] = [];
  for (let at = 0; at < stream.length; ) {
    const buf = receiver.buffer();
    expect(buf.length).toBeGreaterThan(0);
    const n = Math.min(buf.length, cut(at), stream.length - at);
    stream.copy(buf, 0, at, at + n);
    receiver.received(n);
    recvs++;
    if (buf === scratch) {
      scratch.fill(0x5a);
      lastWasScratch = true;
    } else {
      if (lastWasScratch) inPlaceAfterScratch.push(at);
      lastWasScratch = false;
    }
    at += n;
  }
  return { recvs, inPlaceAfterScratch };
}

/** Every kind of frame, with data payloads big enough to be received in place; `payloads` are where data lies in the stream. */
function mixedStream(): { stream: Buffer; simpleData: Map<bigint, number>; payloads: Array<[number, number]> } {
  const frames: Array<[Buffer, 'header' | 'payload']> = [
    [encodeSimpleReply(1n, 0), 'header'],
    [encodeSimpleReply(2n, Errno.ENOSPC), 'header'],
    [encodeSimpleReply(3n, 0), 'header'],
    [pattern(300, 3), 'payload'],
    [encodeOffsetDataHeader(0, 4n, BASE + 200, 120), 'header'],
    [pattern(120, 4), 'payload'],
    [encodeOffsetHole(0, 4n, BASE, 200), 'header'],
    [encodeErrorChunk(0, 4n, Errno.EIO, 'disk on fire'), 'header'],
    [encodeOffsetDataHeader(DONE, 4n, BASE + 320, 9), 'header'],
    [pattern(9, 5), 'payload'],
    [encodeNoneChunk(5n), 'header'],
    [encodeChunkHeader(DONE, 0x8123, 6n, 5), 'header'],
    [Buffer.from([0, 0, 0, 5, 0xff]), 'header'],
    [encodeOffsetDataHeader(DONE, 7n, BASE, 1), 'header'],
    [Buffer.from([0x42]), 'payload'],
    [encodeSimpleReply(8n, 0), 'header'],
  ];
  const payloads: Array<[number, number]> = [];
  let at = 0;
  for (const [bytes, kind] of frames) {
    if (kind === 'payload') payloads.push([at, at + bytes.length]);
    at += bytes.length;
  }
  return { stream: Buffer.concat(frames.map(([bytes]) => bytes)), simpleData: new Map([[3n, 300]]), payloads };
}

function receiverFor(recorder: Recorder, scratchSize: number, directMinimum: number): { receiver: ReplyReceiver; scratch: Buffer } {
  const scratch = Buffer.alloc(scratchSize);
  return { receiver: new ReplyReceiver(recorder, scratch, directMinimum), scratch };
}

/** The events and results of the stream received in one piece: what every other split must reproduce. */
function reference(): { events: string[]; results: Record<string, string> } {
  const { stream, simpleData } = mixedStream();
  const recorder = new Recorder(BASE, simpleData);
  const { receiver, scratch } = receiverFor(recorder, stream.length, stream.length + 1);
  play(receiver, scratch, stream, () => stream.length);
  return { events: recorder.events, results: recorder.hexResults() };
}

describe('ReplyReceiver', () => {
  it('frames every kind of reply, in order, with payloads where the handler put them', () => {
    const recorder = new Recorder(BASE, mixedStream().simpleData);
    const { stream } = mixedStream();
    const { receiver, scratch } = receiverFor(recorder, stream.length, stream.length + 1);
    play(receiver, scratch, stream, () => stream.length);
    const { events, results } = recorder;
    expect(events).toEqual([
      'simple 1 errno 0',
      `simple 2 errno ${Errno.ENOSPC}`,
      'simple 3 errno 0',
      `simple data 3 ${hash(pattern(300, 3))}`,
      'header 4 type 1 length 128',
      `data 4 ${BASE + 200}+120 ${hash(pattern(120, 4))}`,
      'header 4 type 2 length 12',
      `chunk 4 hole ${BASE}+200`,
      `header 4 type ${0x8001} length 18`,
      `chunk 4 error ${Errno.EIO} 'disk on fire'`,
      'header 4 type 1 length 17',
      `data 4 ${BASE + 320}+9 ${hash(pattern(9, 5))} done`,
      'header 5 type 0 length 0',
      'chunk 5 none done',
      `header 6 type ${0x8123} length 5`,
      `chunk 6 unknown ${0x8123} 00000005ff done`,
      'header 7 type 1 length 9',
      `data 7 ${BASE}+1 ${hash(Buffer.from([0x42]))} done`,
      'simple 8 errno 0',
    ]);
    expect(results.get(3n)?.equals(pattern(300, 3))).toBe(true);
    expect(results.get(4n)?.subarray(200, 320).equals(pattern(120, 4))).toBe(true);
    expect(results.get(4n)?.subarray(320, 329).equals(pattern(9, 5))).toBe(true);
  });

  it('gives the same result however the stream is split in two, at every byte boundary', () => {
    const expected = reference();
    const { stream, simpleData } = mixedStream();
    for (let split = 1; split < stream.length; split++) {
      const recorder = new Recorder(BASE, simpleData);
      const { receiver, scratch } = receiverFor(recorder, 4096, 64);
      play(receiver, scratch, stream, (at) => (at < split ? split - at : stream.length));
      expect(recorder.events, `split at ${split}`).toEqual(expected.events);
      expect(recorder.hexResults(), `split at ${split}`).toEqual(expected.results);
    }
  });

  it('gives the same result a byte at a time, in tiny scratch, and in random cuts, with payloads straddling scratch and in-place recvs', () => {
    const expected = reference();
    const { stream, simpleData, payloads } = mixedStream();
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return 1 + (seed % n);
    };
    const cases: Array<{ name: string; scratch: number; directMinimum: number; cut: (at: number) => number }> = [
      { name: 'one byte per recv', scratch: 4096, directMinimum: 1, cut: () => 1 },
      { name: 'one-byte scratch', scratch: 1, directMinimum: 1 << 30, cut: () => 1 << 30 },
      { name: 'scratch smaller than a header, payloads in place', scratch: 7, directMinimum: 1, cut: () => 1 << 30 },
      ...[...Array(200)].map((_, i) => ({ name: `random cuts ${i}`, scratch: 1 + random(64), directMinimum: random(150), cut: () => random(80) })),
    ];
    let straddles = 0;
    for (const c of cases) {
      const recorder = new Recorder(BASE, simpleData);
      const { receiver, scratch } = receiverFor(recorder, c.scratch, c.directMinimum);
      const { inPlaceAfterScratch } = play(receiver, scratch, stream, c.cut);
      // A payload straddles when its first bytes came in scratch (with its header) and the rest in place.
      if (inPlaceAfterScratch.some((at) => payloads.some(([start, end]) => start < at && at < end))) straddles++;
      expect(recorder.events, c.name).toEqual(expected.events);
      expect(recorder.hexResults(), c.name).toEqual(expected.results);
    }
    // The cases above must really have had payloads begin in scratch and end in place.
    expect(straddles).toBeGreaterThan(100);
  });

  it('receives a big payload in place: after the recv with its header, no byte of it goes through scratch', () => {
    const recorder = new Recorder(BASE);
    const { receiver, scratch } = receiverFor(recorder, 1024, 256);
    const data = pattern(60_000, 9);
    const stream = Buffer.concat([encodeOffsetDataHeader(DONE, 1n, BASE, data.length), data, encodeNoneChunk(2n)]);
    let copiedThroughScratch = 0;
    for (let at = 0; at < stream.length; ) {
      const buf = receiver.buffer();
      const n = Math.min(buf.length, 4000, stream.length - at);
      stream.copy(buf, 0, at, at + n);
      receiver.received(n);
      if (buf === scratch && at > 0) copiedThroughScratch += n;
      at += n;
    }
    expect(recorder.results.get(1n)?.subarray(0, data.length).equals(data)).toBe(true);
    // Only the last stretch below directMinimum (and the NONE chunk after it) may go through scratch.
    expect(copiedThroughScratch).toBeLessThan(256 + 20);
    expect(recorder.events.at(-1)).toBe('chunk 2 none done');
  });

  it('frames many replies from one recv', () => {
    const recorder = new Recorder(BASE);
    const { receiver, scratch } = receiverFor(recorder, 1 << 16, 1 << 16);
    const frames: Buffer[] = [];
    for (let i = 1; i <= 500; i++) frames.push(i % 2 ? encodeSimpleReply(BigInt(i), 0) : encodeNoneChunk(BigInt(i)));
    const stream = Buffer.concat(frames);
    const { recvs } = play(receiver, scratch, stream, () => stream.length);
    expect(recvs).toBe(1);
    expect(recorder.events.filter((e) => e.startsWith('simple') || e.startsWith('chunk')).length).toBe(500);
    expect(recorder.events.at(-1)).toBe('chunk 500 none done');
  });

  describe('refuses a broken stream mid-frame, after handing over every frame before it', () => {
    const cases: Array<[string, Buffer, RegExp, Set<bigint>?]> = [
      ['bad magic', Buffer.from('deadbeef00000000', 'hex'), /bad reply magic 0xdeadbeef/],
      ['OFFSET_DATA without data', encodeChunkHeader(DONE, 1, 9n, 8), /OFFSET_DATA payload of 8 bytes \(minimum 9\)/],
      ['a NONE chunk with a payload', Buffer.concat([encodeChunkHeader(DONE, 0, 9n, 3), Buffer.alloc(3)]), /NONE chunk with a 3-byte payload/],
      ['a hole of the wrong size', Buffer.concat([encodeChunkHeader(DONE, 2, 9n, 8), Buffer.alloc(8)]), /OFFSET_HOLE payload of 8 bytes/],
      ['a chunk the handler refuses', Buffer.concat([encodeChunkHeader(DONE, 1, 99n, 100), Buffer.alloc(100)]), /cookie 99, which no request/, new Set([99n])],
    ];
    it.each(cases)('%s', (_, broken, message, unknown) => {
      const before = Buffer.concat([encodeSimpleReply(1n, 0), encodeNoneChunk(2n)]);
      const stream = Buffer.concat([before, broken, encodeSimpleReply(3n, 0)]);
      for (const cut of [1, 3, stream.length]) {
        const recorder = new Recorder(BASE, new Map(), unknown);
        const { receiver, scratch } = receiverFor(recorder, 64, 16);
        let err: unknown;
        try {
          play(receiver, scratch, stream, () => cut);
        } catch (e) {
          err = e;
        }
        expect(err, `cut ${cut}`).toBeInstanceOf(ProtocolError);
        expect((err as Error).message).toMatch(message);
        expect(recorder.events.slice(0, 3)).toEqual(['simple 1 errno 0', 'header 2 type 0 length 0', 'chunk 2 none done']);
        expect(recorder.events.join('\n')).not.toContain('simple 3');
        expect(recorder.events.some((e) => e.startsWith('chunk 99') || e.startsWith('data 99'))).toBe(false);
      }
    });
  });

  it('lets no payload of a refused chunk header through to the handler', () => {
    const recorder = new Recorder(BASE, new Map(), new Set([5n]));
    const { receiver, scratch } = receiverFor(recorder, 4096, 16);
    const stream = Buffer.concat([encodeOffsetDataHeader(DONE, 5n, BASE, 64), pattern(64, 1)]);
    expect(() => play(receiver, scratch, stream, () => stream.length)).toThrow(/cookie 5/);
    expect(recorder.results.size).toBe(0);
  });
});
