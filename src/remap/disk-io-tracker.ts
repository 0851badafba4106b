import { RangeIndex } from './range-index.js';

/**
 * The disk reads and writes the engine has in flight, by disk block range.
 * An I/O registers at the moment its target is decided (synchronously) and
 * first waits for the earlier overlapping I/O that could disturb it: a read
 * waits for earlier writes, a write for earlier reads and writes. So a slot
 * is never reused under a reader that chose it, a home is never landed on
 * while a source read of its original is running, and a read sees a whole
 * block either before or after a concurrent write. Waits point only to
 * earlier registrations (no cycles) and only to I/O in flight (G9).
 */
export type IoKind = 'read' | 'write';

export interface TrackedIo {
  /** Resolves when the earlier conflicting I/O has finished. */
  readonly ready: Promise<void>;
  /** Nothing earlier conflicts: `ready` is already resolved (the caller may skip awaiting it). */
  readonly clear: boolean;
  /** Call when this I/O has finished (success or failure). */
  done(): void;
}

interface Entry {
  kind: IoKind;
  start: number;
  end: number;
  finished: Promise<void>;
  resolve: () => void;
}

const READY: Promise<void> = Promise.resolve();

export class DiskIoTracker {
  private readonly active = new RangeIndex<Entry>();

  register(kind: IoKind, start: number, end: number): TrackedIo {
    const waits: Promise<void>[] = [];
    this.active.some(start, end, (e) => {
      if (kind === 'write' || e.kind === 'write') waits.push(e.finished);
      return false;
    });
    let resolve!: () => void;
    const finished = new Promise<void>((r) => (resolve = r));
    const entry: Entry = { kind, start, end, finished, resolve };
    this.active.add(entry);
    let over = false;
    return {
      ready: waits.length === 0 ? READY : Promise.all(waits).then(() => undefined),
      clear: waits.length === 0,
      done: () => {
        if (over) return;
        over = true;
        this.active.delete(entry);
        resolve();
      },
    };
  }
}
