import { writeZeroesWith } from '../format/zero-data.js';

/**
 * The part of a disk the remapping engine needs. src/store's `Disk` satisfies
 * it structurally; tests use an instrumented in-memory device. Offsets and
 * lengths are bytes; every range the engine passes lies inside [0, size).
 */
export interface BlockDevice {
  readonly size: number;
  /** Fill `buffer` with the bytes at `offset`. */
  readInto(buffer: Buffer, offset: number): Promise<void>;
  write(offset: number, data: Buffer): Promise<void>;
  /**
   * Optional: write buffers back to back from `offset` in one call (pwritev).
   * Landing RAM-held blocks then needs no copy into one buffer first.
   */
  writev?(offset: number, buffers: readonly Buffer[]): Promise<void>;
  /** Make every completed write durable. */
  sync(): Promise<void>;
  /** Optional: zero a range cheaply (e.g. skipping holes of a sparse image). */
  writeZeroes?(offset: number, length: number): Promise<void>;
  /** Optional: true when the range already reads as zeroes without any I/O (a hole), so FAST_ZERO can be honoured. */
  isZeroRangeFast?(offset: number, length: number): Promise<boolean>;
  /** Optional: where a range lies in a file, for replies sent from the page cache (src/store's Disk.region). */
  region?(offset: number, length: number): { fd: number; position: number } | undefined;
  /** Optional: the data/hole map of a range, for block status of untouched regions; with `maxExtents`, at most that many, covering its start. */
  allocation?(offset: number, length: number, maxExtents?: number): Promise<ReadonlyArray<{ offset: number; length: number; data: boolean }>>;
}

/** Makes a range read as zeroes: the device's own way when it has one, else by writing zeroes. */
export function zeroRange(device: BlockDevice, offset: number, length: number): Promise<void> {
  if (device.writeZeroes !== undefined) return device.writeZeroes(offset, length);
  return writeZeroesWith((at, data) => device.write(at, data), offset, length);
}
