/**
 * One shared buffer of zeroes for every layer: the reference for the all-zero
 * check and the source of zero fills (writing zeroes to a terabyte costs a MiB).
 */
const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

/** A read-only view of `length` zero bytes (length ≤ 1 MiB). */
export function zeroes(length: number): Buffer {
  if (length > ZERO_CHUNK.length) throw new RangeError(`zeroes(${length}): at most ${ZERO_CHUNK.length} bytes`);
  return ZERO_CHUNK.subarray(0, length);
}

export const ZERO_CHUNK_BYTES = ZERO_CHUNK.length;

/**
 * True when every byte is zero. Buffer.compare with ranges is a memcmp in C++
 * against the shared zero buffer: memory speed, and no view objects allocated
 * (this runs for every block written).
 */
export function isAllZero(data: Buffer): boolean {
  // Most data blocks give themselves away in their first or last byte, without the call into C++.
  if (data.length > 0 && (data[0] !== 0 || data[data.length - 1] !== 0)) return false;
  for (let at = 0; at < data.length; at += ZERO_CHUNK.length) {
    const end = Math.min(data.length, at + ZERO_CHUNK.length);
    if (data.compare(ZERO_CHUNK, 0, end - at, at, end) !== 0) return false;
  }
  return true;
}

/** Writes zeroes over [offset, offset+length) with `write`, a MiB at a time, from the shared buffer. */
export async function writeZeroesWith(write: (offset: number, data: Buffer) => Promise<void>, offset: number, length: number): Promise<void> {
  for (let at = 0; at < length; at += ZERO_CHUNK.length) await write(offset + at, zeroes(Math.min(ZERO_CHUNK.length, length - at)));
}
