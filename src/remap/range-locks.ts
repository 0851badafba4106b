/**
 * FIFO locks over ranges of destination blocks. A lock is registered the
 * moment it is asked for and waits only for overlapping locks registered
 * before it, so waits follow registration order and can never form a cycle.
 * Holders are requests whose I/O is in flight: waiting for them is waiting
 * for I/O, never for a future request (G9).
 */
export interface RangeLock {
  readonly start: number;
  readonly end: number;
  release(): void;
}

interface Entry {
  start: number;
  end: number;
  released: Promise<void>;
  resolve: () => void;
}

export class RangeLocks {
  private readonly active: Entry[] = [];

  get heldCount(): number {
    return this.active.length;
  }

  /** Registers now; resolves once every earlier overlapping lock is released. */
  acquire(start: number, end: number): Promise<RangeLock> {
    const earlier = this.overlapping(start, end).map((e) => e.released);
    const lock = this.register(start, end);
    if (earlier.length === 0) return Promise.resolve(lock);
    return Promise.all(earlier).then(() => lock);
  }

  /** The lock if nothing overlapping is registered, else undefined (never waits). */
  tryAcquire(start: number, end: number): RangeLock | undefined {
    if (this.overlapping(start, end).length > 0) return undefined;
    return this.register(start, end);
  }

  isBusy(start: number, end: number): boolean {
    for (const e of this.active) if (e.start < end && start < e.end) return true;
    return false;
  }

  /** Resolves when the locks overlapping the range now registered are all released. */
  whenFree(start: number, end: number): Promise<void> {
    return Promise.all(this.overlapping(start, end).map((e) => e.released)).then(() => undefined);
  }

  private overlapping(start: number, end: number): Entry[] {
    const out: Entry[] = [];
    for (const e of this.active) if (e.start < end && start < e.end) out.push(e);
    return out;
  }

  private register(start: number, end: number): RangeLock {
    let resolve!: () => void;
    const released = new Promise<void>((r) => (resolve = r));
    const entry: Entry = { start, end, released, resolve };
    this.active.push(entry);
    let done = false;
    return {
      start,
      end,
      release: () => {
        if (done) return;
        done = true;
        const at = this.active.indexOf(entry);
        if (at >= 0) this.active.splice(at, 1);
        resolve();
      },
    };
  }
}
