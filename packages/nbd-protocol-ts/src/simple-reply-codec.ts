import { SIMPLE_REPLY_MAGIC, Sizes } from './constants.js';
import { ProtocolError } from './protocol-errors.js';
import { checkU32, requireBytes } from './wire-numbers.js';

/** The simple reply (16 bytes): u32 magic 0x67446698, u32 error, u64 cookie. A READ's data follows it. */
export function encodeSimpleReply(cookie: bigint, errno: number): Buffer {
  const buf = Buffer.alloc(Sizes.SIMPLE_REPLY);
  buf.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  buf.writeUInt32BE(checkU32(errno, 'error'), 4);
  buf.writeBigUInt64BE(BigInt.asUintN(64, cookie), 8);
  return buf;
}

export function decodeSimpleReply(buf: Buffer, offset = 0): { errno: number; cookie: bigint } {
  requireBytes(buf, offset, Sizes.SIMPLE_REPLY, 'simple reply');
  const magic = buf.readUInt32BE(offset);
  if (magic !== SIMPLE_REPLY_MAGIC) throw new ProtocolError(`bad simple reply magic 0x${magic.toString(16).padStart(8, '0')}`);
  return { errno: buf.readUInt32BE(offset + 4), cookie: buf.readBigUInt64BE(offset + 8) };
}
