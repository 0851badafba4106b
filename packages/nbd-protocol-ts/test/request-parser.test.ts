import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Command,
  CommandFlag,
  ProtocolError,
  RequestParser,
  encodeRequest,
  type RequestFrame,
  type RequestInit,
} from '../src/index.js';
import { createHash } from 'node:crypto';
import { hex } from './hex.js';

function drain(parser: RequestParser): RequestFrame[] {
  const frames: RequestFrame[] = [];
  for (let i = 0; i < 10_000; i++) {
    const frame = parser.next();
    if (!frame) return frames;
    frames.push(frame);
  }
  throw new Error('parser produced more frames than any test sends');
}

function request(type: number, cookie: bigint, offset: number, length: number, flags = 0): RequestInit {
  return { type, cookie, offset, length, flags };
}

/** A stream mixing every framing case: header only, payload, empty payload. */
function sampleStream(): { bytes: Buffer; expected: RequestFrame[] } {
  const data = Buffer.from('payload bytes!', 'latin1');
  const parts: [RequestInit, Buffer | undefined][] = [
    [request(Command.READ, 1n, 0, 4096), undefined],
    [request(Command.WRITE, 2n, 512, data.length, CommandFlag.FUA), data],
    [request(Command.FLUSH, 3n, 0, 0), undefined],
    [request(Command.WRITE, 4n, 0, 0), Buffer.alloc(0)],
    [request(Command.TRIM, 5n, 8192, 1024), undefined],
    [request(Command.WRITE, 6n, 1, 3), hex('aabbcc')],
    [request(Command.DISC, 7n, 0, 0), undefined],
  ];
  const bytes = Buffer.concat(parts.map(([r, payload]) => encodeRequest(r, payload)));
  const expected = parts.map(([r, payload]): RequestFrame => {
    const frame: RequestFrame = { request: { ...r, extended: false } };
    if (payload) frame.payload = payload;
    return frame;
  });
  return { bytes, expected };
}

describe('RequestParser framing', () => {
  it('yields every frame of one chunk that holds many', () => {
    const { bytes, expected } = sampleStream();
    const parser = new RequestParser({ maxPayload: 1024 });
    parser.push(bytes);
    expect(drain(parser)).toEqual(expected);
    expect(parser.buffered).toBe(0);
  });

  it('yields the same frames whatever byte boundary the stream is split at', () => {
    const { bytes, expected } = sampleStream();
    for (let cut = 0; cut <= bytes.length; cut++) {
      const parser = new RequestParser({ maxPayload: 1024 });
      parser.push(bytes.subarray(0, cut));
      const frames = drain(parser);
      parser.push(bytes.subarray(cut));
      frames.push(...drain(parser));
      expect(frames, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('yields nothing until a frame is complete when fed one byte at a time', () => {
    const { bytes, expected } = sampleStream();
    const parser = new RequestParser({ maxPayload: 1024 });
    const frames: RequestFrame[] = [];
    const frameEnds = new Set<number>();
    let end = 0;
    for (const f of expected) {
      end += 28 + (f.payload?.length ?? 0);
      frameEnds.add(end);
    }
    for (let i = 0; i < bytes.length; i++) {
      parser.push(bytes.subarray(i, i + 1));
      const got = drain(parser);
      expect(got.length, `after byte ${i + 1}`).toBe(frameEnds.has(i + 1) ? 1 : 0);
      frames.push(...got);
    }
    expect(frames).toEqual(expected);
  });

  it('yields the same frames under any chunking (property)', () => {
    const { bytes, expected } = sampleStream();
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
        const parser = new RequestParser({ maxPayload: 1024 });
        const frames: RequestFrame[] = [];
        for (let i = 1; i < points.length; i++) {
          parser.push(bytes.subarray(points[i - 1], points[i]));
          frames.push(...drain(parser));
        }
        expect(frames).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('parses extended headers when they were negotiated, including a PAYLOAD_LEN block status', () => {
    const filter = hex('0000000000001000', '00000001');
    const bytes = Buffer.concat([
      encodeRequest({ ...request(Command.WRITE, 1n, 0, 2), extended: true }, hex('abcd')),
      encodeRequest({ ...request(Command.BLOCK_STATUS, 2n, 0, filter.length, CommandFlag.PAYLOAD_LEN), extended: true }, filter),
      encodeRequest({ ...request(Command.READ, 3n, 0, 2 ** 33), extended: true }),
    ]);
    const parser = new RequestParser({ maxPayload: 1024, extendedHeaders: true });
    parser.push(bytes);
    const frames = drain(parser);
    expect(frames.map((f) => [f.request.type, f.payload?.toString('hex')])).toEqual([
      [Command.WRITE, 'abcd'],
      [Command.BLOCK_STATUS, filter.toString('hex')],
      [Command.READ, undefined],
    ]);
    expect(frames[2].request).toMatchObject({ extended: true, length: 2 ** 33 });
  });
});

describe('RequestParser on hostile input', () => {
  it('throws ProtocolError on a bad magic, and keeps throwing', () => {
    const parser = new RequestParser({ maxPayload: 1024 });
    parser.push(encodeRequest(request(Command.READ, 1n, 0, 512)));
    parser.push(hex('deadbeef'));
    expect(parser.next()?.request.cookie).toBe(1n);
    expect(() => parser.next()).toThrow(ProtocolError);
    parser.push(encodeRequest(request(Command.READ, 2n, 0, 512)));
    expect(() => parser.next()).toThrow(/deadbeef/);
  });

  it('rejects the magic as soon as 4 bytes are in, before a whole header', () => {
    const parser = new RequestParser({ maxPayload: 1024 });
    parser.push(hex('25609514'));
    expect(() => parser.next()).toThrow(ProtocolError);
  });

  it('rejects an extended header that was not negotiated, and a compact one that was', () => {
    const compact = new RequestParser({ maxPayload: 1024 });
    compact.push(encodeRequest({ ...request(Command.READ, 1n, 0, 512), extended: true }));
    expect(() => compact.next()).toThrow(/not negotiated/);
    const extended = new RequestParser({ maxPayload: 1024, extendedHeaders: true });
    extended.push(encodeRequest(request(Command.READ, 1n, 0, 512)));
    expect(() => extended.next()).toThrow(/compact header/);
  });

  it('drops an oversized write payload as it arrives, holding none of it, and stays in sync', () => {
    const maxPayload = 32 * 1024 * 1024;
    const length = 0xffffffff;
    const parser = new RequestParser({ maxPayload });
    parser.push(encodeRequest(request(Command.WRITE, 9n, 0, length)));
    const first = parser.next();
    expect(first).toEqual({ request: { ...request(Command.WRITE, 9n, 0, length), extended: false }, payloadDiscarded: true });

    // 4 GiB of junk in 1 MiB chunks; junk bytes would be a bad magic if they were ever parsed.
    const chunk = Buffer.alloc(1024 * 1024, 0xab);
    let left = length;
    let pushes = 0;
    while (left > chunk.length) {
      parser.push(chunk);
      left -= chunk.length;
      pushes++;
      expect(parser.buffered).toBe(0);
    }
    expect(pushes).toBeGreaterThan(4000);
    expect(parser.next()).toBeUndefined();
    // The tail of the junk and the next request arrive together.
    parser.push(Buffer.concat([chunk.subarray(0, left), encodeRequest(request(Command.FLUSH, 10n, 0, 0))]));
    expect(parser.next()?.request).toMatchObject({ type: Command.FLUSH, cookie: 10n });
    expect(parser.next()).toBeUndefined();
  });

  it('accepts a write of exactly maxPayload and discards one byte more', () => {
    const parser = new RequestParser({ maxPayload: 4 });
    parser.push(encodeRequest(request(Command.WRITE, 1n, 0, 4), hex('01020304')));
    parser.push(encodeRequest(request(Command.WRITE, 2n, 0, 5), hex('0102030405')));
    parser.push(encodeRequest(request(Command.READ, 3n, 0, 5)));
    const frames = drain(parser);
    expect(frames.map((f) => [f.request.cookie, f.payload?.length, f.payloadDiscarded])).toEqual([
      [1n, 4, undefined],
      [2n, undefined, true],
      [3n, undefined, undefined],
    ]);
  });

  it('never holds more than a header plus maxPayload for a write still arriving', () => {
    const parser = new RequestParser({ maxPayload: 1000 });
    parser.push(encodeRequest(request(Command.WRITE, 1n, 0, 1000)));
    for (let i = 0; i < 999; i++) parser.push(hex('00'));
    expect(parser.next()).toBeUndefined();
    expect(parser.buffered).toBe(999);
    parser.push(hex('00'));
    expect(parser.next()?.payload?.length).toBe(1000);
    expect(parser.buffered).toBe(0);
  });
});

/** Frames as comparable summaries: a 300 KiB payload compared as a digest, not element by element. */
function summary(frames: readonly RequestFrame[]): string[] {
  return frames.map((f) => `${f.request.type}/${f.request.cookie}/${f.request.offset}+${f.request.length}/${f.payloadDiscarded ? 'discarded' : f.payload ? createHash('sha1').update(f.payload).digest('hex') : '-'}`);
}

/** Feeds `bytes` as a reader with `onread` would: each recv lands in receiveBuffer(), at most `sizes[i]` bytes. */
function receiveAll(parser: RequestParser, bytes: Buffer, sizes: readonly number[]): { frames: RequestFrame[]; inPlace: Buffer[] } {
  const frames: RequestFrame[] = [];
  const inPlace: Buffer[] = [];
  // A payload is handed out as a fresh view each time; scratch is the same buffer again and again.
  const handedOut = new Set<Buffer>();
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const into = parser.receiveBuffer();
    expect(into.length).toBeGreaterThan(0);
    const n = bytes.copy(into, 0, at, at + Math.min(into.length, sizes[i % sizes.length] ?? into.length));
    at += n;
    if (n >= 16 * 1024) inPlace.push(into);
    parser.received(n);
    frames.push(...drain(parser));
    // What the parser kept must survive scratch being overwritten by the next recv.
    if (handedOut.has(into)) into.fill(0xee);
    handedOut.add(into);
  }
  return { frames, inPlace };
}

describe('RequestParser receiving in place', () => {
  const big = Buffer.alloc(300 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  const parts: [RequestInit, Buffer | undefined][] = [
    [request(Command.WRITE, 1n, 0, big.length), big],
    [request(Command.READ, 2n, 0, 4096), undefined],
    [request(Command.WRITE, 3n, 4096, 5), hex('0102030405')],
    [request(Command.WRITE, 4n, 8192, 20_000), big.subarray(7, 20_007)],
    [request(Command.FLUSH, 5n, 0, 0), undefined],
    [request(Command.WRITE, 6n, 0, big.length), Buffer.from(big).reverse()],
  ];
  const bytes = Buffer.concat(parts.map(([r, payload]) => encodeRequest(r, payload)));
  const expected = parts.map(([r, payload]): RequestFrame => (payload ? { request: { ...r, extended: false }, payload } : { request: { ...r, extended: false } }));

  it('receives a large payload straight into the buffer it is handed out in', () => {
    const parser = new RequestParser({ maxPayload: 1024 * 1024 });
    const { frames, inPlace } = receiveAll(parser, bytes, [200_000]);
    expect(summary(frames)).toEqual(summary(expected));
    // The two 300 KiB payloads arrived (after the recv that held their header) into their own memory.
    const first = frames[0]?.payload as Buffer;
    expect(inPlace.some((b) => b.buffer === first.buffer)).toBe(true);
    expect(parser.buffered).toBe(0);
  });

  it('yields the same frames whatever the size of each recv (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 700, max: 70_000 }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 512, max: 40_000 }), (sizes, scratchBytes) => {
        const parser = new RequestParser({ maxPayload: 1024 * 1024, scratchBytes });
        expect(summary(receiveAll(parser, bytes, sizes).frames)).toEqual(summary(expected));
        expect(parser.buffered).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('mixes with push(), and skips an oversized payload received through scratch', () => {
    const parser = new RequestParser({ maxPayload: 100 * 1024 });
    parser.push(bytes.subarray(0, 10));
    const { frames } = receiveAll(parser, bytes.subarray(10), [50_000]);
    expect(frames.map((f) => [f.request.cookie, f.payloadDiscarded ?? false, f.payload?.length])).toStrictEqual([
      [1n, true, undefined],
      [2n, false, undefined],
      [3n, false, 5],
      [4n, false, 20_000],
      [5n, false, undefined],
      [6n, true, undefined],
    ]);
    expect(frames[3]?.payload?.equals(big.subarray(7, 20_007))).toBe(true);
  });

  it('refuses received() without a receiveBuffer() before it', () => {
    const parser = new RequestParser({ maxPayload: 1024 });
    expect(() => parser.received(1)).toThrow(/without a receiveBuffer/);
  });
});

describe('RequestParser.peekRequest', () => {
  it('shows the next whole header without taking it, and nothing while a payload is assembled or skipped', () => {
    const parser = new RequestParser({ maxPayload: 1024 });
    const write = encodeRequest(request(Command.WRITE, 9n, 4096, 8));
    const read = encodeRequest(request(Command.READ, 10n, 0, 1 << 20));
    parser.push(write.subarray(0, 20));
    expect(parser.peekRequest()).toBeUndefined();
    parser.push(write.subarray(20));
    expect(parser.peekRequest()).toMatchObject({ type: Command.WRITE, cookie: 9n, length: 8 });
    // Peeking takes nothing: next() still decodes the same header, and waits for its payload.
    expect(parser.next()).toBeUndefined();
    parser.push(Buffer.alloc(4, 1));
    expect(parser.peekRequest()).toBeUndefined();
    parser.push(Buffer.concat([Buffer.alloc(4, 1), read]));
    expect(parser.next()?.request.cookie).toBe(9n);
    expect(parser.peekRequest()).toMatchObject({ type: Command.READ, length: 1 << 20 });
    expect(parser.next()?.request.cookie).toBe(10n);
    expect(parser.peekRequest()).toBeUndefined();

    // An oversized write is being skipped: what follows is not a header yet.
    parser.push(encodeRequest(request(Command.WRITE, 11n, 0, 4096)));
    expect(parser.next()?.payloadDiscarded).toBe(true);
    parser.push(Buffer.alloc(4000));
    parser.push(read.subarray(0, 10));
    expect(parser.peekRequest()).toBeUndefined();
  });

  it('leaves a bad magic for next() to reject', () => {
    const parser = new RequestParser({ maxPayload: 1024 });
    parser.push(Buffer.alloc(28, 0xee));
    expect(parser.peekRequest()).toBeUndefined();
    expect(() => parser.next()).toThrow(ProtocolError);
    expect(parser.peekRequest()).toBeUndefined();
  });
});

describe('hasCompleteRequest (a server that stops receiving serves what it has)', () => {
  const header = (type: number, length: number): Buffer => {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0);
    h.writeUInt16BE(type, 6);
    h.writeUInt32BE(length, 24);
    return h;
  };

  it('is true exactly when next() returns a frame: a header, and a write once its payload is all there', () => {
    const p = new RequestParser({ maxPayload: 1024 });
    expect(p.hasCompleteRequest()).toBe(false);
    const read = header(0, 4096);
    p.push(read.subarray(0, 20));
    expect(p.hasCompleteRequest()).toBe(false);
    p.push(read.subarray(20));
    expect(p.hasCompleteRequest()).toBe(true);
    expect(p.next()?.request.type).toBe(0);
    expect(p.hasCompleteRequest()).toBe(false);
    p.push(Buffer.concat([header(1, 100), Buffer.alloc(60)]));
    expect(p.hasCompleteRequest()).toBe(false);
    expect(p.next()).toBeUndefined();
    expect(p.hasCompleteRequest()).toBe(false);
    p.push(Buffer.alloc(40));
    expect(p.hasCompleteRequest()).toBe(true);
    expect(p.next()?.payload?.length).toBe(100);
    // A write over the maximum is returned at once (its payload is skipped), so it counts as complete.
    p.push(header(1, 4096));
    expect(p.hasCompleteRequest()).toBe(true);
    expect(p.next()?.payloadDiscarded).toBe(true);
  });
});
