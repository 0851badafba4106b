import type { BlockDevice } from './block-device.js';
import { isRetryableCommitFailure, type StateJournal, type StateRecord } from './state-journal.js';

/** Records waiting this long for a barrier are committed in the background, so they never pile up. */
export const BACKGROUND_COMMIT_RECORDS = 4096;

/** How long background commits pause after a retryable failure (a full file system). */
const BACKGROUND_RETRY_MS = 1000;

export interface StateCommitterOptions {
  /** Default BACKGROUND_COMMIT_RECORDS; the crash tests lower it so that background commits happen in small workloads. */
  backgroundCommitRecords?: number;
  /**
   * Called when a commit (or the device sync before one) fails: once for good
   * (`final`: commits stop there), and for the first retryable failure after
   * each success (the next commit tries again).
   */
  onFailure?: (err: unknown, final: boolean) => void;
  /** Called when a commit (with its device sync) took at least `slowCommitMs`: `records` went into it. */
  onSlowCommit?: (ms: number, records: number) => void;
  /** Default SLOW_COMMIT_MS. */
  slowCommitMs?: number;
}

/**
 * A commit this slow is worth a warning: the requests waiting for it (a
 * FLUSH, a write whose barrier it is) wait as long, and the kernel client
 * fails a request after its timeout (`nbd-client -t`, 60 s in the commands
 * the server prints), taking the filesystem above down.
 */
export const SLOW_COMMIT_MS = 10_000;

/**
 * Group commit in front of a StateJournal. `append` only queues a record and
 * numbers it; a commit takes the queued batch, syncs the device first when the
 * journal is durable and the batch has a record pointing at data (`spill`,
 * `land`) — data is durable before the records that point at it — then hands
 * the batch to the journal and commits it. A batch that points at nothing
 * unsynced but must sync the device anyway (a FLUSH) runs both syncs at once.
 * Records appended while a commit is in flight wait for the next one, so a
 * record is never committed ahead of a sync it needs. Callers join the commit
 * in flight when it covers them: a burst of writes that each need a barrier
 * shares one.
 *
 * A failed commit is final: every later barrier fails too, because the
 * journal may now lack records the engine has acted on. Except a retryable
 * one (isRetryableCommitFailure: the journal took none of the batch, as when
 * its file system is full): it fails the barriers it covered, the batch goes
 * back in the queue in order, and the next commit tries again.
 */
export class StateCommitter {
  /** Queued records in append order, with their sequence numbers (`seqs[i]` belongs to `pending[i]`). */
  private pending: StateRecord[] = [];
  private seqs: number[] = [];
  private appendedSeq = 0;
  /** Every record numbered up to this is committed. */
  private committedSeq = 0;
  /** Every `destroy` and `release` record numbered up to this is committed (≥ committedSeq). */
  private permittedSeq = 0;
  private syncTickets = 0;
  private syncedTicket = 0;
  private inFlight: Promise<void> | undefined;
  private inFlightSeq = 0;
  private inFlightPermitSeq = 0;
  private inFlightTicket = 0;
  private failure: unknown;
  private committedWaiters: Array<{ seq: number; wake: () => void }> = [];
  /** Every write completed before the record numbered this was appended is synced to the device. */
  private deviceSyncedSeq = 0;
  private backgroundRunning = false;
  /** After a retryable failure, background commits start again only from this time (ms, monotonic: a clock set back must not pause them for hours). */
  private backgroundPausedUntil = 0;

  private readonly backgroundCommitRecords: number;
  private readonly onFailure: ((err: unknown, final: boolean) => void) | undefined;
  private readonly onSlowCommit: ((ms: number, records: number) => void) | undefined;
  private readonly slowCommitMs: number;
  /** The retryable failure of the last commit, until one succeeds. */
  private retryableFailure: unknown;

  constructor(
    private readonly journal: StateJournal,
    private readonly device: BlockDevice,
    options: StateCommitterOptions = {},
  ) {
    this.backgroundCommitRecords = options.backgroundCommitRecords ?? BACKGROUND_COMMIT_RECORDS;
    this.onFailure = options.onFailure;
    this.onSlowCommit = options.onSlowCommit;
    this.slowCommitMs = options.slowCommitMs ?? SLOW_COMMIT_MS;
  }

  /** Why commits stopped, or undefined while they go on: a failed commit is final. */
  get failed(): unknown {
    return this.failure;
  }

  /** Why the last commit failed when the next one may succeed (a full file system), until one does. */
  get lastRetryableFailure(): unknown {
    return this.retryableFailure;
  }

  /** The journal keeps records across a crash (only then is RAM-held data worth logging at a FLUSH). */
  get durable(): boolean {
    return this.journal.durable;
  }

  /** The journal's own description (path, size) for `status`, when it has one. */
  journalInfo(): ReturnType<NonNullable<StateJournal['info']>> | undefined {
    return this.journal.info?.();
  }

  /** Sequence number of the last appended record. */
  get lastSeq(): number {
    return this.appendedSeq;
  }

  get committed(): number {
    return this.committedSeq;
  }

  append(record: StateRecord): number {
    // Once commits have stopped for good nothing will take the queue: it is not kept growing.
    if (this.failure !== undefined) return ++this.appendedSeq;
    this.pending.push(record);
    this.seqs.push(++this.appendedSeq);
    if (this.pending.length >= this.backgroundCommitRecords && !this.backgroundRunning && this.failure === undefined && performance.now() >= this.backgroundPausedUntil) {
      this.backgroundRunning = true;
      void this.commitInBackground().finally(() => (this.backgroundRunning = false));
    }
    return this.appendedSeq;
  }

  /**
   * Commits what is queued now, for nobody in particular. The device sync its
   * `spill`/`land` records need runs first, on its own: a commit in flight
   * holds up every barrier behind it, and a permission barrier (a write
   * waiting to destroy an original) must not wait for a sync of everything
   * written since the last one (~190 ms after 512 MiB of spills into this
   * machine's page cache; seconds on a slow disk). The records then go in
   * without a sync of their own. A failure is kept in `failure` and reported
   * by the next barrier.
   */
  private async commitInBackground(): Promise<void> {
    const through = this.appendedSeq;
    try {
      if (this.needsDeviceSync(this.pending, this.seqs, through)) {
        await this.device.sync();
        this.deviceSyncedSeq = Math.max(this.deviceSyncedSeq, through);
      }
      while (this.committedSeq < through && this.failure === undefined) {
        const current = this.inFlight;
        if (current !== undefined) await current.catch(() => undefined);
        else await this.start(undefined, through);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** Resolves once every record up to `seq` is committed. */
  commitThrough(seq: number = this.appendedSeq): Promise<void> {
    if (seq <= this.committedSeq) return Promise.resolve();
    return this.barrier(seq, 0, false);
  }

  /**
   * Resolves once every `destroy` and `release` record up to `seq` is
   * committed: the permission to overwrite blocks never destroyed before
   * (docs/remap-engine.md §Records). `spill`/`land` records pending ahead of
   * them may stay pending (so this needs no device sync), and so may the
   * `zero`/`hold` records behind those; a commit that would have to leave
   * any other kind of record behind commits everything instead. Not enough
   * for reusing a freed block: that needs `commitThrough`.
   */
  commitPermissionsThrough(seq: number = this.appendedSeq): Promise<void> {
    if (seq <= this.permittedSeq) return Promise.resolve();
    return this.barrier(seq, 0, true);
  }

  /**
   * Resolves once every record up to `seq` is committed (its bytes are in the
   * journal), or once the committer has failed. Unlike commitThrough it starts
   * no commit: for memory a record writes from, to be reused afterwards.
   */
  whenCommitted(seq: number): Promise<void> {
    if (seq <= this.committedSeq || this.failure !== undefined) return Promise.resolve();
    return new Promise((wake) => this.committedWaiters.push({ seq, wake }));
  }

  /** Puts a batch a retryable failure gave back in front of what was appended since, merged by sequence number. */
  private requeue(batch: readonly StateRecord[], batchSeqs: readonly number[]): void {
    const pending: StateRecord[] = [];
    const seqs: number[] = [];
    let i = 0;
    let j = 0;
    while (i < batch.length || j < this.pending.length) {
      if (j >= this.pending.length || (i < batch.length && batchSeqs[i] < this.seqs[j])) {
        pending.push(batch[i]);
        seqs.push(batchSeqs[i++]);
      } else {
        pending.push(this.pending[j]);
        seqs.push(this.seqs[j++]);
      }
    }
    this.pending = pending;
    this.seqs = seqs;
  }

  /**
   * A failed commit is final, except a retryable one (the journal took none of
   * it): that fails only the barriers it covered, and background commits
   * wait a while before they try again rather than hit a full file system on
   * every append.
   */
  private fail(err: unknown): void {
    if (isRetryableCommitFailure(err)) {
      this.backgroundPausedUntil = performance.now() + BACKGROUND_RETRY_MS;
      if (this.retryableFailure === undefined) this.onFailure?.(err, false);
      this.retryableFailure = err;
      return;
    }
    if (this.failure === undefined) {
      this.failure = err;
      this.onFailure?.(err, true);
    }
    this.wakeCommitted();
  }

  private wakeCommitted(): void {
    if (this.committedWaiters.length === 0) return;
    const waiting: typeof this.committedWaiters = [];
    for (const w of this.committedWaiters) {
      if (w.seq <= this.committedSeq || this.failure !== undefined) w.wake();
      else waiting.push(w);
    }
    this.committedWaiters = waiting;
  }

  /** Every write completed so far and every record appended so far become durable. */
  flush(): Promise<void> {
    return this.barrier(this.appendedSeq, ++this.syncTickets, false);
  }

  private async barrier(seq: number, ticket: number, permissionsOnly: boolean): Promise<void> {
    for (;;) {
      const done = permissionsOnly ? this.permittedSeq : this.committedSeq;
      if (done >= seq && this.syncedTicket >= ticket) return;
      if (this.failure !== undefined) throw this.failure;
      const current = this.inFlight;
      if (current !== undefined) {
        const covers = (permissionsOnly ? this.inFlightPermitSeq : this.inFlightSeq) >= seq && this.inFlightTicket >= ticket;
        if (covers) await current;
        else await current.catch(() => undefined);
        continue;
      }
      this.start(permissionsOnly && ticket === 0 ? seq : undefined);
    }
  }

  /**
   * A durable journal must not get a record that points at data before that
   * data is synced: true when some record numbered up to `through` points at
   * data no device sync has covered yet.
   */
  needsDeviceSync(records: readonly StateRecord[], seqs: readonly number[], through: number): boolean {
    if (!this.journal.durable) return false;
    for (let i = 0; i < records.length && seqs[i] <= through; i++) {
      if (seqs[i] > this.deviceSyncedSeq && isPointer(records[i])) return true;
    }
    return false;
  }

  /**
   * Splits the queue for a commit without a device sync: what can be
   * committed now, and what stays queued (in order). A record stays when it
   * points at data (durable journal), or when a record before it stays and it
   * is not a `destroy`/`release`. A `destroy` or `release` may overtake the
   * records that stay only while those are `spill`/`land`/`zero`/`hold`:
   * those concern destination blocks and blocks already destroyed, never a
   * block a later `destroy`/`release` names (a block is destroyed before any
   * record points at it, and only once), so the committed state is the one
   * the engine would have had if it had appended them later. Behind any
   * other record that stays, nothing overtakes it.
   */
  private splitForPermissions(): { now: StateRecord[]; nowSeqs: number[]; nowTop: number; stay: StateRecord[]; staySeqs: number[]; permitted: number } {
    const now: StateRecord[] = [];
    const nowSeqs: number[] = [];
    const stay: StateRecord[] = [];
    const staySeqs: number[] = [];
    let nowTop = this.committedSeq;
    let permitted = this.appendedSeq;
    let blocked = false;
    for (let i = 0; i < this.pending.length; i++) {
      const r = this.pending[i];
      const seq = this.seqs[i];
      const mayOvertake = r.type === 'destroy' || r.type === 'release' || r.type === 'release-hole';
      const mustStay = blocked || (this.journal.durable && isPointer(r)) || (stay.length > 0 && !mayOvertake);
      if (!mustStay) {
        now.push(r);
        nowSeqs.push(seq);
        if (stay.length === 0) nowTop = seq;
        continue;
      }
      if (!blocked && stay.length > 0 && !mayOvertake && !isPointer(r) && r.type !== 'zero' && r.type !== 'hold') {
        blocked = true;
        permitted = seq - 1;
      }
      stay.push(r);
      staySeqs.push(seq);
    }
    return { now, nowSeqs, nowTop, stay, staySeqs, permitted };
  }

  /**
   * Commits the queue: everything (syncing the device first when it points at
   * data no sync has covered), or — given `permitTarget` — only what
   * `splitForPermissions` lets through without a sync, when that covers the
   * permissions through `permitTarget`, or — given `through` — the records
   * numbered up to it (a prefix: committing it is what an earlier commit would have done).
   */
  private start(permitTarget: number | undefined, through = this.appendedSeq): Promise<void> {
    let batch: StateRecord[];
    let batchSeqs: number[];
    let seq: number;
    let permitSeq: number;
    let syncDevice: boolean;
    let pointers = false;
    const ticket = this.syncTickets;
    const split = permitTarget !== undefined && this.journal.durable ? this.splitForPermissions() : undefined;
    if (split !== undefined && split.stay.length > 0 && split.permitted >= (permitTarget as number)) {
      batch = split.now;
      batchSeqs = split.nowSeqs;
      seq = split.nowTop;
      permitSeq = split.permitted;
      syncDevice = false;
      this.pending = split.stay;
      this.seqs = split.staySeqs;
    } else {
      let count = this.pending.length;
      while (count > 0 && this.seqs[count - 1] > through) count--;
      const all = count === this.pending.length;
      batch = all ? this.pending : this.pending.slice(0, count);
      batchSeqs = all ? this.seqs : this.seqs.slice(0, count);
      // Nothing is in flight when a commit starts, so every record below the first one left is committed.
      seq = all ? this.appendedSeq : this.seqs[count] - 1;
      permitSeq = seq;
      pointers = this.needsDeviceSync(batch, this.seqs, seq);
      syncDevice = ticket > this.syncedTicket || pointers;
      this.pending = all ? [] : this.pending.slice(count);
      this.seqs = all ? [] : this.seqs.slice(count);
    }
    const syncedThrough = this.appendedSeq;
    const commitBatch = async (): Promise<void> => {
      if (batch.length === 0) return;
      for (const record of batch) this.journal.append(record);
      try {
        await this.journal.commit();
      } catch (err) {
        // The journal took none of it and takes commits again: the batch goes back in the queue, in order.
        if (isRetryableCommitFailure(err)) this.requeue(batch, batchSeqs);
        throw err;
      }
    };
    const run = async (): Promise<void> => {
      const started = performance.now();
      if (syncDevice && !pointers) {
        // Nothing in the batch points at disk data, so the two syncs need no order: a FLUSH that
        // logs held data waits for the slower of them, not their sum (both wait on the storage).
        const [device, journal] = await Promise.allSettled([this.device.sync(), commitBatch()]);
        if (device.status === 'rejected') throw device.reason;
        if (journal.status === 'rejected') throw journal.reason;
      } else {
        if (syncDevice) await this.device.sync();
        await commitBatch();
      }
      const took = performance.now() - started;
      if (took >= this.slowCommitMs) this.onSlowCommit?.(took, batch.length);
      this.committedSeq = Math.max(this.committedSeq, seq);
      this.retryableFailure = undefined;
      this.permittedSeq = Math.max(this.permittedSeq, permitSeq, this.committedSeq);
      if (syncDevice) {
        this.syncedTicket = Math.max(this.syncedTicket, ticket);
        this.deviceSyncedSeq = Math.max(this.deviceSyncedSeq, syncedThrough);
      }
    };
    const promise = run();
    this.inFlight = promise;
    this.inFlightSeq = seq;
    this.inFlightPermitSeq = permitSeq;
    this.inFlightTicket = syncDevice ? ticket : this.syncedTicket;
    promise.then(
      () => {
        if (this.inFlight === promise) this.inFlight = undefined;
        this.wakeCommitted();
      },
      (err: unknown) => {
        if (this.inFlight === promise) this.inFlight = undefined;
        this.fail(err);
      },
    );
    return promise;
  }
}

function isPointer(r: StateRecord): boolean {
  return r.type === 'spill' || r.type === 'land';
}
