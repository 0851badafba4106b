import { describe, expect, it } from 'vitest';
import {
  Info,
  Option,
  OptionReply,
  ProtocolError,
  TransmissionFlag,
  decodeClientFlags,
  decodeExportNameReply,
  decodeGreeting,
  decodeInfoReply,
  decodeMetaContextReplyData,
  decodeOptionReplyHeader,
  decodeOptionRequestHeader,
  decodeServerReplyData,
  encodeClientFlags,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoDescription,
  encodeInfoExport,
  encodeInfoName,
  encodeMetaContextReplyData,
  encodeOptionReply,
  encodeOptionRequest,
  encodeServerReplyData,
} from '../src/index.js';
import { ascii, hex } from './hex.js';

const NBDMAGIC = '4e42444d41474943';
const IHAVEOPT = '49484156454f5054';
const REPLY_MAGIC = '0003e889045565a9';

describe('greeting and client flags', () => {
  it('greets with NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE|NO_ZEROES', () => {
    expect(encodeGreeting()).toEqual(hex(NBDMAGIC, IHAVEOPT, '0003'));
    expect(decodeGreeting(hex(NBDMAGIC, IHAVEOPT, '0001'))).toEqual({ handshakeFlags: 1 });
  });

  it('refuses an oldstyle or foreign greeting', () => {
    expect(() => decodeGreeting(hex(NBDMAGIC, '0000420281861253', '0000'))).toThrow(ProtocolError);
    expect(() => decodeGreeting(hex('00'.repeat(18)))).toThrow(ProtocolError);
    expect(() => decodeGreeting(hex(NBDMAGIC, IHAVEOPT))).toThrow(RangeError);
  });

  it('codes client flags as a big-endian u32', () => {
    expect(encodeClientFlags(3)).toEqual(hex('00000003'));
    expect(decodeClientFlags(hex('80000001'))).toBe(0x80000001);
  });
});

describe('option requests and replies', () => {
  it('frames an option request: IHAVEOPT, option, length, data', () => {
    expect(encodeOptionRequest(Option.LIST)).toEqual(hex(IHAVEOPT, '00000003', '00000000'));
    const go = encodeOptionRequest(Option.GO, hex('00000001', ascii('a'), '0000'));
    expect(go).toEqual(hex(IHAVEOPT, '00000007', '00000007', '00000001 61 0000'));
    expect(decodeOptionRequestHeader(go)).toEqual({ magic: 0x49484156454f5054n, option: 7, length: 7 });
  });

  it('decodes a header at an offset and reports a wrong magic without judging it', () => {
    const bytes = hex('ffff', '0102030405060708', '0000000b', '00010000');
    expect(decodeOptionRequestHeader(bytes, 2)).toEqual({ magic: 0x0102030405060708n, option: 11, length: 65536 });
  });

  it('frames an option reply: magic, option, type, length, data', () => {
    expect(encodeOptionReply(Option.GO, OptionReply.ACK)).toEqual(hex(REPLY_MAGIC, '00000007', '00000001', '00000000'));
    const err = encodeOptionReply(Option.EXTENDED_HEADERS, OptionReply.ERR_UNSUP, Buffer.from('no'));
    expect(err).toEqual(hex(REPLY_MAGIC, '0000000b', '80000001', '00000002', ascii('no')));
    expect(decodeOptionReplyHeader(err)).toEqual({ option: 11, replyType: 0x80000001, length: 2 });
  });

  it('refuses an option reply with a bad magic', () => {
    expect(() => decodeOptionReplyHeader(hex(IHAVEOPT, '00000007', '00000001', '00000000'))).toThrow(ProtocolError);
  });
});

describe('NBD_REP_INFO payloads', () => {
  it('INFO_EXPORT: type 0, u64 size, u16 flags with HAS_FLAGS added', () => {
    const bytes = encodeInfoExport(0x123456789a, TransmissionFlag.SEND_FLUSH);
    expect(bytes).toEqual(hex('0000', '000000123456789a', '0005'));
    expect(decodeInfoReply(bytes)).toEqual({ kind: 'export', size: 0x123456789a, transmissionFlags: 5 });
  });

  it('INFO_NAME: type 1 then the name', () => {
    const bytes = encodeInfoName('disk');
    expect(bytes).toEqual(hex('0001', ascii('disk')));
    expect(decodeInfoReply(bytes)).toEqual({ kind: 'name', name: 'disk' });
  });

  it('INFO_DESCRIPTION: type 2 then the text, cut to 4096 bytes on a character boundary', () => {
    expect(encodeInfoDescription('hi')).toEqual(hex('0002', ascii('hi')));
    const long = encodeInfoDescription('é'.repeat(3000)); // 6000 bytes of 2-byte characters
    expect(long.length).toBe(2 + 4096);
    expect(decodeInfoReply(long)).toEqual({ kind: 'description', description: 'é'.repeat(2048) });
    const odd = encodeInfoDescription('a' + 'é'.repeat(3000)); // a cut at 4096 would split a character
    expect(odd.length).toBe(2 + 4095);
  });

  it('INFO_BLOCK_SIZE: type 3, u32 minimum, preferred, maximum', () => {
    const bytes = encodeInfoBlockSize({ minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 });
    expect(bytes).toEqual(hex('0003', '00000001', '00001000', '02000000'));
    expect(decodeInfoReply(bytes)).toEqual({
      kind: 'block-size',
      blockSize: { minimum: 1, preferred: 4096, maximum: 0x2000000 },
    });
  });

  it('passes unknown information types through and rejects malformed known ones', () => {
    expect(decodeInfoReply(hex('0009', 'abcd'))).toEqual({ kind: 'unknown', infoType: 9, data: hex('abcd') });
    expect(() => decodeInfoReply(hex('0000', '0000000000000001'))).toThrow(ProtocolError);
    expect(() => decodeInfoReply(hex('00'))).toThrow(ProtocolError);
    expect(Info.BLOCK_SIZE).toBe(3);
  });

  it('refuses to encode what the wire cannot carry', () => {
    expect(() => encodeInfoExport(2 ** 53, 0)).toThrow(RangeError);
    expect(() => encodeInfoExport(-1, 0)).toThrow(RangeError);
    expect(() => encodeInfoName('n'.repeat(4097))).toThrow(RangeError);
    expect(() => encodeInfoBlockSize({ minimum: 1, preferred: 4096, maximum: 2 ** 32 })).toThrow(RangeError);
  });
});

describe('NBD_REP_SERVER and NBD_REP_META_CONTEXT payloads', () => {
  it('REP_SERVER: u32 name length, name, optional description', () => {
    expect(encodeServerReplyData('src', 'old')).toEqual(hex('00000003', ascii('src'), ascii('old')));
    expect(encodeServerReplyData('src')).toEqual(hex('00000003', ascii('src')));
    expect(decodeServerReplyData(hex('00000003', ascii('src'), ascii('old')))).toEqual({ name: 'src', description: 'old' });
    expect(() => decodeServerReplyData(hex('00000009', ascii('src')))).toThrow(ProtocolError);
  });

  it('REP_META_CONTEXT: u32 id, name', () => {
    const bytes = encodeMetaContextReplyData(1, 'base:allocation');
    expect(bytes).toEqual(hex('00000001', ascii('base:allocation')));
    expect(decodeMetaContextReplyData(bytes)).toEqual({ id: 1, name: 'base:allocation' });
  });
});

describe('NBD_OPT_EXPORT_NAME reply', () => {
  it('is size, flags with HAS_FLAGS, then 124 zero bytes', () => {
    const bytes = encodeExportNameReply(0x40000000, TransmissionFlag.SEND_FLUSH, false);
    expect(bytes).toEqual(hex('0000000040000000', '0005', '00'.repeat(124)));
    expect(bytes.length).toBe(134);
    expect(decodeExportNameReply(bytes)).toEqual({ size: 0x40000000, transmissionFlags: 5 });
  });

  it('omits the zeroes when the client set NO_ZEROES', () => {
    expect(encodeExportNameReply(512, TransmissionFlag.READ_ONLY, true)).toEqual(hex('0000000000000200', '0003'));
  });
});
