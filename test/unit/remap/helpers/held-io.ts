import type { StateJournal, StateRecord } from '../../../../src/remap/state-journal.js';
import { MemoryDevice } from './memory-device.js';

/**
 * A durable journal whose commit reads each record's data only when the test
 * lets it go on, as the state file's pwritev reads memory while it runs.
 */
export class GatedJournal implements StateJournal {
  readonly durable = true;
  readonly holds: Array<{ dest: number; data: Buffer }> = [];
  private batch: StateRecord[] = [];
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  close(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  append(record: StateRecord): void {
    this.batch.push(record);
  }

  async commit(): Promise<void> {
    const records = this.batch;
    this.batch = [];
    await this.gate;
    for (const r of records) if (r.type === 'hold') this.holds.push({ dest: r.dest, data: Buffer.from(r.data) });
  }
}

/** A disk whose writes wait while it is held, as a slow device's would: the test can act while a landing is in flight. */
export class HeldWritesDevice extends MemoryDevice {
  pending = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private held: (offset: number) => boolean = () => true;

  /** Holds the writes that start at an offset `which` accepts (all by default) until letGo(). */
  hold(which: (offset: number) => boolean = () => true): void {
    this.held = which;
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  letGo(): void {
    this.open?.();
    this.gate = undefined;
  }

  override async write(offset: number, data: Buffer): Promise<void> {
    if (this.gate === undefined || !this.held(offset)) return super.write(offset, data);
    this.pending++;
    try {
      await this.gate;
    } finally {
      this.pending--;
    }
    return super.write(offset, data);
  }
}

/** Lets `n` event-loop turns pass (I/O and promise chains in flight move on). */
export async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}
