import { ReplyFlag, ReplyType, STRUCTURED_REPLY_MAGIC, Sizes, isReplyTypeError } from './constants.js';
import { ProtocolError } from './protocol-errors.js';
import type { StatusDescriptor } from './types.js';
import { checkU16, checkU32, readU64, requireBytes, writeU64 } from './wire-numbers.js';
import { encodeTextTruncated } from './wire-strings.js';

/**
 * Structured reply chunks: a 20-byte header (u32 magic 0x668e33ef, u16 flags,
 * u16 type, u64 cookie, u32 payload length) and a payload whose layout the
 * type decides.
 */

const HEADER = Sizes.STRUCTURED_REPLY_HEADER;
const MAX_U32 = 0xffffffff;

export interface ChunkHeader {
  flags: number;
  type: number;
  cookie: bigint;
  /** Payload length. */
  length: number;
}

export function encodeChunkHeader(flags: number, type: number, cookie: bigint, payloadLength: number): Buffer {
  const buf = Buffer.alloc(HEADER);
  writeChunkHeader(buf, flags, type, cookie, payloadLength);
  return buf;
}

function writeChunkHeader(buf: Buffer, flags: number, type: number, cookie: bigint, payloadLength: number): void {
  buf.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  buf.writeUInt16BE(checkU16(flags, 'reply flags'), 4);
  buf.writeUInt16BE(checkU16(type, 'reply type'), 6);
  buf.writeBigUInt64BE(BigInt.asUintN(64, cookie), 8);
  buf.writeUInt32BE(checkU32(payloadLength, 'chunk payload length'), 16);
}

export function decodeChunkHeader(buf: Buffer, offset = 0): ChunkHeader {
  requireBytes(buf, offset, HEADER, 'structured reply chunk header');
  const magic = buf.readUInt32BE(offset);
  if (magic !== STRUCTURED_REPLY_MAGIC) {
    throw new ProtocolError(`bad structured reply magic 0x${magic.toString(16).padStart(8, '0')}`);
  }
  return {
    flags: buf.readUInt16BE(offset + 4),
    type: buf.readUInt16BE(offset + 6),
    cookie: buf.readBigUInt64BE(offset + 8),
    length: buf.readUInt32BE(offset + 16),
  };
}

/**
 * Header and offset of an OFFSET_DATA chunk, without the data: the caller
 * writes the data right after it, so a large read is never copied.
 */
export function encodeOffsetDataHeader(flags: number, cookie: bigint, offset: number, dataLength: number): Buffer {
  if (!Number.isInteger(dataLength) || dataLength < 1 || dataLength > MAX_U32 - 8) {
    throw new RangeError(`OFFSET_DATA must carry 1 to ${MAX_U32 - 8} bytes, got ${dataLength}`);
  }
  const buf = Buffer.alloc(HEADER + 8);
  writeChunkHeader(buf, flags, ReplyType.OFFSET_DATA, cookie, 8 + dataLength);
  writeU64(buf, offset, HEADER);
  return buf;
}

/** OFFSET_HOLE: u64 offset, u32 hole size (non-zero). */
export function encodeOffsetHole(flags: number, cookie: bigint, offset: number, length: number): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > MAX_U32) {
    throw new RangeError(`a hole must be 1 to ${MAX_U32} bytes, got ${length}`);
  }
  const buf = Buffer.alloc(HEADER + 12);
  writeChunkHeader(buf, flags, ReplyType.OFFSET_HOLE, cookie, 12);
  writeU64(buf, offset, HEADER);
  buf.writeUInt32BE(length, HEADER + 8);
  return buf;
}

/** BLOCK_STATUS: u32 context id, then one or more descriptors of u32 length (non-zero), u32 flags. */
export function encodeBlockStatus(
  flags: number,
  cookie: bigint,
  contextId: number,
  descriptors: readonly StatusDescriptor[],
): Buffer {
  if (descriptors.length === 0) throw new RangeError('a block status chunk needs at least one descriptor');
  const payloadLength = 4 + 8 * descriptors.length;
  const buf = Buffer.alloc(HEADER + payloadLength);
  writeChunkHeader(buf, flags, ReplyType.BLOCK_STATUS, cookie, payloadLength);
  buf.writeUInt32BE(checkU32(contextId, 'meta context id'), HEADER);
  let at = HEADER + 4;
  for (const d of descriptors) {
    if (!Number.isInteger(d.length) || d.length < 1 || d.length > MAX_U32) {
      throw new RangeError(`a block status descriptor must cover 1 to ${MAX_U32} bytes, got ${d.length}`);
    }
    at = buf.writeUInt32BE(d.length, at);
    at = buf.writeUInt32BE(checkU32(d.flags, 'status flags'), at);
  }
  return buf;
}

/** ERROR: u32 error (non-zero), u16 message length, message (cut to the 4096-byte string limit). */
export function encodeErrorChunk(flags: number, cookie: bigint, errno: number, message: string): Buffer {
  return encodeError(flags, ReplyType.ERROR, cookie, errno, message, undefined);
}

/** ERROR_OFFSET: like ERROR, then the u64 offset where the error happened. */
export function encodeErrorOffsetChunk(flags: number, cookie: bigint, errno: number, message: string, offset: number): Buffer {
  return encodeError(flags, ReplyType.ERROR_OFFSET, cookie, errno, message, offset);
}

function encodeError(
  flags: number,
  type: number,
  cookie: bigint,
  errno: number,
  message: string,
  offset: number | undefined,
): Buffer {
  if (!Number.isInteger(errno) || errno < 1 || errno > MAX_U32) {
    throw new RangeError(`an error chunk needs a non-zero 32-bit error, got ${errno}`);
  }
  const text = encodeTextTruncated(message);
  const payloadLength = 6 + text.length + (offset === undefined ? 0 : 8);
  const buf = Buffer.alloc(HEADER + payloadLength);
  writeChunkHeader(buf, flags, type, cookie, payloadLength);
  buf.writeUInt32BE(errno, HEADER);
  buf.writeUInt16BE(text.length, HEADER + 4);
  text.copy(buf, HEADER + 6);
  if (offset !== undefined) writeU64(buf, offset, HEADER + 6 + text.length);
  return buf;
}

/** NONE with DONE: the reply is complete and (absent earlier error chunks) successful. */
export function encodeNoneChunk(cookie: bigint): Buffer {
  return encodeChunkHeader(ReplyFlag.DONE, ReplyType.NONE, cookie, 0);
}

export type ChunkPayload =
  | { kind: 'none' }
  | { kind: 'data'; offset: number; data: Buffer }
  | { kind: 'hole'; offset: number; length: number }
  | { kind: 'block-status'; contextId: number; descriptors: StatusDescriptor[] }
  | { kind: 'error'; errno: number; message: string; offset?: number }
  /** A type this package does not know; only error-class types may be tolerated by a client. */
  | { kind: 'unknown'; type: number; isError: boolean; payload: Buffer };

/** For clients: interprets a chunk payload, checking the lengths the spec fixes for each type. */
export function decodeChunkPayload(type: number, payload: Buffer): ChunkPayload {
  switch (type) {
    case ReplyType.NONE:
      if (payload.length !== 0) throw new ProtocolError(`NONE chunk with a ${payload.length}-byte payload`);
      return { kind: 'none' };
    case ReplyType.OFFSET_DATA:
      if (payload.length < 9) throw new ProtocolError(`OFFSET_DATA payload of ${payload.length} bytes (minimum 9)`);
      return { kind: 'data', offset: readU64(payload, 0), data: payload.subarray(8) };
    case ReplyType.OFFSET_HOLE:
      if (payload.length !== 12) throw new ProtocolError(`OFFSET_HOLE payload of ${payload.length} bytes (must be 12)`);
      return { kind: 'hole', offset: readU64(payload, 0), length: payload.readUInt32BE(8) };
    case ReplyType.BLOCK_STATUS: {
      if (payload.length < 12 || (payload.length - 4) % 8 !== 0) {
        throw new ProtocolError(`BLOCK_STATUS payload of ${payload.length} bytes (must be 4 + 8n, n >= 1)`);
      }
      const descriptors: StatusDescriptor[] = [];
      for (let at = 4; at < payload.length; at += 8) {
        descriptors.push({ length: payload.readUInt32BE(at), flags: payload.readUInt32BE(at + 4) });
      }
      return { kind: 'block-status', contextId: payload.readUInt32BE(0), descriptors };
    }
    case ReplyType.ERROR:
    case ReplyType.ERROR_OFFSET: {
      const trailer = type === ReplyType.ERROR_OFFSET ? 8 : 0;
      const { errno, message } = decodeErrorPrefix(payload, trailer);
      if (trailer === 0) return { kind: 'error', errno, message };
      return { kind: 'error', errno, message, offset: readU64(payload, payload.length - 8) };
    }
    default:
      return { kind: 'unknown', type, isError: isReplyTypeError(type), payload };
  }
}

/** Every error chunk starts with u32 error, u16 message length, message; `trailer` bytes of typed fields follow. */
function decodeErrorPrefix(payload: Buffer, trailer: number): { errno: number; message: string } {
  if (payload.length < 6 + trailer) throw new ProtocolError(`error chunk payload of ${payload.length} bytes is too short`);
  const messageLength = payload.readUInt16BE(4);
  if (6 + messageLength + trailer !== payload.length) {
    throw new ProtocolError(`error message length ${messageLength} does not fit the ${payload.length}-byte payload`);
  }
  return { errno: payload.readUInt32BE(0), message: payload.toString('utf8', 6, 6 + messageLength) };
}
