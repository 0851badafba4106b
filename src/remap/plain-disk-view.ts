import { AllocationFlag, Errno, NbdError, type BlockSizeConstraints, type StatusDescriptor } from 'nbd-protocol-ts';
import type { BlockExport, ExportCapabilities, FileSpan, WriteOptions, ZeroOptions } from '../server/block-export.js';
import type { Disk } from '../store/disk.js';
import { MAX_STATUS_RUNS } from './run-descriptors.js';

export const DEFAULT_BLOCK_SIZE_CONSTRAINTS: BlockSizeConstraints = {
  minimum: 1,
  preferred: 4096,
  maximum: 32 * 1024 * 1024,
};

/**
 * The disk exported as it is, byte for byte: the `source` before any remapping
 * exists, and the `destination` once finish has landed everything. All
 * connections share one file descriptor, so a write is visible to every reader
 * at once and a flush covers every connection: multi-conn is true.
 */
export class PlainDiskView implements BlockExport {
  readonly size: number;
  readonly blockSize = DEFAULT_BLOCK_SIZE_CONSTRAINTS;

  constructor(
    readonly name: string,
    readonly description: string,
    private readonly disk: Disk,
    private readonly readOnly: boolean,
  ) {
    this.size = disk.size;
  }

  capabilities(): ExportCapabilities {
    const writable = !this.readOnly;
    return {
      readOnly: this.readOnly,
      flush: writable,
      fua: writable,
      trim: writable,
      writeZeroes: writable,
      fastZero: writable,
      cache: true,
      blockStatus: true,
      multiConn: true,
      rotational: false,
    };
  }

  readInto(buffer: Buffer, offset: number): Promise<void> {
    return this.disk.readInto(buffer, offset);
  }

  /** Every byte here changes only by a client's own writes to this view: the server may send reads from the page cache. */
  fileSpan(offset: number, length: number): FileSpan | undefined {
    return this.disk.region(offset, length);
  }

  async write(offset: number, data: Buffer, options: WriteOptions): Promise<void> {
    this.assertWritable();
    await this.disk.write(offset, data);
    if (options.fua) await this.disk.sync();
  }

  async writeZeroes(offset: number, length: number, options: ZeroOptions): Promise<void> {
    this.assertWritable();
    // Without fallocate (Node has none) zeroing is only fast where the range is a hole already.
    if (await this.disk.isZeroRangeFast(offset, length)) return;
    if (options.fast) throw new NbdError(Errno.ENOTSUP, 'zeroing this range would need writing zeroes');
    await this.disk.writeZeroes(offset, length);
    if (options.fua) await this.disk.sync();
  }

  async trim(): Promise<void> {
    // TRIM is advisory; Node cannot punch holes, and keeping the bytes is always correct.
    this.assertWritable();
  }

  flush(): Promise<void> {
    return this.disk.sync();
  }

  async cache(): Promise<void> {
    // A hint only: the page cache fills on the read that follows anyway.
  }

  async blockStatus(offset: number, length: number): Promise<StatusDescriptor[]> {
    // At most an answer's worth of extents (the spec lets it cover less than asked): see allocationDescriptors.
    const extents = await this.disk.allocation(offset, length, MAX_STATUS_RUNS);
    return extents.map((e) => ({
      length: e.length,
      flags: e.data ? 0 : AllocationFlag.HOLE | AllocationFlag.ZERO,
    }));
  }

  private assertWritable(): void {
    if (this.readOnly) throw new NbdError(Errno.EPERM, `export '${this.name}' is read-only`);
  }
}
