import { Sizes, TransmissionFlag } from './constants.js';
import { checkU16, readU64, requireBytes, writeU64 } from './wire-numbers.js';

const SIZE_AND_FLAGS = 10;

/**
 * The answer to NBD_OPT_EXPORT_NAME, the one option without an option-reply
 * frame: u64 size, u16 transmission flags, then 124 zero bytes unless the
 * client set NBD_FLAG_C_NO_ZEROES.
 */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const buf = Buffer.alloc(SIZE_AND_FLAGS + (noZeroes ? 0 : Sizes.EXPORT_NAME_ZEROES));
  writeU64(buf, size, 0);
  buf.writeUInt16BE(checkU16(transmissionFlags | TransmissionFlag.HAS_FLAGS, 'transmission flags'), 8);
  return buf;
}

/** For clients: size and flags; the caller knows whether 124 zero bytes follow (it chose NO_ZEROES). */
export function decodeExportNameReply(buf: Buffer, offset = 0): { size: number; transmissionFlags: number } {
  requireBytes(buf, offset, SIZE_AND_FLAGS, 'export name reply');
  return { size: readU64(buf, offset), transmissionFlags: buf.readUInt16BE(offset + 8) };
}
