import { Errno, NbdError, type BlockSizeConstraints, type StatusDescriptor } from 'nbd-protocol-ts';
import type { BlockExport, ExportCapabilities, WriteOptions, ZeroOptions } from '../../../src/server/block-export.js';

/** Resolves after n event-loop turns: lets requests finish out of order without timers. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export interface Fault {
  op: 'read' | 'write' | 'zero' | 'trim' | 'flush';
  offset: number;
  errno: (typeof Errno)[keyof typeof Errno];
  message: string;
}

/**
 * An export in memory for client tests: requests take a seeded, varying number
 * of event-loop turns (so replies come back out of order), concurrency and
 * arrival order are recorded, and faults can be injected by operation and offset.
 */
export class MemoryExport implements BlockExport {
  readonly data: Buffer;
  readonly arrivals: string[] = [];
  active = 0;
  maxActive = 0;
  faults: Fault[] = [];
  private state: number;

  constructor(
    readonly name: string,
    size: number,
    private readonly caps: Partial<ExportCapabilities> = {},
    readonly blockSize: BlockSizeConstraints = { minimum: 1, preferred: 4096, maximum: 1024 * 1024 },
    seed = 1,
  ) {
    this.data = Buffer.alloc(size);
    this.state = seed;
  }

  readonly description = 'memory';

  get size(): number {
    return this.data.length;
  }

  capabilities(): ExportCapabilities {
    return {
      readOnly: false,
      flush: true,
      fua: true,
      trim: true,
      writeZeroes: true,
      fastZero: false,
      cache: false,
      blockStatus: false,
      multiConn: false,
      rotational: false,
      ...this.caps,
    };
  }

  readInto(buffer: Buffer, offset: number): Promise<void> {
    return this.op('read', offset, async () => {
      this.data.copy(buffer, 0, offset, offset + buffer.length);
    });
  }

  write(offset: number, data: Buffer, _options: WriteOptions): Promise<void> {
    return this.op('write', offset, async () => void data.copy(this.data, offset));
  }

  writeZeroes(offset: number, length: number, _options: ZeroOptions): Promise<void> {
    return this.op('zero', offset, async () => void this.data.fill(0, offset, offset + length));
  }

  trim(offset: number, length: number): Promise<void> {
    // Trimmed bytes may read as anything; 0xdd makes the trim observable.
    return this.op('trim', offset, async () => void this.data.fill(0xdd, offset, offset + length));
  }

  flush(): Promise<void> {
    return this.op('flush', 0, async () => undefined);
  }

  async cache(): Promise<void> {}

  async blockStatus(_offset: number, length: number): Promise<StatusDescriptor[]> {
    return [{ length, flags: 0 }];
  }

  private async op<T>(op: Fault['op'], offset: number, run: () => Promise<T>): Promise<T> {
    this.arrivals.push(`${op} ${offset}`);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      this.state = (this.state * 1103515245 + 12345) % 2 ** 31;
      await turns(this.state % 5);
      const fault = this.faults.find((f) => f.op === op && f.offset === offset);
      if (fault) throw new NbdError(fault.errno, fault.message);
      return await run();
    } finally {
      this.active--;
    }
  }
}
