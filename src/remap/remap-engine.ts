import { ControlRefusal, type MigrationControl } from '../control/migration-control.js';
import { formatBytes } from '../format/bytes.js';
import { DestinationReader } from './destination-reader.js';
import { DestinationView } from './destination-view.js';
import { DestinationWriter } from './destination-writer.js';
import { DiskWriter } from './disk-writer.js';
import { FinishPlanner, type FinishProgress } from './finish-planner.js';
import type { RemapMap } from './map.js';
import type { Phase } from './block-layout.js';
import { RemapState, type RemapStateOptions } from './remap-state.js';
import { statusOf, type RemapStatus } from './remap-status.js';
import { SourcePath } from './source-path.js';
import { SourceView } from './source-view.js';
import { restoreState, type RestoredState } from './restore-state.js';
import { sampleOriginals } from './seal-samples.js';

export interface RemapEngineOptions extends RemapStateOptions {
  /** Resume: the committed state recovered from the journal (docs/durability.md §Recovery). */
  restore?: RestoredState;
  /** Tests: the most slot and RAM data one finish wave moves (WAVE_BYTES by default). */
  finishWaveBytes?: number;
}

/**
 * One migration: the shared ordering engine, its two views (`source`,
 * `destination`) and the control operations (seal, checkpoint, finish,
 * status). Phases only move forward: unsealed → sealed → finishing → finished.
 */
/** How long seal waits for source clients to read replies sent from the page cache before it refuses. */
export const SEAL_WAITS_FOR_READERS_MS = 5000;

/** "N read replies of source sent <when> have not been read by their clients within 5 s", for seal's and finish's refusals. */
function unreadWithinGrace(unread: number, sent: string): string {
  const one = unread === 1;
  return `${unread} read repl${one ? 'y' : 'ies'} of source sent ${sent} ${one ? 'has' : 'have'} not been read by ${one ? 'its client' : 'their clients'} within ${SEAL_WAITS_FOR_READERS_MS / 1000} s`;
}

export class RemapEngine implements MigrationControl {
  readonly source: SourceView;
  readonly destination: DestinationView;
  private readonly s: RemapState;
  private readonly sourcePath: SourcePath;
  private readonly planner: FinishPlanner;
  private finishing: Promise<void> | undefined;
  private readonly progressListeners = new Set<(progress: FinishProgress) => void>();
  private readonly phaseListeners = new Set<(phase: Phase) => void>();

  constructor(options: RemapEngineOptions) {
    const s = new RemapState(options);
    if (options.restore !== undefined) restoreState(s, options.restore);
    this.s = s;
    const disk = new DiskWriter(s);
    const reader = new DestinationReader(s);
    this.sourcePath = new SourcePath(s);
    this.planner = new FinishPlanner(s, disk, options.finishWaveBytes);
    this.source = new SourceView(s, this.sourcePath);
    this.destination = new DestinationView(s, reader, new DestinationWriter(s, reader, disk));
  }

  /**
   * A migration reopened sealed, to be served: the caches take their memory
   * as seal would have, in the background while clients are already served.
   * (Not for an offline finish, which needs neither cache filled.)
   */
  takeCacheMemoryInBackground(): void {
    const s = this.s;
    if (s.phase !== 'sealed') return;
    this.reserveCaches().then(
      (taken) => s.log.info(`${taken} taken`),
      (err: Error) => s.log.warn(`${err.message}; the caches take memory as they fill instead`),
    );
  }

  /**
   * Takes the memory of both caches before destination data arrives
   * (reserved-memory.ts): at seal, and when a sealed migration is reopened
   * to be served. Says what it took, for the log.
   */
  private async reserveCaches(): Promise<string> {
    const s = this.s;
    try {
      const [ram, revisit] = await Promise.all([s.reserveCache(), s.revisit.reserve()]);
      return `${formatBytes(ram)} of RAM for the cache and ${formatBytes(revisit)} for the revisit cache`;
    } catch (err) {
      throw new ControlRefusal(
        `could not take the RAM of the caches (--cache ${formatBytes(s.cacheBytes)}, --revisit-cache ${formatBytes(s.revisit.maxBytes)}): ${(err as Error).message}`,
        'restart the server with a smaller --cache or --revisit-cache: destination data beyond the cache spills into blocks already read',
      );
    }
  }

  get phase(): Phase {
    return this.s.phase;
  }

  get map(): RemapMap {
    return this.s.map;
  }

  /** Calls `listener` on every phase change (the server drops `source` on 'finished'); returns the unsubscribe function. */
  onPhase(listener: (phase: Phase) => void): () => void {
    this.phaseListeners.add(listener);
    return () => this.phaseListeners.delete(listener);
  }

  /** The source becomes read-only for good; the destination starts accepting writes. */
  async seal(): Promise<void> {
    const s = this.s;
    if (s.phase !== 'unsealed' || s.sealing) {
      throw new ControlRefusal(s.sealing ? 'the source is being sealed already' : 'the source is already sealed', 'nothing to do: sealing cannot be undone');
    }
    s.sealing = true;
    // Writes that began before the seal finish first; new ones are refused already.
    await this.sourcePath.whenIdle();
    // Reads sent from the page cache must be read first: their sockets hold the disk's pages, which destination
    // writes may overwrite once sealed (G2). A client reading its replies takes microseconds; one that does not is named.
    if (!(await s.unreadSourceReplies.noneWithin(SEAL_WAITS_FOR_READERS_MS))) {
      const unread = s.unreadSourceReplies.count;
      s.sealing = false;
      throw new ControlRefusal(
        `${unreadWithinGrace(unread, 'before sealing')}: once sealed, destination writes may overwrite those bytes of the disk before they are read`,
        'let the source clients read (a stopped process, a paused VM?), or disconnect them (umount, then nbd-client -d), and seal again',
      );
    }
    let samples;
    let taken;
    // Taking the memory is CPU, the sync below mostly waiting for the device: side by side. If the sync fails,
    // what was taken stays as spares, and a second seal takes only the rest.
    const reserving = this.reserveCaches();
    reserving.catch(() => undefined);
    try {
      // The originals are what the disk holds now, unsynced source writes included: make them durable, or a
      // crash could bring back older bytes than the copy read. A few of them identify this disk on reopen.
      await s.device.sync();
      samples = await sampleOriginals(s.device, s.map);
      taken = await reserving;
    } catch (err) {
      s.sealing = false;
      throw err;
    }
    for (const run of [...s.free.all()]) {
      // Trimmed first: release() offers a block that is nobody's home as spill room only when it was declared free.
      s.trimmed.setRange(run.start, run.end);
      s.release(run.start, run.end, true, false);
    }
    s.free.clear();
    s.committer.append({ type: 'seal', samples });
    s.phase = 'sealed';
    s.sealing = false;
    s.log.info(`sealed: ${s.released.count} free block(s) released at once; ${taken} taken`);
    this.emit();
    await s.committer.commitThrough();
  }

  /**
   * Every block read from source so far is confirmed copied (the copier
   * synced the new filesystems). `note`: the copier's own words on how far it
   * got, kept with the state and shown by `status` once committed.
   */
  async checkpoint(note?: string): Promise<void> {
    const s = this.s;
    if (s.phase === 'unsealed') {
      throw new ControlRefusal('nothing to checkpoint: the source is not sealed yet', 'run `nbd-remapper seal` first, copy, sync the new filesystems, then checkpoint');
    }
    if (s.phase !== 'sealed') {
      throw new ControlRefusal(`finish has begun (phase ${s.phase}): every block is confirmed already`, 'nothing to do');
    }
    // What the copier wrote before its promise must survive with it: RAM-held data goes into the journal first.
    s.persistHeld();
    s.confirmAll();
    s.committer.append(note === undefined ? { type: 'checkpoint' } : { type: 'checkpoint', note });
    await s.committer.flush();
    if (note !== undefined) s.checkpointNote = note;
  }

  /**
   * Lands everything held; afterwards the disk is the new layout, the
   * destination is a plain view of it and the source is gone. Refused while
   * the source has clients. Calling it again while it runs joins the run; after
   * a failure it resumes where it stopped.
   */
  finish(onProgress: (progress: FinishProgress) => void = () => {}): Promise<void> {
    const s = this.s;
    if (s.phase === 'finished') {
      onProgress({ done: 0, total: 0 });
      return Promise.resolve();
    }
    if (this.finishing !== undefined) {
      this.progressListeners.add(onProgress);
      return this.finishing;
    }
    if (s.phase === 'unsealed') {
      return Promise.reject(new ControlRefusal('finish refused: the source is not sealed', 'seal it (`nbd-remapper seal`), copy the data, then finish'));
    }
    if (s.sourceClients.size > 0) {
      const n = s.sourceClients.size;
      return Promise.reject(
        new ControlRefusal(
          `finish refused: the source export has ${n} attached client${n === 1 ? '' : 's'}`,
          'unmount the old filesystems and detach the source (`nbd-client -d /dev/nbdX`), then run finish again',
        ),
      );
    }
    if (s.phase === 'sealed' && s.unreadSourceReplies.count > 0) {
      // Finish lands on every block: replies from the page cache still unread would carry destination data (G2).
      return s.unreadSourceReplies.noneWithin(SEAL_WAITS_FOR_READERS_MS).then((none) => {
        if (none) return this.finish(onProgress);
        const unread = s.unreadSourceReplies.count;
        throw new ControlRefusal(
          `finish refused: ${unreadWithinGrace(unread, 'from the page cache')}, and finish overwrites those bytes of the disk`,
          'let the client read what it was sent or close its connection (a stopped process, a paused VM?), then run finish again',
        );
      });
    }
    if (s.phase === 'sealed') {
      s.phase = 'finishing';
      s.release(0, s.map.diskBlocks, true, false);
      s.confirmAll();
      // RAM data whose home was unread until now can land there: on the landing list, a write that needs
      // room lands it (pressure step a) rather than spill into that very home and lengthen finish's chains.
      for (const d of [...s.ram.keys()].sort((a, b) => a - b)) s.noteLandable(d);
      s.committer.append({ type: 'finish-begin' });
      this.emit();
    }
    this.progressListeners.add(onProgress);
    const run = async (): Promise<void> => {
      await s.committer.commitThrough();
      let durable!: { resolve(): void; reject(err: unknown): void };
      const finishedDurable = new Promise<void>((resolve, reject) => (durable = { resolve, reject }));
      finishedDurable.catch(() => undefined);
      await this.planner.run(
        (p) => {
          for (const listener of this.progressListeners) listener(p);
        },
        () => {
          s.phase = 'finished';
          s.finishedDurable = finishedDurable;
        },
      );
      try {
        await s.committer.flush();
        s.committer.append({ type: 'finished' });
        await s.committer.commitThrough();
      } catch (err) {
        durable.reject(err);
        throw err;
      }
      durable.resolve();
      s.finishedDurable = undefined;
      s.releaseCacheMemory();
      s.log.info('finish complete: the disk holds the new layout; the caches gave their memory back');
      this.emit();
    };
    this.finishing = run().finally(() => {
      this.finishing = undefined;
      this.progressListeners.clear();
    });
    return this.finishing;
  }

  /**
   * Stops a finish in progress before its next wave and waits until it has
   * (it fails with FinishStoppedError; running finish again resumes). For a
   * server that is stopping: the state must not be closed under a running finish.
   */
  async stopFinish(): Promise<void> {
    const running = this.finishing;
    if (running === undefined) return;
    this.planner.requestStop();
    await running.catch(() => undefined);
  }

  /** Where destination block d's newest data is now (for `verify`, diagnostics and tests). */
  locationOf(d: number): { kind: 'ram' | 'zero' | 'slot' | 'home'; block?: number } {
    const loc = this.s.locationOf(d);
    if (loc.kind === 'slot') return { kind: 'slot', block: loc.slot };
    if (loc.kind === 'home') return { kind: 'home', block: loc.home };
    return { kind: loc.kind };
  }

  /** Before sealing: the byte ranges of the disk a TRIM of source has declared free (none once sealed). */
  declaredFree(): Array<{ start: number; length: number }> {
    const B = this.s.B;
    return [...this.s.free.all()].map((r) => ({ start: r.start * B, length: (r.end - r.start) * B }));
  }

  status(): RemapStatus {
    return statusOf(this.s, this.s.phase === 'finishing' ? this.planner.progress : null);
  }

  private emit(): void {
    for (const listener of this.phaseListeners) listener(this.s.phase);
  }
}
