import { RangeIndex } from './range-index.js';

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
  private readonly active = new RangeIndex<Entry>();
  /** While set, acquire() registers nothing until it resolves (holdNewLocks). */
  private gate: Promise<void> | undefined;

  get heldCount(): number {
    return this.active.size;
  }

  /**
   * Registers now — or, while new locks are held back, once they are let
   * through; resolves once every earlier overlapping lock is released.
   */
  acquire(start: number, end: number): Promise<RangeLock> {
    if (this.gate !== undefined) return this.gate.then(() => this.acquire(start, end));
    const earlier = this.overlapping(start, end).map((e) => e.released);
    const lock = this.register(start, end);
    if (earlier.length === 0) return Promise.resolve(lock);
    return Promise.all(earlier).then(() => lock);
  }

  /** The lock if nothing overlapping is registered, else undefined (never waits). */
  tryAcquire(start: number, end: number): RangeLock | undefined {
    if (this.active.some(start, end)) return undefined;
    return this.register(start, end);
  }

  /**
   * Holds back the acquire() calls made from now on until the returned
   * function is called, so that waiting for the locks registered now
   * (whenFree) waits only for the requests already in flight: a client that
   * always has another request coming cannot keep finish from settling.
   * tryAcquire is not held back (requests in flight take their victims' locks
   * with it). Requests take one lock each and wait for nothing while they
   * wait for it, so holding them back cannot form a cycle.
   */
  holdNewLocks(): () => void {
    let letThrough!: () => void;
    const gate = new Promise<void>((resolve) => (letThrough = resolve));
    this.gate = gate;
    return () => {
      if (this.gate === gate) this.gate = undefined;
      letThrough();
    };
  }

  isBusy(start: number, end: number): boolean {
    return this.active.some(start, end);
  }

  /** Resolves when the locks overlapping the range now registered are all released. */
  whenFree(start: number, end: number): Promise<void> {
    return Promise.all(this.overlapping(start, end).map((e) => e.released)).then(() => undefined);
  }

  private overlapping(start: number, end: number): Entry[] {
    return this.active.overlapping(start, end);
  }

  private register(start: number, end: number): RangeLock {
    let resolve!: () => void;
    const released = new Promise<void>((r) => (resolve = r));
    const entry: Entry = { start, end, released, resolve };
    this.active.add(entry);
    let done = false;
    return {
      start,
      end,
      release: () => {
        if (done) return;
        done = true;
        this.active.delete(entry);
        resolve();
      },
    };
  }
}
