import { crc32 } from 'node:zlib';

/**
 * One frame of the state file:
 *
 *   0  u32  magic 0x4652424e ("NBRF" little-endian)
 *   4  u32  payload length L
 *   8  u64  batch number (the commit group; 0 for the header)
 *  16  u8   kind (FrameKind)
 *  17  3    reserved, zero
 *  20  L    payload
 *  20+L u32 crc32 of bytes [0, 20+L), started from the file's frame seed
 *            (StateIdentity.frameSeed; 0 for the header, which holds it)
 *
 * The magic and the checksum let recovery tell a complete frame from a torn
 * or zero-filled tail; the batch number lets it tell a torn last commit group
 * from damage in the middle of the log.
 */
export const FRAME_MAGIC = 0x4652424e;
export const FRAME_HEADER_BYTES = 20;
export const FRAME_OVERHEAD = FRAME_HEADER_BYTES + 4;
/** Bigger payloads are split by the writer; a larger length field is damage, not data. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

export enum FrameKind {
  // State records (the engine's StateRecord types).
  Free = 1,
  Unfree = 2,
  Seal = 3,
  Release = 4,
  Checkpoint = 5,
  Destroy = 6,
  Zero = 7,
  Spill = 8,
  Land = 9,
  Hold = 10,
  FinishBegin = 11,
  Finished = 12,
  ReleaseHole = 13,
  // File structure.
  Header = 32,
  SnapshotBegin = 33,
  SnapshotRuns = 34,
  SnapshotEnd = 35,
  Commit = 36,
}

export interface Frame {
  kind: number;
  batch: number;
  payload: Buffer;
  /** File offset of the frame's first byte. */
  offset: number;
  /** File offset just past the frame. */
  end: number;
}

/**
 * A frame as the pieces to write back to back: header, the payload's parts
 * as given (not copied: held data goes to the file without passing through
 * intermediate buffers), checksum.
 */
export function frameParts(kind: FrameKind, batch: number, payload: readonly Buffer[], seed = 0): Buffer[] {
  let length = 0;
  for (const part of payload) length += part.length;
  if (length > MAX_PAYLOAD_BYTES) throw new RangeError(`frame payload of ${length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32LE(FRAME_MAGIC, 0);
  header.writeUInt32LE(length, 4);
  // u64 as two u32 halves: no BigInt per frame (batch numbers stay far below 2^53).
  header.writeUInt32LE(batch % 0x1_0000_0000, 8);
  header.writeUInt32LE(Math.floor(batch / 0x1_0000_0000), 12);
  header.writeUInt8(kind, 16);
  header.writeUIntLE(0, 17, 3);
  let crc = crc32(header, seed);
  for (const part of payload) crc = crc32(part, crc);
  const trailer = Buffer.allocUnsafe(4);
  trailer.writeUInt32LE(crc, 0);
  return [header, ...payload, trailer];
}

/** Why a frame at some offset is not valid (for the error messages). */
export type FrameFault = 'end-of-file' | 'bad-magic' | 'bad-length' | 'truncated' | 'bad-checksum';

/**
 * Decodes the frame at `offset` of `data` (the file's bytes), or says why
 * there is none. The payload is a view into `data`.
 */
export function decodeFrame(data: Buffer, offset: number, seed = 0): Frame | FrameFault {
  if (offset >= data.length) return 'end-of-file';
  if (offset + FRAME_OVERHEAD > data.length) return 'truncated';
  if (data.readUInt32LE(offset) !== FRAME_MAGIC) return 'bad-magic';
  const length = data.readUInt32LE(offset + 4);
  if (length > MAX_PAYLOAD_BYTES || data.readUIntLE(offset + 17, 3) !== 0) return 'bad-length';
  const end = offset + FRAME_OVERHEAD + length;
  if (end > data.length) return 'truncated';
  const sum = data.readUInt32LE(end - 4);
  if (crc32(data.subarray(offset, end - 4), seed) !== sum) return 'bad-checksum';
  const batch = Number(data.readBigUInt64LE(offset + 8));
  return { kind: data[offset + 16], batch, payload: data.subarray(offset + FRAME_HEADER_BYTES, end - 4), offset, end };
}

export function isFrame(x: Frame | FrameFault): x is Frame {
  return typeof x !== 'string';
}

/** Offsets after `from` where a valid frame starts (recovery's look past a bad spot). */
export function* validFramesAfter(data: Buffer, from: number, seed: number): Generator<Frame> {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(FRAME_MAGIC, 0);
  let at = data.indexOf(magic, from);
  while (at >= 0) {
    const frame = decodeFrame(data, at, seed);
    if (isFrame(frame)) yield frame;
    at = data.indexOf(magic, at + 1);
  }
}
