import { EXTENDED_REQUEST_MAGIC, REQUEST_MAGIC, Sizes } from './constants.js';
import { ProtocolError } from './protocol-errors.js';
import type { Request } from './types.js';
import { checkU16, checkU32, readU64, requireBytes, writeU64 } from './wire-numbers.js';

/**
 * Transmission requests. Compact (28 bytes): u32 magic 0x25609513, u16 flags,
 * u16 type, u64 cookie, u64 offset, u32 length. Extended (32 bytes, only after
 * NBD_OPT_EXTENDED_HEADERS): same with magic 0x21e41c71 and a u64 length.
 */

export type RequestInit = Omit<Request, 'extended'> & { extended?: boolean };

export function requestHeaderLength(extended: boolean): number {
  return extended ? Sizes.EXTENDED_REQUEST : Sizes.COMPACT_REQUEST;
}

/** Decodes one request header (either form, told apart by its magic). A wrong magic is a ProtocolError. */
export function decodeRequest(buf: Buffer, offset = 0): Request {
  requireBytes(buf, offset, 4, 'request magic');
  const magic = buf.readUInt32BE(offset);
  const extended = magic === EXTENDED_REQUEST_MAGIC;
  if (!extended && magic !== REQUEST_MAGIC) {
    throw new ProtocolError(`bad request magic 0x${magic.toString(16).padStart(8, '0')}`);
  }
  requireBytes(buf, offset, requestHeaderLength(extended), extended ? 'extended request' : 'request');
  return {
    extended,
    flags: buf.readUInt16BE(offset + 4),
    type: buf.readUInt16BE(offset + 6),
    cookie: buf.readBigUInt64BE(offset + 8),
    offset: readU64(buf, offset + 16),
    length: extended ? readU64(buf, offset + 24) : buf.readUInt32BE(offset + 24),
  };
}

/** For clients and tests: a request header, followed by the payload if one is given. */
export function encodeRequest(r: RequestInit, payload?: Buffer): Buffer {
  const extended = r.extended ?? false;
  const headerLength = requestHeaderLength(extended);
  const buf = Buffer.alloc(headerLength + (payload?.length ?? 0));
  buf.writeUInt32BE(extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC, 0);
  buf.writeUInt16BE(checkU16(r.flags, 'command flags'), 4);
  buf.writeUInt16BE(checkU16(r.type, 'command type'), 6);
  buf.writeBigUInt64BE(BigInt.asUintN(64, r.cookie), 8);
  writeU64(buf, r.offset, 16);
  if (extended) writeU64(buf, r.length, 24);
  else buf.writeUInt32BE(checkU32(r.length, 'request length'), 24);
  payload?.copy(buf, headerLength);
  return buf;
}
