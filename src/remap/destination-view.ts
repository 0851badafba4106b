import { AllocationFlag, type BlockSizeConstraints, type StatusDescriptor } from 'nbd-protocol-ts';
import type { BlockExport, ExportCapabilities, MetaContextSource, WriteOptions, ZeroOptions } from '../server/block-export.js';
import { allocationDescriptors } from './allocation-descriptors.js';
import { MAX_STATUS_RUNS, runDescriptors } from './run-descriptors.js';
import { WRITTEN_CONTEXT, WRITTEN_FLAG, writtenRuns } from './written-runs.js';
import type { DestinationReader } from './destination-reader.js';
import type { DestinationWriter } from './destination-writer.js';
import type { RemapState } from './remap-state.js';
import { viewBlockSize } from './view-block-size.js';

/** The written-blocks context looks at most this many blocks per request (the reply may cover less than asked, as the spec allows). */
const MAX_WRITTEN_STATUS_BLOCKS = 1 << 20;

/**
 * The `destination` export: the disk as the new layout sees it. It always
 * advertises writes (a connection made before sealing keeps its flags and
 * gets EPERM until the seal). Fast zero is real: zeroes are held as extents.
 * One engine serves every connection and a flush commits for all, so
 * multi-conn holds.
 */
export class DestinationView implements BlockExport {
  readonly name = 'destination';
  readonly description = 'the disk in its new layout';
  readonly size: number;
  readonly blockSize: BlockSizeConstraints;
  /**
   * `x-nbd-remapper:written`: which blocks hold data written through
   * destination (RAM, zero extent, slot, or landed), and which were never
   * written and read their home's current content (G3) — such content is not
   * stable: the home may serve as a slot. After a crash, a block whose
   * writes were all lost reads as unwritten here. After finish destination
   * is the disk itself, and every block is reported written.
   */
  readonly metaContexts: readonly MetaContextSource[] = [{ name: WRITTEN_CONTEXT, status: (offset, length) => this.writtenStatus(offset, length) }];

  constructor(
    private readonly s: RemapState,
    private readonly reader: DestinationReader,
    private readonly writer: DestinationWriter,
  ) {
    this.size = s.map.destinationSize;
    this.blockSize = viewBlockSize(s.B);
  }

  capabilities(): ExportCapabilities {
    return {
      readOnly: false,
      flush: true,
      fua: true,
      trim: true,
      writeZeroes: true,
      fastZero: true,
      cache: true,
      blockStatus: true,
      multiConn: true,
      rotational: false,
    };
  }

  readInto(buffer: Buffer, offset: number): Promise<void> {
    return this.reader.readInto(buffer, offset);
  }

  write(offset: number, data: Buffer, options: WriteOptions): Promise<void> {
    return this.writer.write(offset, data, options.fua);
  }

  writeZeroes(offset: number, length: number, options: ZeroOptions): Promise<void> {
    return this.writer.writeZeroes(offset, length, options.fua, options.fast);
  }

  trim(offset: number, length: number, options: WriteOptions): Promise<void> {
    return this.writer.trim(offset, length, options.fua);
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  async cache(): Promise<void> {
    // A hint only.
  }

  /** Held zero extents read as zero; everything else is reported as data (after finish: the disk's holes). */
  async blockStatus(offset: number, length: number): Promise<StatusDescriptor[]> {
    const s = this.s;
    if (s.phase === 'finished') return allocationDescriptors(s.device, s.map.splitBytes(offset, length));
    const end = offset + length;
    // One run more than an answer describes: runDescriptors then knows to stop after the last one described.
    const runs = s.zeros.runsIn(Math.floor(offset / s.B), Math.ceil(end / s.B), MAX_STATUS_RUNS + 1);
    return runDescriptors(offset, end, s.B, runs, AllocationFlag.HOLE | AllocationFlag.ZERO, 0);
  }

  private async writtenStatus(offset: number, length: number): Promise<StatusDescriptor[]> {
    const s = this.s;
    if (s.phase === 'finished') return [{ length, flags: WRITTEN_FLAG }];
    const d0 = Math.floor(offset / s.B);
    const d1 = Math.min(Math.ceil((offset + length) / s.B), d0 + MAX_WRITTEN_STATUS_BLOCKS);
    const written = writtenRuns(s, d0, d1, MAX_STATUS_RUNS);
    const end = Math.min(offset + length, written.end * s.B);
    return runDescriptors(offset, end, s.B, written.runs, WRITTEN_FLAG, 0);
  }

  attach(clientId: string): void {
    this.s.destinationClients.add(clientId);
  }

  detach(clientId: string): void {
    this.s.destinationClients.delete(clientId);
  }
}
