import { constants as fsConstants, close, fdatasync, fstat, open, read, readSync, stat, write, writev, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import { seek } from 'fs-ext';
import { canReadWithoutWaiting, readCached, type CachedRead } from 'linux-io';
import { flockAsync } from './flock.js';
import { writeZeroesWith } from '../format/zero-data.js';
import { mapAllocation, type AllocationExtent, type SeekFn } from './allocation-map.js';
import { DiskClosedError, DiskReadOnlyError, DiskShrunkError, diskOpenError, loopAttachedError, notUsable } from './disk-errors.js';
import { otherLoopAttachments, type LoopAttachment } from './loop-attachments.js';
import { IoPathChooser, type IoPathPolicy } from './io-path-chooser.js';
import {
  readFully,
  readFullySync,
  writeFully,
  writevFully,
  type PositionalIo,
  type PositionalIoSync,
  type PositionalIoV,
} from './positional-io.js';

export type { AllocationExtent } from './allocation-map.js';

export interface DiskOpenOptions {
  readOnly: boolean;
  /** When reads may be copied on the event loop where the page cache cannot be asked (tests pin it; default DEFAULT_IO_PATH_POLICY). */
  ioPathPolicy?: IoPathPolicy;
}

const SEEK_END = 2;

const statAsync = promisify(stat);
const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);
const fdatasyncAsync = promisify(fdatasync);
const seekAsync = promisify(seek);

/** The kinds of file that cannot be a disk, or whose open() itself would block (FIFOs). */
function unusableKind(stats: Stats): string | undefined {
  if (stats.isDirectory()) return 'is a directory';
  if (stats.isCharacterDevice()) return 'is a character device, not a block device';
  if (stats.isFIFO()) return 'is a FIFO (named pipe)';
  if (stats.isSocket()) return 'is a socket';
  if (!stats.isFile() && !stats.isBlockDevice()) return 'is neither a regular file nor a block device';
  return undefined;
}

function assertSpan(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`invalid disk range: offset ${offset}, length ${length}`);
  }
}

/** A range of the disk as its descriptor and position (Disk.region). */
export interface DiskRegion {
  fd: number;
  position: number;
}

/**
 * One physical disk (an image file or a block device), opened once for the
 * whole server with an exclusive flock so that two servers can never move
 * blocks of the same disk. Positional I/O only: the file offset is never used,
 * so any number of requests may be in flight at once.
 */
export class Disk {
  private closeRequested = false;
  private closing: Promise<void> | undefined;
  private inFlight = 0;
  private readonly readPath: IoPathChooser;
  /** Page-cache reads without waiting (preadv2 RWF_NOWAIT) are offered here; false on a file system that refuses them (tmpfs). */
  private cachedReads = canReadWithoutWaiting;
  private onIdle: (() => void) | undefined;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly size: number,
    readonly isBlockDevice: boolean,
    readonly readOnly: boolean,
    /** fstat at open: which file or device this is, whatever its path names later. */
    private readonly opened: Stats,
    ioPathPolicy: IoPathPolicy | undefined,
  ) {
    this.readPath = new IoPathChooser(ioPathPolicy);
  }

  static async open(path: string, options: DiskOpenOptions): Promise<Disk> {
    const { readOnly } = options;
    let before: Stats;
    try {
      before = await statAsync(path);
    } catch (err) {
      throw diskOpenError(path, err, readOnly);
    }
    // Checked before open() because opening a FIFO would wait for a writer forever.
    const kindBefore = unusableKind(before);
    if (kindBefore !== undefined) throw notUsable(path, kindBefore);

    // A block device opened for writing is claimed exclusively (O_EXCL): the kernel refuses it while a filesystem
    // on it or on one of its partitions is mounted, or LVM, RAID or swap holds it, and refuses such users while we
    // hold it. A filesystem mounted from the disk itself would write behind the server's back.
    const exclusive = !readOnly && before.isBlockDevice() ? fsConstants.O_EXCL : 0;
    let fd: number;
    try {
      fd = await openAsync(path, (readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR) | exclusive);
    } catch (err) {
      throw diskOpenError(path, err, readOnly, exclusive !== 0);
    }
    try {
      // The path may have been replaced since stat(); fstat says what was really opened.
      const stats = await fstatAsync(fd);
      const kind = unusableKind(stats);
      if (kind !== undefined) throw notUsable(path, kind);
      try {
        await flockAsync(fd, 'exnb');
      } catch (err) {
        throw diskOpenError(path, err, readOnly);
      }
      const isBlockDevice = stats.isBlockDevice();
      // What O_EXCL does for a block device, done by hand for an image: a loop device on it is another way in,
      // and so is a second loop device on the image behind a loop device (O_EXCL claims only the one opened).
      if (!readOnly) {
        const attached = await otherLoopAttachments(stats);
        if (attached !== undefined) throw loopAttachedError(path, attached.attachments, attached.backingFile);
      }
      // fstat reports 0 bytes for block devices; seeking to the end gives their size.
      const size = isBlockDevice ? await seekAsync(fd, 0, SEEK_END) : stats.size;
      if (size <= 0) throw notUsable(path, isBlockDevice ? 'is a block device of size 0 (no medium?)' : 'is empty (0 bytes)');
      return new Disk(path, fd, size, isBlockDevice, readOnly, stats, options.ioPathPolicy);
    } catch (err) {
      await closeAsync(fd).catch(() => undefined);
      throw err;
    }
  }

  /**
   * The loop devices that expose this disk's data besides the disk itself,
   * looked up now (as Disk.open does before it opens for writing): nothing
   * stops `losetup` from attaching one while the disk is served.
   */
  otherLoopAttachments(): Promise<{ attachments: LoopAttachment[]; backingFile?: string } | undefined> {
    return otherLoopAttachments(this.opened);
  }

  /** `length` bytes at `offset`; bytes past the end of the disk read as zeroes. */
  async read(offset: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    await this.readInto(buffer, offset);
    return buffer;
  }

  /**
   * Fills `buffer` with the bytes at `offset` (zeroes past the end of the disk).
   * Reads up to a size the event loop may spend on a copy take what the page
   * cache holds at once (preadv2 RWF_NOWAIT) and leave only the rest to the
   * thread pool, so a read never waits for the device on the event loop.
   * Where that is not offered, small reads run synchronously while they keep
   * proving fast (IoPathChooser).
   * A file that ends before the size it had when opened fails the read (DiskShrunkError).
   */
  async readInto(buffer: Buffer, offset: number): Promise<void> {
    assertSpan(offset, buffer.length);
    if (this.cachedReads && this.readPath.fitsEventLoop(buffer.length)) {
      if (this.closeRequested) throw new DiskClosedError(this.path);
      const cached = this.readFromPageCache(buffer, offset);
      if (cached !== undefined) {
        if (cached.endOfFile) {
          buffer.fill(0, cached.bytes);
        } else if (cached.bytes < buffer.length) {
          const rest = await this.tracked(() => readFully(this.preadAsync, buffer.subarray(cached.bytes), offset + cached.bytes));
          this.checkWhole(cached.bytes + rest, buffer.length, offset);
          return;
        }
        this.checkWhole(cached.bytes, buffer.length, offset);
        return;
      }
    }
    if (this.readPath.useSync(buffer.length)) {
      if (this.closeRequested) throw new DiskClosedError(this.path);
      const started = process.hrtime.bigint();
      const got = readFullySync(this.preadSync, buffer, offset);
      this.readPath.recordSync(Number(process.hrtime.bigint() - started), buffer.length);
      this.checkWhole(got, buffer.length, offset);
      return;
    }
    this.checkWhole(await this.tracked(() => readFully(this.preadAsync, buffer, offset)), buffer.length, offset);
  }

  /**
   * Where the bytes at `offset` lie for a system call that reads them itself
   * (sendfile): this disk's descriptor, valid until close(). Undefined once
   * close() was asked, as the number may then name another file, and for a
   * range past the end, which readInto fills with zeroes and a file does not.
   */
  region(offset: number, length: number): DiskRegion | undefined {
    assertSpan(offset, length);
    if (this.closeRequested || offset + length > this.size) return undefined;
    return { fd: this.fd, position: offset };
  }

  /** What the page cache holds of the range, or undefined when this disk's file system cannot say without waiting (then never asked again). */
  private readFromPageCache(buffer: Buffer, offset: number): CachedRead | undefined {
    try {
      return readCached(this.fd, buffer, offset);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'EOPNOTSUPP') throw err;
      this.cachedReads = false;
      return undefined;
    }
  }

  /**
   * Zeroes where data should be would be served as data: an image file that
   * ends before the size it had when opened was truncated (or replaced) by
   * something else while it was served.
   */
  private checkWhole(got: number, length: number, offset: number): void {
    if (got < Math.min(length, this.size - offset)) throw new DiskShrunkError(this.path, this.size, offset + got);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.assertWritable(offset, data.length);
    // Writes stay on the thread pool: measured with nbdcopy -C 1, sync writes of 256 KiB
    // gained nothing (same CPU per GiB, same throughput) and dirty-page throttling could stall the loop.
    await this.tracked(() => writeFully(this.pwriteAsync, data, offset));
  }

  /** Buffers written back to back from `offset` (pwritev): no copy into one buffer first. */
  async writev(offset: number, buffers: readonly Buffer[]): Promise<void> {
    let length = 0;
    for (const b of buffers) length += b.length;
    this.assertWritable(offset, length);
    await this.tracked(() => writevFully(this.pwritevAsync, buffers, offset));
  }

  /**
   * Makes [offset, offset+length) read as zeroes. Holes already read as zeroes,
   * so only the data inside the range is overwritten: zeroing a sparse image
   * does not fill it.
   */
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.assertWritable(offset, length);
    await this.tracked(async () => {
      const extents = await this.allocationOf(offset, length);
      const write = (at: number, zeroes: Buffer): Promise<void> => writeFully(this.pwriteAsync, zeroes, at);
      for (const extent of extents) if (extent.data) await writeZeroesWith(write, extent.offset, extent.length);
    });
  }

  /** Makes every completed write durable (fdatasync). */
  async sync(): Promise<void> {
    await this.tracked(() => fdatasyncAsync(this.fd));
  }

  /**
   * The data/hole map of [offset, offset+length), clipped to the disk size:
   * contiguous extents that add up to exactly the clipped length — or, with
   * `maxExtents`, at most that many, covering the start of it. Block devices
   * and filesystems that cannot tell report everything as data.
   */
  async allocation(offset: number, length: number, maxExtents?: number): Promise<AllocationExtent[]> {
    assertSpan(offset, length);
    return this.tracked(() => this.allocationOf(offset, length, maxExtents));
  }

  /** True when the whole range is already a hole, so zeroing it costs nothing (NBD FAST_ZERO). */
  async isZeroRangeFast(offset: number, length: number): Promise<boolean> {
    assertSpan(offset, length);
    if (length === 0) return true;
    if (this.isBlockDevice) return false;
    const extents = await this.allocation(offset, length);
    return extents.every((extent) => !extent.data);
  }

  /**
   * Waits for the requests in flight, then unlocks and closes. Idempotent.
   * Waiting matters: once the descriptor is closed its number is reused, and a
   * late write would land in whatever file got that number.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    this.closeRequested = true;
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
    // Closing the only descriptor drops the lock anyway; unlocking first says it outright.
    await flockAsync(this.fd, 'un').catch(() => undefined);
    await closeAsync(this.fd);
  }

  private async tracked<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closeRequested) throw new DiskClosedError(this.path);
    this.inFlight++;
    try {
      return await operation();
    } finally {
      this.inFlight--;
      if (this.inFlight === 0 && this.onIdle !== undefined) {
        const wake = this.onIdle;
        this.onIdle = undefined;
        wake();
      }
    }
  }

  private async allocationOf(offset: number, length: number, maxExtents?: number): Promise<AllocationExtent[]> {
    const end = Math.min(offset + length, this.size);
    if (end <= offset) return [];
    if (this.isBlockDevice) return [{ offset, length: end - offset, data: true }];
    return mapAllocation(this.seekAsync, offset, end, maxExtents);
  }

  private assertWritable(offset: number, length: number): void {
    assertSpan(offset, length);
    if (this.readOnly) throw new DiskReadOnlyError(this.path);
    // Writing past the end would grow an image file silently; the layers above must clip.
    if (offset + length > this.size) {
      throw new RangeError(`write of ${length} bytes at offset ${offset} goes past the end of the disk ${this.path} (${this.size} bytes)`);
    }
  }

  private readonly preadAsync: PositionalIo = (buffer, bufferOffset, length, position) =>
    new Promise((resolve, reject) => read(this.fd, buffer, bufferOffset, length, position, (err, n) => (err ? reject(err) : resolve(n))));

  private readonly preadSync: PositionalIoSync = (buffer, bufferOffset, length, position) => readSync(this.fd, buffer, bufferOffset, length, position);

  private readonly pwriteAsync: PositionalIo = (buffer, bufferOffset, length, position) =>
    new Promise((resolve, reject) => write(this.fd, buffer, bufferOffset, length, position, (err, n) => (err ? reject(err) : resolve(n))));

  private readonly pwritevAsync: PositionalIoV = (buffers, position) =>
    new Promise((resolve, reject) => writev(this.fd, buffers as Buffer[], position, (err, n) => (err ? reject(err) : resolve(n))));

  private readonly seekAsync: SeekFn = (position, whence) => seekAsync(this.fd, position, whence);
}
