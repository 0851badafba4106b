import { IHAVEOPT_MAGIC, OPTION_REPLY_MAGIC, Sizes } from './constants.js';
import { ProtocolError } from './protocol-errors.js';
import { checkU32, requireBytes } from './wire-numbers.js';

/** Framing of option haggling: the client's option requests and the server's option replies. */

export interface OptionRequestHeader {
  /** Must equal IHAVEOPT_MAGIC; returned rather than checked so the caller decides how to react. */
  magic: bigint;
  option: number;
  /** Length of the option data that follows. */
  length: number;
}

export interface OptionReplyHeader {
  option: number;
  replyType: number;
  /** Length of the reply data that follows. */
  length: number;
}

const EMPTY = Buffer.alloc(0);

/** C: IHAVEOPT, u32 option, u32 data length, data. */
export function encodeOptionRequest(option: number, data: Buffer = EMPTY): Buffer {
  const buf = Buffer.alloc(Sizes.OPTION_REQUEST_HEADER + data.length);
  buf.writeBigUInt64BE(IHAVEOPT_MAGIC, 0);
  buf.writeUInt32BE(checkU32(option, 'option'), 8);
  buf.writeUInt32BE(data.length, 12);
  data.copy(buf, Sizes.OPTION_REQUEST_HEADER);
  return buf;
}

export function decodeOptionRequestHeader(buf: Buffer, offset = 0): OptionRequestHeader {
  requireBytes(buf, offset, Sizes.OPTION_REQUEST_HEADER, 'option request header');
  return {
    magic: buf.readBigUInt64BE(offset),
    option: buf.readUInt32BE(offset + 8),
    length: buf.readUInt32BE(offset + 12),
  };
}

/** S: u64 reply magic, u32 option, u32 reply type, u32 data length, data. */
export function encodeOptionReply(option: number, replyType: number, data: Buffer = EMPTY): Buffer {
  const buf = Buffer.alloc(Sizes.OPTION_REPLY_HEADER + data.length);
  buf.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  buf.writeUInt32BE(checkU32(option, 'option'), 8);
  buf.writeUInt32BE(checkU32(replyType, 'reply type'), 12);
  buf.writeUInt32BE(checkU32(data.length, 'reply data length'), 16);
  data.copy(buf, Sizes.OPTION_REPLY_HEADER);
  return buf;
}

/** For clients: the header of an option reply; a wrong magic means the stream is out of sync. */
export function decodeOptionReplyHeader(buf: Buffer, offset = 0): OptionReplyHeader {
  requireBytes(buf, offset, Sizes.OPTION_REPLY_HEADER, 'option reply header');
  const magic = buf.readBigUInt64BE(offset);
  if (magic !== OPTION_REPLY_MAGIC) throw new ProtocolError(`bad option reply magic 0x${magic.toString(16)}`);
  return {
    option: buf.readUInt32BE(offset + 8),
    replyType: buf.readUInt32BE(offset + 12),
    length: buf.readUInt32BE(offset + 16),
  };
}
