import { AllocationFlag, type BlockSizeConstraints, type StatusDescriptor } from 'nbd-protocol-ts';
import type { BlockExport, ExportCapabilities, WriteOptions, ZeroOptions } from '../server/block-export.js';
import { allocationDescriptors } from './allocation-descriptors.js';
import type { DestinationReader } from './destination-reader.js';
import type { DestinationWriter } from './destination-writer.js';
import type { RemapState } from './remap-state.js';
import { viewBlockSize } from './view-block-size.js';

/** Block status answers describe at most this many zero extents (the reply may cover less than asked, as the spec allows). */
const MAX_ZERO_RUNS = 1024;

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
    const B = s.B;
    let end = offset + length;
    let runs = s.zeros.runsIn(Math.floor(offset / B), Math.ceil(end / B));
    if (runs.length > MAX_ZERO_RUNS) {
      runs = runs.slice(0, MAX_ZERO_RUNS);
      end = Math.min(end, runs[runs.length - 1].end * B);
    }
    const out: StatusDescriptor[] = [];
    let at = offset;
    for (const run of runs) {
      const from = Math.max(at, run.start * B);
      const to = Math.min(end, run.end * B);
      if (from > at) out.push({ length: from - at, flags: 0 });
      if (to > from) out.push({ length: to - from, flags: AllocationFlag.HOLE | AllocationFlag.ZERO });
      at = Math.max(at, to);
    }
    if (end > at) out.push({ length: end - at, flags: 0 });
    return out;
  }

  attach(clientId: string): void {
    this.s.destinationClients.add(clientId);
  }

  detach(clientId: string): void {
    this.s.destinationClients.delete(clientId);
  }
}
