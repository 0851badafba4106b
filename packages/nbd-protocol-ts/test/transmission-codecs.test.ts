import { describe, expect, it } from 'vitest';
import {
  Command,
  CommandFlag,
  Errno,
  ProtocolError,
  ReplyFlag,
  ReplyType,
  decodeChunkHeader,
  decodeChunkPayload,
  decodeRequest,
  decodeSimpleReply,
  encodeBlockStatus,
  encodeChunkHeader,
  encodeErrorChunk,
  encodeErrorOffsetChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHole,
  encodeRequest,
  encodeSimpleReply,
} from '../src/index.js';
import { ascii, hex } from './hex.js';

const COOKIE = '0102030405060708';
const cookie = 0x0102030405060708n;

describe('requests', () => {
  it('decodes a compact request: magic, flags, type, cookie, offset, u32 length', () => {
    const bytes = hex('25609513', '0001', '0001', COOKIE, '0000000000001000', '00000200');
    expect(decodeRequest(bytes)).toEqual({
      extended: false,
      flags: CommandFlag.FUA,
      type: Command.WRITE,
      cookie,
      offset: 4096,
      length: 512,
    });
  });

  it('decodes an extended request with a u64 length', () => {
    const bytes = hex('21e41c71', '0000', '0004', COOKIE, '0000010000000000', '0000000100000000');
    expect(decodeRequest(bytes)).toEqual({
      extended: true,
      flags: 0,
      type: Command.TRIM,
      cookie,
      offset: 2 ** 40,
      length: 2 ** 32,
    });
  });

  it('decodes at an offset and keeps cookies and offsets of all 64 bits', () => {
    const bytes = hex('eeee', '25609513', '0000', '0000', 'ffffffffffffffff', 'ffffffffffffffff', 'ffffffff');
    const r = decodeRequest(bytes, 2);
    expect(r.cookie).toBe(0xffffffffffffffffn);
    expect(r.offset).toBe(2 ** 64); // beyond 2^53 it is merely large: callers range-check
    expect(r.length).toBe(0xffffffff);
  });

  it('throws ProtocolError on a bad magic and RangeError on a short buffer', () => {
    expect(() => decodeRequest(hex('67446698', '00'.repeat(24)))).toThrow(ProtocolError);
    expect(() => decodeRequest(hex('25609513', '00'.repeat(23)))).toThrow(RangeError);
    expect(() => decodeRequest(hex('21e41c71', '00'.repeat(27)))).toThrow(RangeError);
  });

  it('encodes both forms, with an optional payload', () => {
    const init = { flags: CommandFlag.FUA, type: Command.WRITE, cookie, offset: 4096, length: 2 };
    expect(encodeRequest(init, hex('abcd'))).toEqual(hex('25609513', '0001', '0001', COOKIE, '0000000000001000', '00000002', 'abcd'));
    expect(encodeRequest({ ...init, extended: true })).toEqual(
      hex('21e41c71', '0001', '0001', COOKIE, '0000000000001000', '0000000000000002'),
    );
    expect(() => encodeRequest({ ...init, length: 2 ** 32 })).toThrow(RangeError);
  });
});

describe('simple replies', () => {
  it('are magic, error, cookie', () => {
    const bytes = encodeSimpleReply(cookie, Errno.EINVAL);
    expect(bytes).toEqual(hex('67446698', '00000016', COOKIE));
    expect(decodeSimpleReply(bytes)).toEqual({ errno: 22, cookie });
    expect(encodeSimpleReply(0n, 0)).toEqual(hex('67446698', '00000000', '0000000000000000'));
  });

  it('refuse a bad magic', () => {
    expect(() => decodeSimpleReply(hex('668e33ef', '00000000', COOKIE))).toThrow(ProtocolError);
  });
});

describe('structured reply chunks', () => {
  it('header: magic, flags, type, cookie, payload length', () => {
    const bytes = encodeChunkHeader(ReplyFlag.DONE, ReplyType.OFFSET_DATA, cookie, 16);
    expect(bytes).toEqual(hex('668e33ef', '0001', '0001', COOKIE, '00000010'));
    expect(decodeChunkHeader(bytes)).toEqual({ flags: 1, type: 1, cookie, length: 16 });
    expect(() => decodeChunkHeader(hex('67446698', '0001', '0001', COOKIE, '00000010'))).toThrow(ProtocolError);
  });

  it('OFFSET_DATA header counts the offset and the data the caller sends after it', () => {
    const bytes = encodeOffsetDataHeader(ReplyFlag.DONE, cookie, 0x200, 4096);
    expect(bytes).toEqual(hex('668e33ef', '0001', '0001', COOKIE, '00001008', '0000000000000200'));
    const payload = Buffer.concat([bytes.subarray(20), hex('aabb')]);
    expect(decodeChunkPayload(ReplyType.OFFSET_DATA, payload)).toEqual({ kind: 'data', offset: 0x200, data: hex('aabb') });
    expect(() => encodeOffsetDataHeader(0, cookie, 0, 0)).toThrow(RangeError);
  });

  it('OFFSET_HOLE: offset and u32 size', () => {
    const bytes = encodeOffsetHole(0, cookie, 0x2000, 0x1000);
    expect(bytes).toEqual(hex('668e33ef', '0000', '0002', COOKIE, '0000000c', '0000000000002000', '00001000'));
    expect(decodeChunkPayload(ReplyType.OFFSET_HOLE, bytes.subarray(20))).toEqual({ kind: 'hole', offset: 0x2000, length: 0x1000 });
    expect(() => encodeOffsetHole(0, cookie, 0, 0)).toThrow(RangeError);
  });

  it('BLOCK_STATUS: context id then (length, flags) descriptors', () => {
    const descriptors = [
      { length: 0x1000, flags: 3 },
      { length: 0x800, flags: 0 },
    ];
    const bytes = encodeBlockStatus(ReplyFlag.DONE, cookie, 1, descriptors);
    expect(bytes).toEqual(
      hex('668e33ef', '0001', '0005', COOKIE, '00000014', '00000001', '00001000', '00000003', '00000800', '00000000'),
    );
    expect(decodeChunkPayload(ReplyType.BLOCK_STATUS, bytes.subarray(20))).toEqual({ kind: 'block-status', contextId: 1, descriptors });
    expect(() => encodeBlockStatus(0, cookie, 1, [])).toThrow(RangeError);
    expect(() => encodeBlockStatus(0, cookie, 1, [{ length: 0, flags: 0 }])).toThrow(RangeError);
  });

  it('ERROR: u32 error, u16 message length, message', () => {
    const bytes = encodeErrorChunk(ReplyFlag.DONE, cookie, Errno.EIO, 'oo');
    expect(bytes).toEqual(hex('668e33ef', '0001', '8001', COOKIE, '00000008', '00000005', '0002', ascii('oo')));
    expect(decodeChunkPayload(ReplyType.ERROR, bytes.subarray(20))).toEqual({ kind: 'error', errno: 5, message: 'oo' });
    expect(() => encodeErrorChunk(0, cookie, 0, 'no error is not an error')).toThrow(RangeError);
  });

  it('ERROR truncates a message to the 4096-byte string limit', () => {
    const bytes = encodeErrorChunk(ReplyFlag.DONE, cookie, Errno.EIO, 'x'.repeat(70000));
    expect(bytes.readUInt32BE(16)).toBe(6 + 4096);
    expect(bytes.readUInt16BE(24)).toBe(4096);
    expect(bytes.length).toBe(20 + 6 + 4096);
  });

  it('ERROR_OFFSET: like ERROR followed by a u64 offset', () => {
    const bytes = encodeErrorOffsetChunk(0, cookie, Errno.EINVAL, 'oo', 0x200);
    expect(bytes).toEqual(hex('668e33ef', '0000', '8002', COOKIE, '00000010', '00000016', '0002', ascii('oo'), '0000000000000200'));
    expect(decodeChunkPayload(ReplyType.ERROR_OFFSET, bytes.subarray(20))).toEqual({
      kind: 'error',
      errno: 22,
      message: 'oo',
      offset: 0x200,
    });
  });

  it('NONE: DONE flag, no payload', () => {
    expect(encodeNoneChunk(cookie)).toEqual(hex('668e33ef', '0001', '0000', COOKIE, '00000000'));
    expect(decodeChunkPayload(ReplyType.NONE, Buffer.alloc(0))).toEqual({ kind: 'none' });
  });

  it('decoding rejects payloads whose size contradicts their type', () => {
    expect(() => decodeChunkPayload(ReplyType.NONE, hex('00'))).toThrow(ProtocolError);
    expect(() => decodeChunkPayload(ReplyType.OFFSET_DATA, hex('0000000000000000'))).toThrow(ProtocolError);
    expect(() => decodeChunkPayload(ReplyType.OFFSET_HOLE, hex('00'.repeat(11)))).toThrow(ProtocolError);
    expect(() => decodeChunkPayload(ReplyType.BLOCK_STATUS, hex('00000001'))).toThrow(ProtocolError);
    expect(() => decodeChunkPayload(ReplyType.BLOCK_STATUS, hex('00000001', '00'.repeat(9)))).toThrow(ProtocolError);
    expect(() => decodeChunkPayload(ReplyType.ERROR, hex('00000005', '0009', ascii('oo')))).toThrow(ProtocolError);
  });

  it('decoding passes unknown types through, marking error-class ones', () => {
    expect(decodeChunkPayload(0x8009, hex('00000005', '0000'))).toEqual({ kind: 'unknown', type: 0x8009, isError: true, payload: hex('00000005', '0000') });
    expect(decodeChunkPayload(3, hex('ab'))).toMatchObject({ kind: 'unknown', isError: false });
  });
});
