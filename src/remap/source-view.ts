import { AllocationFlag, type BlockSizeConstraints, type StatusDescriptor } from 'nbd-protocol-ts';
import type { BlockExport, ExportCapabilities, FileSpan, WriteOptions, ZeroOptions } from '../server/block-export.js';
import { allocationDescriptors, clipDescriptors, withHoles } from './allocation-descriptors.js';
import { MAX_STATUS_RUNS } from './run-descriptors.js';
import type { RemapState } from './remap-state.js';
import type { SourcePath } from './source-path.js';
import { viewBlockSize } from './view-block-size.js';
import { wholeBlocks } from './whole-blocks.js';

/**
 * The `source` export: the disk as it is. Read-write until sealed, read-only
 * after (a connection made before sealing keeps its write flags, so writes
 * fail with EPERM). One engine serves every connection, so multi-conn holds.
 */
export class SourceView implements BlockExport {
  readonly name = 'source';
  readonly description = 'the disk as it is (read-only once sealed)';
  readonly size: number;
  readonly blockSize: BlockSizeConstraints;

  constructor(
    private readonly s: RemapState,
    private readonly path: SourcePath,
  ) {
    this.size = s.map.diskSize;
    this.blockSize = viewBlockSize(s.B);
  }

  capabilities(): ExportCapabilities {
    const writable = this.s.phase === 'unsealed' && !this.s.sealing;
    return {
      readOnly: !writable,
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
    return this.path.readInto(buffer, offset);
  }

  /**
   * Reads may go from the page cache (sendfile) while nothing but the
   * clients' own writes can change their bytes: before sealing, and once
   * sealed for blocks not released yet (no engine write goes there). Each
   * such reply is counted, by the blocks it covers, until its client has
   * read it (FileSpan.whenTaken): seal and finish wait for none to be left,
   * and a sealed read's blocks are released only then (fileReplySent).
   */
  fileSpan(offset: number, length: number): FileSpan | undefined {
    const s = this.s;
    const sealed = this.path.pageCacheBlocks(offset, length);
    if (sealed === undefined && (s.phase !== 'unsealed' || s.sealing)) return undefined;
    const region = s.device.region?.(offset, length);
    if (region === undefined) return undefined;
    // Before sealing nothing is released (seal waits for these replies): a count will do, without an index per read.
    if (sealed === undefined) return { ...region, whenTaken: s.unreadSourceReplies.take() };
    const read = s.unreadSourceReplies.take(sealed);
    return {
      ...region,
      whenTaken: () => {
        read();
        this.path.retryDeferredReleases(sealed.start, sealed.end);
      },
    };
  }

  /** A sealed read's blocks are released now, or as soon as no unread reply covers them (SourcePath.releaseRead). */
  fileReplySent(offset: number, length: number): void {
    this.path.releaseRead(offset, length);
  }

  write(offset: number, data: Buffer, options: WriteOptions): Promise<void> {
    return this.path.write(offset, data, options.fua);
  }

  writeZeroes(offset: number, length: number, options: ZeroOptions): Promise<void> {
    return this.path.writeZeroes(offset, length, options.fua, options.fast);
  }

  trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    // Recording free blocks needs no data on the disk: FUA has nothing to make durable beyond the state.
    return options?.fua ? this.path.trim(offset, length).then(() => this.path.flush()) : this.path.trim(offset, length);
  }

  flush(): Promise<void> {
    return this.path.flush();
  }

  async cache(): Promise<void> {
    // A hint only; the read that follows fills the page cache anyway.
  }

  /**
   * The disk's own holes: our writes never punch holes, so a hole seen after
   * sealing was a hole in the original too. Once sealed, telling a client
   * that whole blocks are a hole releases them (SourcePath.releaseHoles):
   * copiers that follow block status skip holes. Blocks released so are
   * still reported as holes after destination data has landed on them:
   * their originals are zeroes, and that is what a read of them returns.
   */
  async blockStatus(offset: number, length: number): Promise<StatusDescriptor[]> {
    const s = this.s;
    // Sealed before the disk is asked: a walk begun earlier may have seen a hole that a source write filled
    // before the seal, and that block's original is the data written, not zeroes.
    const sealedBefore = s.phase === 'sealed';
    const live = await allocationDescriptors(s.device, [{ destOffset: offset, diskOffset: offset, length }]);
    if (!sealedBefore || s.phase !== 'sealed') return live;
    let at = offset;
    for (const d of live) {
      if ((d.flags & AllocationFlag.ZERO) !== 0) {
        const { start, end } = wholeBlocks(at, d.length, s.B, s.map.diskSize);
        this.path.releaseHoles(start, end);
      }
      at += d.length;
    }
    // Only where the answer reaches (allocationDescriptors may stop short of the request), and at most an
    // answer's worth of remembered holes: past that, the answer stops at the last one.
    let answered = offset + live.reduce((n, d) => n + d.length, 0);
    const remembered: Array<{ start: number; end: number }> = [];
    s.holes.forEachRun(true, Math.floor(offset / s.B), Math.ceil(answered / s.B), (a, b) => {
      remembered.push({ start: Math.max(offset, a * s.B), end: Math.min(answered, b * s.B) });
      if (remembered.length < MAX_STATUS_RUNS) return;
      answered = remembered[remembered.length - 1].end;
      return false;
    });
    return remembered.length === 0 ? live : withHoles(clipDescriptors(live, answered - offset), offset, remembered);
  }

  attach(clientId: string): void {
    this.s.sourceClients.add(clientId);
  }

  detach(clientId: string): void {
    this.s.sourceClients.delete(clientId);
  }
}

