import { describe, expect, it } from 'vitest';
import {
  BASE_ALLOCATION,
  Command,
  HandshakeMachine,
  Info,
  Option,
  OptionReply,
  TransmissionFlag,
  encodeInfoRequest,
  encodeMetaContextRequest,
  encodeOptionRequest,
  encodeRequest,
  type ExportDescriptor,
  type ExportRegistry,
  type HandshakeEvent,
  type HandshakeOptions,
  type NegotiatedSession,
} from '../src/index.js';
import { ascii, hex } from './hex.js';

const REPLY_MAGIC = '0003e889045565a9';
const IHAVEOPT = '49484156454f5054';
const BLOCK_SIZE = { minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 };

const src: ExportDescriptor = {
  name: 'src',
  description: 'the old disk',
  size: 0x100000,
  transmissionFlags: TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_DF,
  blockSize: BLOCK_SIZE,
  metaContexts: [BASE_ALLOCATION],
};
const dst: ExportDescriptor = {
  name: 'dst',
  description: '',
  size: 0x200000,
  transmissionFlags:
    TransmissionFlag.SEND_FLUSH | TransmissionFlag.SEND_FUA | TransmissionFlag.SEND_TRIM | TransmissionFlag.SEND_DF,
  blockSize: BLOCK_SIZE,
  metaContexts: [BASE_ALLOCATION, 'x-remap:held'],
};
const registry: ExportRegistry = {
  list: () => [src, dst],
  lookup: (name) => [src, dst].find((e) => e.name === name),
};

function u32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** An option reply as hex: the header fields are spelled out, the data is given. */
function reply(option: number, type: number, dataHex = ''): string {
  return REPLY_MAGIC + u32(option) + u32(type) + u32(dataHex.length / 2) + dataHex;
}

function ack(option: number): string {
  return reply(option, OptionReply.ACK);
}

function started(options?: HandshakeOptions, clientFlags = '00000003'): HandshakeMachine {
  const m = new HandshakeMachine(registry, options);
  expect(m.push(hex(clientFlags))).toEqual([]);
  return m;
}

function sent(events: HandshakeEvent[]): string {
  return Buffer.concat(events.flatMap((e) => (e.type === 'send' ? [e.data] : []))).toString('hex');
}

function lastEvent(events: HandshakeEvent[]): HandshakeEvent | undefined {
  return events[events.length - 1];
}

function sessionOf(events: HandshakeEvent[]): NegotiatedSession {
  const last = lastEvent(events);
  if (last?.type !== 'done') throw new Error(`handshake did not finish: ${JSON.stringify(last)}`);
  return last.session;
}

/** Reply types in order, e.g. ['INFO', 'INFO', 'ACK'], with the option each answers. */
function replyTypes(events: HandshakeEvent[]): [number, number][] {
  return events.flatMap((e) => (e.type === 'send' && e.data.length >= 20 && e.data.readBigUInt64BE(0) === 0x3e889045565a9n
    ? [[e.data.readUInt32BE(8), e.data.readUInt32BE(12)] as [number, number]]
    : []));
}

function replyMessage(events: HandshakeEvent[], index: number): string {
  const sends = events.filter((e): e is { type: 'send'; data: Buffer } => e.type === 'send');
  return sends[index].data.subarray(20).toString('utf8');
}

describe('a complete haggle', () => {
  // Client: flags FIXED_NEWSTYLE|NO_ZEROES, STRUCTURED_REPLY, SET_META_CONTEXT dst base:allocation, GO dst; then a pipelined READ.
  const clientBytes = hex(
    '00000003',
    IHAVEOPT, '00000008', '00000000',
    IHAVEOPT, '0000000a', '0000001e', '00000003', ascii('dst'), '00000001', '0000000f', ascii('base:allocation'),
    IHAVEOPT, '00000007', '00000009', '00000003', ascii('dst'), '0000',
  );
  const firstRequest = hex('25609513', '0000', '0000', '0000000000000001', '0000000000000000', '00001000');
  const expectedServerBytes = [
    REPLY_MAGIC, '00000008', '00000001', '00000000',
    REPLY_MAGIC, '0000000a', '00000004', '00000013', '00000001', ascii('base:allocation'),
    REPLY_MAGIC, '0000000a', '00000001', '00000000',
    REPLY_MAGIC, '00000007', '00000003', '0000000c', '0000', '0000000000200000', '00ad',
    REPLY_MAGIC, '00000007', '00000003', '0000000e', '0003', '00000001', '00001000', '02000000',
    REPLY_MAGIC, '00000007', '00000001', '00000000',
  ].join('');

  it('produces exactly the expected bytes and session', () => {
    const m = new HandshakeMachine(registry);
    expect(m.greeting()).toEqual(hex('4e42444d41474943', IHAVEOPT, '0003'));
    const events = m.push(Buffer.concat([clientBytes, firstRequest]));
    expect(sent(events)).toBe(expectedServerBytes);
    const session = sessionOf(events);
    expect(session.structuredReplies).toBe(true);
    expect(session.extendedHeaders).toBe(false);
    expect([...session.metaContexts]).toEqual([[1, BASE_ALLOCATION]]);
    expect(session.export.name).toBe('dst');
    expect(session.export.transmissionFlags).toBe(0xac);
    expect(session.leftover).toEqual(firstRequest);
  });

  it('produces the same bytes and session whatever byte boundary the input is split at', () => {
    const input = Buffer.concat([clientBytes, firstRequest]);
    for (let cut = 0; cut <= input.length; cut++) {
      const m = new HandshakeMachine(registry);
      const events = [...m.push(input.subarray(0, cut))];
      if (lastEvent(events)?.type !== 'done') events.push(...m.push(input.subarray(cut)));
      expect(sent(events), `cut at ${cut}`).toBe(expectedServerBytes);
      const session = sessionOf(events);
      // The leftover is what of the first request arrived in the push that finished the haggle.
      const expectedLeftover = cut < clientBytes.length ? firstRequest.length : cut - clientBytes.length;
      expect(session.leftover).toEqual(firstRequest.subarray(0, expectedLeftover));
    }
  });

  it('yields nothing for partial frames, fed one byte at a time', () => {
    const m = new HandshakeMachine(registry);
    const events: HandshakeEvent[] = [];
    for (let i = 0; i < clientBytes.length; i++) {
      const got = m.push(clientBytes.subarray(i, i + 1));
      // Replies only come when the last byte of an option arrives.
      const optionEnds = [4 + 16, 4 + 16 + 46, clientBytes.length];
      expect(got.length > 0, `byte ${i + 1}`).toBe(optionEnds.includes(i + 1));
      events.push(...got);
    }
    expect(sent(events)).toBe(expectedServerBytes);
    expect(sessionOf(events).leftover.length).toBe(0);
  });
});

describe('client flags', () => {
  it('closes a client without FIXED_NEWSTYLE', () => {
    const m = new HandshakeMachine(registry);
    expect(m.push(hex('000000'))).toEqual([]);
    const events = m.push(hex('00'));
    expect(events).toEqual([{ type: 'close', reason: expect.stringMatching(/FIXED_NEWSTYLE/) }]);
    expect(m.push(encodeOptionRequest(Option.LIST))).toEqual([]);
  });

  it('closes a client that sets unknown flags', () => {
    const events = new HandshakeMachine(registry).push(hex('00000005'));
    expect(events).toEqual([{ type: 'close', reason: expect.stringMatching(/unknown flags 0x4/) }]);
  });
});

describe('NBD_OPT_EXPORT_NAME', () => {
  it('answers with size, flags and 124 zeroes, and hides DF without structured replies', () => {
    const m = started(undefined, '00000001');
    const events = m.push(encodeOptionRequest(Option.EXPORT_NAME, Buffer.from('src')));
    expect(sent(events)).toBe('0000000000100000' + '0007' + '00'.repeat(124));
    const session = sessionOf(events);
    expect(session.structuredReplies).toBe(false);
    expect(session.metaContexts.size).toBe(0);
  });

  it('leaves the zeroes out after NO_ZEROES and keeps DF and meta contexts after structured replies', () => {
    const m = started();
    m.push(encodeOptionRequest(Option.STRUCTURED_REPLY));
    m.push(encodeOptionRequest(Option.SET_META_CONTEXT, encodeMetaContextRequest('src', [BASE_ALLOCATION])));
    const events = m.push(encodeOptionRequest(Option.EXPORT_NAME, Buffer.from('src')));
    expect(sent(events)).toBe('0000000000100000' + '0087');
    expect([...sessionOf(events).metaContexts]).toEqual([[1, BASE_ALLOCATION]]);
  });

  it('closes on an unknown export, since it cannot answer an error', () => {
    const events = started().push(encodeOptionRequest(Option.EXPORT_NAME, Buffer.from('nope')));
    expect(events).toEqual([{ type: 'close', reason: expect.stringMatching(/nope/) }]);
  });
});

describe('NBD_OPT_ABORT and NBD_OPT_LIST', () => {
  it('ABORT is acknowledged, then the connection closes (data ignored)', () => {
    const events = started().push(encodeOptionRequest(Option.ABORT, hex('ff')));
    expect(sent(events)).toBe(ack(Option.ABORT));
    expect(lastEvent(events)).toEqual({ type: 'close', reason: expect.stringMatching(/ABORT/) });
  });

  it('LIST sends one NBD_REP_SERVER per export, then ACK', () => {
    const events = started().push(encodeOptionRequest(Option.LIST));
    expect(sent(events)).toBe(
      reply(Option.LIST, OptionReply.SERVER, '00000003' + ascii('src') + ascii('the old disk')) +
        reply(Option.LIST, OptionReply.SERVER, '00000003' + ascii('dst')) +
        ack(Option.LIST),
    );
  });

  it('LIST with data is ERR_INVALID and haggling goes on', () => {
    const m = started();
    const events = m.push(encodeOptionRequest(Option.LIST, hex('00')));
    expect(replyTypes(events)).toEqual([[Option.LIST, OptionReply.ERR_INVALID]]);
    expect(replyMessage(events, 0)).toMatch(/no data/);
    expect(sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst')))).export.name).toBe('dst');
  });
});

describe('NBD_OPT_INFO and NBD_OPT_GO', () => {
  it('INFO sends EXPORT, the requested NAME and DESCRIPTION, BLOCK_SIZE, ACK, and haggling goes on', () => {
    const m = started();
    const events = m.push(encodeOptionRequest(Option.INFO, encodeInfoRequest('src', [Info.NAME, Info.DESCRIPTION, 77])));
    expect(sent(events)).toBe(
      reply(Option.INFO, OptionReply.INFO, '0000' + '0000000000100000' + '0007') +
        reply(Option.INFO, OptionReply.INFO, '0001' + ascii('src')) +
        reply(Option.INFO, OptionReply.INFO, '0002' + ascii('the old disk')) +
        reply(Option.INFO, OptionReply.INFO, '0003' + '00000001' + '00001000' + '02000000') +
        ack(Option.INFO),
    );
    expect(events.every((e) => e.type === 'send')).toBe(true);
    expect(lastEvent(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('src'))))?.type).toBe('done');
  });

  it('skips an empty description even when asked for', () => {
    const events = started().push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst', [Info.DESCRIPTION])));
    expect(replyTypes(events)).toEqual([
      [Option.GO, OptionReply.INFO],
      [Option.GO, OptionReply.INFO],
      [Option.GO, OptionReply.ACK],
    ]);
    expect(sessionOf(events).export.name).toBe('dst');
  });

  it('answers an unknown export, and the empty default name, with ERR_UNKNOWN', () => {
    const m = started();
    const unknown = m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('nope')));
    expect(replyTypes(unknown)).toEqual([[Option.GO, OptionReply.ERR_UNKNOWN]]);
    expect(replyMessage(unknown, 0)).toBe('no export named "nope" (its exports: "src", "dst")');
    const byDefault = m.push(encodeOptionRequest(Option.INFO, encodeInfoRequest('')));
    expect(replyTypes(byDefault)).toEqual([[Option.INFO, OptionReply.ERR_UNKNOWN]]);
    // What `nbd-client HOST PORT /dev/nbd0` without -N asks for: the message says what to name.
    expect(replyMessage(byDefault, 0)).toBe('there is no default export; ask for one by name (its exports: "src", "dst")');
  });

  it('answers a malformed payload with ERR_INVALID and a message naming the defect', () => {
    const m = started();
    const events = m.push(encodeOptionRequest(Option.GO, hex('00000010', ascii('dst'), '0000')));
    expect(replyTypes(events)).toEqual([[Option.GO, OptionReply.ERR_INVALID]]);
    expect(replyMessage(events, 0)).toMatch(/^GO: export name needs 16 bytes/);
  });

  it('drops a meta context selection made for another export', () => {
    const m = started();
    m.push(encodeOptionRequest(Option.STRUCTURED_REPLY));
    m.push(encodeOptionRequest(Option.SET_META_CONTEXT, encodeMetaContextRequest('src', [BASE_ALLOCATION])));
    const session = sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst'))));
    expect(session.structuredReplies).toBe(true);
    expect(session.metaContexts.size).toBe(0);
  });
});

describe('NBD_OPT_STRUCTURED_REPLY', () => {
  it('is acknowledged once; data or a repeat is ERR_INVALID', () => {
    const m = started();
    expect(replyTypes(m.push(encodeOptionRequest(Option.STRUCTURED_REPLY, hex('00'))))).toEqual([
      [Option.STRUCTURED_REPLY, OptionReply.ERR_INVALID],
    ]);
    expect(sent(m.push(encodeOptionRequest(Option.STRUCTURED_REPLY)))).toBe(ack(Option.STRUCTURED_REPLY));
    expect(replyTypes(m.push(encodeOptionRequest(Option.STRUCTURED_REPLY)))).toEqual([
      [Option.STRUCTURED_REPLY, OptionReply.ERR_INVALID],
    ]);
  });
});

describe('meta contexts', () => {
  function structured(): HandshakeMachine {
    const m = started();
    m.push(encodeOptionRequest(Option.STRUCTURED_REPLY));
    return m;
  }
  const list = (name: string, queries: string[]) => encodeOptionRequest(Option.LIST_META_CONTEXT, encodeMetaContextRequest(name, queries));
  const set = (name: string, queries: string[]) => encodeOptionRequest(Option.SET_META_CONTEXT, encodeMetaContextRequest(name, queries));
  const metaReply = (option: number, id: number, name: string) => reply(option, OptionReply.META_CONTEXT, u32(id) + ascii(name));

  it('are refused before structured replies', () => {
    const m = started();
    expect(replyTypes(m.push(list('dst', [])))).toEqual([[Option.LIST_META_CONTEXT, OptionReply.ERR_INVALID]]);
    expect(replyTypes(m.push(set('dst', [BASE_ALLOCATION])))).toEqual([[Option.SET_META_CONTEXT, OptionReply.ERR_INVALID]]);
  });

  it('LIST with no query lists every context of the export with id 0', () => {
    const events = structured().push(list('dst', []));
    expect(sent(events)).toBe(
      metaReply(Option.LIST_META_CONTEXT, 0, BASE_ALLOCATION) + metaReply(Option.LIST_META_CONTEXT, 0, 'x-remap:held') + ack(Option.LIST_META_CONTEXT),
    );
  });

  it('LIST matches namespace wildcards and exact names, each context once, and ignores the unknown', () => {
    const m = structured();
    expect(sent(m.push(list('dst', ['base:', BASE_ALLOCATION, 'nope:', 'base:nope', 'x-remap'])))).toBe(
      metaReply(Option.LIST_META_CONTEXT, 0, BASE_ALLOCATION) + ack(Option.LIST_META_CONTEXT),
    );
    expect(sent(m.push(list('dst', ['x-remap:held'])))).toBe(
      metaReply(Option.LIST_META_CONTEXT, 0, 'x-remap:held') + ack(Option.LIST_META_CONTEXT),
    );
    expect(sent(m.push(list('dst', ['qemu:'])))).toBe(ack(Option.LIST_META_CONTEXT));
  });

  it('SET selects exact names with stable ids, and replaces the earlier selection', () => {
    const m = structured();
    expect(sent(m.push(set('dst', ['x-remap:held', BASE_ALLOCATION])))).toBe(
      metaReply(Option.SET_META_CONTEXT, 1, BASE_ALLOCATION) + metaReply(Option.SET_META_CONTEXT, 2, 'x-remap:held') + ack(Option.SET_META_CONTEXT),
    );
    expect(sent(m.push(set('dst', ['x-remap:held'])))).toBe(
      metaReply(Option.SET_META_CONTEXT, 2, 'x-remap:held') + ack(Option.SET_META_CONTEXT),
    );
    expect([...sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst')))).metaContexts]).toEqual([[2, 'x-remap:held']]);
  });

  it('SET with no query, or only the base: wildcard, selects nothing', () => {
    const m = structured();
    m.push(set('dst', [BASE_ALLOCATION]));
    expect(sent(m.push(set('dst', [])))).toBe(ack(Option.SET_META_CONTEXT));
    expect(sent(m.push(set('dst', ['base:'])))).toBe(ack(Option.SET_META_CONTEXT));
    expect(sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst')))).metaContexts.size).toBe(0);
  });

  it('a SET too big to read (ERR_TOO_BIG) clears the selection too', () => {
    const m = started({ maxOptionLength: 1024 });
    m.push(encodeOptionRequest(Option.STRUCTURED_REPLY));
    m.push(set('dst', [BASE_ALLOCATION]));
    const big = encodeMetaContextRequest('dst', [BASE_ALLOCATION, 'x-'.padEnd(2000, 'y')]);
    expect(replyTypes(m.push(encodeOptionRequest(Option.SET_META_CONTEXT, big)))).toEqual([[Option.SET_META_CONTEXT, OptionReply.ERR_TOO_BIG]]);
    expect(sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst')))).metaContexts.size).toBe(0);
  });

  it('a failed SET clears the selection too, as the spec says', () => {
    const m = structured();
    m.push(set('dst', [BASE_ALLOCATION]));
    expect(replyTypes(m.push(set('nope', [BASE_ALLOCATION])))).toEqual([[Option.SET_META_CONTEXT, OptionReply.ERR_UNKNOWN]]);
    expect(sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst')))).metaContexts.size).toBe(0);
  });

  it('answers an unknown export with ERR_UNKNOWN and a malformed payload with ERR_INVALID', () => {
    const m = structured();
    expect(replyTypes(m.push(list('nope', [])))).toEqual([[Option.LIST_META_CONTEXT, OptionReply.ERR_UNKNOWN]]);
    expect(replyTypes(m.push(encodeOptionRequest(Option.LIST_META_CONTEXT, hex('00000003', ascii('dst')))))).toEqual([
      [Option.LIST_META_CONTEXT, OptionReply.ERR_INVALID],
    ]);
  });
});

describe('unknown and oversized options', () => {
  it('answers EXTENDED_HEADERS, PEEK_EXPORT and unknown options with ERR_UNSUP, then a GO succeeds', () => {
    const m = started();
    const events = m.push(
      Buffer.concat([
        encodeOptionRequest(Option.EXTENDED_HEADERS),
        encodeOptionRequest(Option.PEEK_EXPORT, hex('0102')),
        encodeOptionRequest(0x12345, hex('ff')),
        encodeOptionRequest(Option.GO, encodeInfoRequest('dst')),
      ]),
    );
    expect(replyTypes(events).slice(0, 3)).toEqual([
      [Option.EXTENDED_HEADERS, OptionReply.ERR_UNSUP],
      [Option.PEEK_EXPORT, OptionReply.ERR_UNSUP],
      [0x12345, OptionReply.ERR_UNSUP],
    ]);
    expect(replyMessage(events, 0)).toMatch(/EXTENDED_HEADERS is not supported/);
    expect(sessionOf(events).export.name).toBe('dst');
  });

  it('answers an oversized option with ERR_TOO_BIG, skips its data without holding it, then haggles on', () => {
    const m = started({ maxOptionLength: 1024 });
    const length = 64 * 1024 * 1024;
    const header = hex(IHAVEOPT, u32(Option.GO), u32(length));
    const first = m.push(header);
    expect(replyTypes(first)).toEqual([[Option.GO, OptionReply.ERR_TOO_BIG]]);
    expect(replyMessage(first, 0)).toMatch(/exceeds the limit of 1024/);
    const junk = Buffer.alloc(1024 * 1024, 0x49);
    for (let i = 0; i < length / junk.length - 1; i++) {
      expect(m.push(junk)).toEqual([]);
      expect(m.buffered).toBe(0);
    }
    const events = m.push(Buffer.concat([junk, encodeOptionRequest(Option.GO, encodeInfoRequest('src'))]));
    expect(sessionOf(events).export.name).toBe('src');
  });

  it('closes on an oversized EXPORT_NAME, which has no error reply', () => {
    const events = started({ maxOptionLength: 16 }).push(hex(IHAVEOPT, u32(Option.EXPORT_NAME), u32(17)));
    expect(events).toEqual([{ type: 'close', reason: expect.stringMatching(/EXPORT_NAME/) }]);
  });

  it('closes a client that sends more options than allowed', () => {
    const m = started({ maxOptions: 3 });
    for (let i = 0; i < 3; i++) expect(replyTypes(m.push(encodeOptionRequest(Option.LIST, hex('00'))))).toHaveLength(1);
    expect(m.push(encodeOptionRequest(Option.LIST))).toEqual([{ type: 'close', reason: expect.stringMatching(/more than 3/) }]);
  });

  it('closes on an option without the IHAVEOPT magic', () => {
    const events = started().push(hex('0102030405060708', '00000003', '00000000'));
    expect(events).toEqual([{ type: 'close', reason: expect.stringMatching(/IHAVEOPT/) }]);
  });
});

describe('STARTTLS', () => {
  it('is ERR_UNSUP when TLS is off, and haggling goes on', () => {
    const m = started();
    const events = m.push(encodeOptionRequest(Option.STARTTLS));
    expect(replyTypes(events)).toEqual([[Option.STARTTLS, OptionReply.ERR_UNSUP]]);
    expect(lastEvent(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst'))))?.type).toBe('done');
  });

  it('with TLS allowed: ACK then starttls; data or a second STARTTLS is ERR_INVALID', () => {
    const m = started({ tls: 'allowed' });
    expect(replyTypes(m.push(encodeOptionRequest(Option.STARTTLS, hex('00'))))).toEqual([[Option.STARTTLS, OptionReply.ERR_INVALID]]);
    expect(m.push(encodeOptionRequest(Option.STARTTLS))).toEqual([{ type: 'send', data: hex(ack(Option.STARTTLS)) }, { type: 'starttls' }]);
    expect(replyTypes(m.push(encodeOptionRequest(Option.STARTTLS)))).toEqual([[Option.STARTTLS, OptionReply.ERR_INVALID]]);
  });

  it('forgets structured replies and meta contexts negotiated before the upgrade', () => {
    const m = started({ tls: 'allowed' });
    m.push(encodeOptionRequest(Option.STRUCTURED_REPLY));
    m.push(encodeOptionRequest(Option.SET_META_CONTEXT, encodeMetaContextRequest('dst', [BASE_ALLOCATION])));
    m.push(encodeOptionRequest(Option.STARTTLS));
    const session = sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst'))));
    expect(session.structuredReplies).toBe(false);
    expect(session.metaContexts.size).toBe(0);
  });

  it('never treats plaintext queued behind STARTTLS as negotiation', () => {
    const m = started({ tls: 'allowed' });
    const events = m.push(Buffer.concat([encodeOptionRequest(Option.STARTTLS), encodeOptionRequest(Option.GO, encodeInfoRequest('dst'))]));
    expect(events.map((e) => e.type)).toEqual(['send', 'starttls']);
    expect(m.buffered).toBe(0);
    expect(replyTypes(m.push(encodeOptionRequest(Option.LIST)))).toContainEqual([Option.LIST, OptionReply.ACK]);
  });

  it('with TLS required: options before TLS get ERR_TLS_REQD, EXPORT_NAME closes, ABORT works', () => {
    const m = started({ tls: 'required' });
    expect(replyTypes(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst'))))).toEqual([[Option.GO, OptionReply.ERR_TLS_REQD]]);
    expect(replyTypes(m.push(encodeOptionRequest(Option.EXTENDED_HEADERS)))).toEqual([[Option.EXTENDED_HEADERS, OptionReply.ERR_TLS_REQD]]);
    expect(replyTypes(m.push(encodeOptionRequest(Option.LIST)))).toEqual([[Option.LIST, OptionReply.ERR_TLS_REQD]]);
    expect(lastEvent(m.push(encodeOptionRequest(Option.STARTTLS)))).toEqual({ type: 'starttls' });
    expect(sessionOf(m.push(encodeOptionRequest(Option.GO, encodeInfoRequest('dst')))).export.name).toBe('dst');

    expect(lastEvent(started({ tls: 'required' }).push(encodeOptionRequest(Option.EXPORT_NAME, Buffer.from('dst'))))?.type).toBe('close');
    const aborted = started({ tls: 'required' }).push(encodeOptionRequest(Option.ABORT));
    expect(sent(aborted)).toBe(ack(Option.ABORT));
    expect(lastEvent(aborted)?.type).toBe('close');
  });
});

describe('after the handshake', () => {
  it('hands over pipelined requests as leftover and refuses further bytes', () => {
    const m = started();
    const read = encodeRequest({ type: Command.READ, flags: 0, cookie: 1n, offset: 0, length: 512 });
    const session = sessionOf(m.push(Buffer.concat([encodeOptionRequest(Option.GO, encodeInfoRequest('dst')), read, read])));
    expect(session.leftover).toEqual(Buffer.concat([read, read]));
    expect(() => m.push(read)).toThrow(/transmission/);
  });
});
