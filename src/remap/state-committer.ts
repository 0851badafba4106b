import type { BlockDevice } from './block-device.js';
import type { StateJournal, StateRecord } from './state-journal.js';

/** Records waiting this long for a barrier are committed in the background, so they never pile up. */
const BACKGROUND_COMMIT_RECORDS = 4096;

/**
 * Group commit in front of a StateJournal. `append` only queues a record and
 * numbers it; a commit takes the queued batch, syncs the device first when the
 * journal is durable and the batch has a record pointing at data (`spill`,
 * `land`) — data is durable before the records that point at it — then hands
 * the batch to the journal and commits it. Records appended while a commit is
 * in flight wait for the next one, so a record is never committed ahead of a
 * sync it needs. Callers join the commit in flight when it covers them: a
 * burst of writes that each need a barrier shares one.
 *
 * A failed commit is final: every later barrier fails too, because the
 * journal may now lack records the engine has acted on.
 */
export class StateCommitter {
  private pending: StateRecord[] = [];
  private appendedSeq = 0;
  private committedSeq = 0;
  private syncTickets = 0;
  private syncedTicket = 0;
  private inFlight: Promise<void> | undefined;
  private inFlightSeq = 0;
  private inFlightTicket = 0;
  private failure: unknown;

  constructor(
    private readonly journal: StateJournal,
    private readonly device: BlockDevice,
  ) {}

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
    this.pending.push(record);
    this.appendedSeq++;
    if (this.pending.length >= BACKGROUND_COMMIT_RECORDS && this.inFlight === undefined && this.failure === undefined) {
      // Nobody awaits this one: a failure is kept in `failure` and reported by the next barrier.
      this.start().catch(() => undefined);
    }
    return this.appendedSeq;
  }

  /** Resolves once every record up to `seq` is committed. */
  commitThrough(seq: number = this.appendedSeq): Promise<void> {
    if (seq <= this.committedSeq) return Promise.resolve();
    return this.barrier(seq, 0);
  }

  /** Every write completed so far and every record appended so far become durable. */
  flush(): Promise<void> {
    return this.barrier(this.appendedSeq, ++this.syncTickets);
  }

  private async barrier(seq: number, ticket: number): Promise<void> {
    while (this.committedSeq < seq || this.syncedTicket < ticket) {
      if (this.failure !== undefined) throw this.failure;
      const current = this.inFlight;
      if (current !== undefined) {
        if (this.inFlightSeq >= seq && this.inFlightTicket >= ticket) await current;
        else await current.catch(() => undefined);
        continue;
      }
      this.start();
    }
  }

  /** A durable journal must not get these records before the data they point at is synced. */
  pointsAtData(batch: readonly StateRecord[]): boolean {
    return this.journal.durable && batch.some((r) => r.type === 'spill' || r.type === 'land');
  }

  private start(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const seq = this.appendedSeq;
    const ticket = this.syncTickets;
    const syncDevice = ticket > this.syncedTicket || this.pointsAtData(batch);
    const run = async (): Promise<void> => {
      if (syncDevice) await this.device.sync();
      if (batch.length > 0) {
        for (const record of batch) this.journal.append(record);
        await this.journal.commit();
      }
      this.committedSeq = Math.max(this.committedSeq, seq);
      if (syncDevice) this.syncedTicket = Math.max(this.syncedTicket, ticket);
    };
    const promise = run();
    this.inFlight = promise;
    this.inFlightSeq = seq;
    this.inFlightTicket = syncDevice ? ticket : this.syncedTicket;
    promise.then(
      () => {
        if (this.inFlight === promise) this.inFlight = undefined;
      },
      (err: unknown) => {
        if (this.inFlight === promise) this.inFlight = undefined;
        this.failure ??= err;
      },
    );
    return promise;
  }
}
