import { Info, TransmissionFlag } from './constants.js';
import { ProtocolError } from './protocol-errors.js';
import type { BlockSizeConstraints } from './types.js';
import { encodeName, encodeTextTruncated } from './wire-strings.js';
import { checkU16, checkU32, readU64, writeU64 } from './wire-numbers.js';

/** Data of NBD_REP_INFO, NBD_REP_SERVER and NBD_REP_META_CONTEXT replies. */

const INFO_EXPORT_LENGTH = 12;
const INFO_BLOCK_SIZE_LENGTH = 14;

/** NBD_INFO_EXPORT: u16 type, u64 size, u16 transmission flags (HAS_FLAGS always set). */
export function encodeInfoExport(size: number, transmissionFlags: number): Buffer {
  const buf = Buffer.alloc(INFO_EXPORT_LENGTH);
  buf.writeUInt16BE(Info.EXPORT, 0);
  writeU64(buf, size, 2);
  buf.writeUInt16BE(checkU16(transmissionFlags | TransmissionFlag.HAS_FLAGS, 'transmission flags'), 10);
  return buf;
}

/** NBD_INFO_NAME: u16 type, the canonical export name. */
export function encodeInfoName(name: string): Buffer {
  return withInfoType(Info.NAME, encodeName(name, 'export name'));
}

/** NBD_INFO_DESCRIPTION: u16 type, human-readable text (cut to the 4096-byte string limit). */
export function encodeInfoDescription(text: string): Buffer {
  return withInfoType(Info.DESCRIPTION, encodeTextTruncated(text));
}

/** NBD_INFO_BLOCK_SIZE: u16 type, u32 minimum, u32 preferred, u32 maximum. */
export function encodeInfoBlockSize(c: BlockSizeConstraints): Buffer {
  const buf = Buffer.alloc(INFO_BLOCK_SIZE_LENGTH);
  buf.writeUInt16BE(Info.BLOCK_SIZE, 0);
  buf.writeUInt32BE(checkU32(c.minimum, 'minimum block size'), 2);
  buf.writeUInt32BE(checkU32(c.preferred, 'preferred block size'), 6);
  buf.writeUInt32BE(checkU32(c.maximum, 'maximum block size'), 10);
  return buf;
}

function withInfoType(type: number, body: Buffer): Buffer {
  const buf = Buffer.alloc(2 + body.length);
  buf.writeUInt16BE(type, 0);
  body.copy(buf, 2);
  return buf;
}

export type InfoReply =
  | { kind: 'export'; size: number; transmissionFlags: number }
  | { kind: 'name'; name: string }
  | { kind: 'description'; description: string }
  | { kind: 'block-size'; blockSize: BlockSizeConstraints }
  /** Clients must ignore information types they do not know (spec: NBD_REP_INFO). */
  | { kind: 'unknown'; infoType: number; data: Buffer };

/** For clients: the data of one NBD_REP_INFO reply. */
export function decodeInfoReply(data: Buffer): InfoReply {
  if (data.length < 2) throw new ProtocolError(`NBD_REP_INFO of ${data.length} bytes has no information type`);
  const infoType = data.readUInt16BE(0);
  switch (infoType) {
    case Info.EXPORT:
      expectLength(data, INFO_EXPORT_LENGTH, 'NBD_INFO_EXPORT');
      return { kind: 'export', size: readU64(data, 2), transmissionFlags: data.readUInt16BE(10) };
    case Info.NAME:
      return { kind: 'name', name: data.toString('utf8', 2) };
    case Info.DESCRIPTION:
      return { kind: 'description', description: data.toString('utf8', 2) };
    case Info.BLOCK_SIZE:
      expectLength(data, INFO_BLOCK_SIZE_LENGTH, 'NBD_INFO_BLOCK_SIZE');
      return {
        kind: 'block-size',
        blockSize: { minimum: data.readUInt32BE(2), preferred: data.readUInt32BE(6), maximum: data.readUInt32BE(10) },
      };
    default:
      return { kind: 'unknown', infoType, data: data.subarray(2) };
  }
}

function expectLength(data: Buffer, length: number, what: string): void {
  if (data.length !== length) throw new ProtocolError(`${what} must be ${length} bytes, got ${data.length}`);
}

/** NBD_REP_SERVER: u32 name length, name, then an optional description for humans. */
export function encodeServerReplyData(name: string, description?: string): Buffer {
  const nameBytes = encodeName(name, 'export name');
  const descriptionBytes = description ? encodeTextTruncated(description) : Buffer.alloc(0);
  const buf = Buffer.alloc(4 + nameBytes.length + descriptionBytes.length);
  buf.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(buf, 4);
  descriptionBytes.copy(buf, 4 + nameBytes.length);
  return buf;
}

/** For clients: the data of one NBD_REP_SERVER reply. */
export function decodeServerReplyData(data: Buffer): { name: string; description: string } {
  if (data.length < 4) throw new ProtocolError(`NBD_REP_SERVER of ${data.length} bytes has no name length`);
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 4) {
    throw new ProtocolError(`NBD_REP_SERVER name length ${nameLength} overruns the ${data.length}-byte reply`);
  }
  return {
    name: data.toString('utf8', 4, 4 + nameLength),
    description: data.toString('utf8', 4 + nameLength),
  };
}

/** NBD_REP_META_CONTEXT: u32 context id, context name. */
export function encodeMetaContextReplyData(id: number, name: string): Buffer {
  const nameBytes = encodeName(name, 'meta context name');
  const buf = Buffer.alloc(4 + nameBytes.length);
  buf.writeUInt32BE(checkU32(id, 'meta context id'), 0);
  nameBytes.copy(buf, 4);
  return buf;
}

/** For clients: the data of one NBD_REP_META_CONTEXT reply. */
export function decodeMetaContextReplyData(data: Buffer): { id: number; name: string } {
  if (data.length < 4) throw new ProtocolError(`NBD_REP_META_CONTEXT of ${data.length} bytes has no context id`);
  return { id: data.readUInt32BE(0), name: data.toString('utf8', 4) };
}
