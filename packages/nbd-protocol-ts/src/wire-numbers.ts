/**
 * 64-bit fields carry offsets and sizes as JS numbers. Writing refuses what a
 * number cannot say exactly; reading converts even values above 2^53 (they
 * just lose precision and are far out of any export's range, so callers'
 * range checks reject them).
 */
export function writeU64(buf: Buffer, value: number, offset: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`64-bit field must be a non-negative safe integer, got ${value}`);
  }
  buf.writeBigUInt64BE(BigInt(value), offset);
}

export function readU64(buf: Buffer, offset: number): number {
  return Number(buf.readBigUInt64BE(offset));
}

export function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${what} must fit in 32 bits, got ${value}`);
  }
  return value;
}

export function checkU16(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new RangeError(`${what} must fit in 16 bits, got ${value}`);
  }
  return value;
}

/** Throws a RangeError naming the codec when a decoder is handed fewer bytes than its fixed size. */
export function requireBytes(buf: Buffer, offset: number, needed: number, what: string): void {
  if (offset < 0 || buf.length - offset < needed) {
    throw new RangeError(`${what} needs ${needed} bytes at offset ${offset}, buffer has ${Math.max(0, buf.length - offset)}`);
  }
}
