/**
 * Originals being read just before they are destroyed (the revisit-cache
 * fill). A source read that finds a block destroyed but not yet in the cache
 * waits for its capture here: I/O in flight, never a future event.
 */
export interface CapturedChunk {
  /** First disk block of the chunk; its bytes follow back to back. */
  start: number;
  data: Buffer;
}

export interface Capture {
  /** Disk blocks [start, end). */
  readonly start: number;
  readonly end: number;
  /** The originals of [start, end) in chunks, or undefined when the capture failed. */
  readonly data: Promise<CapturedChunk[] | undefined>;
}

interface Entry extends Capture {
  resolve(data: CapturedChunk[] | undefined): void;
}

export class CaptureRegistry {
  private readonly active: Entry[] = [];

  register(start: number, end: number): { resolve(data: CapturedChunk[] | undefined): void; remove(): void } {
    let resolve!: (data: CapturedChunk[] | undefined) => void;
    const data = new Promise<CapturedChunk[] | undefined>((r) => (resolve = r));
    const entry: Entry = { start, end, data, resolve };
    this.active.push(entry);
    return {
      resolve: (d) => entry.resolve(d),
      remove: () => {
        entry.resolve(undefined);
        const at = this.active.indexOf(entry);
        if (at >= 0) this.active.splice(at, 1);
      },
    };
  }

  find(block: number): Capture | undefined {
    for (const e of this.active) if (e.start <= block && block < e.end) return e;
    return undefined;
  }
}
