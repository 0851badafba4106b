/**
 * Every transition of the remapping state, as a record appended to a journal.
 * Block numbers: `start`/`slot` are disk blocks, `dest` destination blocks.
 * The engine keeps the ordering rules (docs/remap-engine.md §Records):
 * a `destroy` is committed before its blocks are written; `spill` and `land`
 * are appended only after the data they point at is written, and a durable
 * journal's commit syncs the device first.
 */
export type StateRecord =
  /** Disk blocks trimmed on `source` before sealing. */
  | { type: 'free'; start: number; count: number }
  /** Disk blocks written on `source` before sealing: no longer free. */
  | { type: 'unfree'; start: number; count: number }
  /**
   * The source is read-only from now on; free blocks are released and confirmed.
   * `samples`: hashes of a few disk blocks' originals, so a state reopened on
   * another disk is refused (docs/durability.md §Identity).
   */
  | { type: 'seal'; samples?: SealSample[] }
  /** Disk blocks whose source was read in full. */
  | { type: 'release'; start: number; count: number }
  /**
   * Disk blocks a block-status reply of source told a client are a hole:
   * released as a read releases them, and their originals are zeroes (served
   * as such once overwritten, never captured).
   */
  | { type: 'release-hole'; start: number; count: number }
  /** Every released block is confirmed. */
  /** `note`: what the copier says it had done by then (copy resumes after it); the last note stays with the state. */
  | { type: 'checkpoint'; note?: string }
  /** These originals are about to be overwritten: the permission, committed before the write. */
  | { type: 'destroy'; start: number; count: number }
  /** Destination blocks now read as zeroes (held, not written). */
  | { type: 'zero'; dest: number; count: number }
  /** Destination blocks now live in slots `slot …` (written before this record). */
  | { type: 'spill'; dest: number; count: number; slot: number }
  /** Destination blocks now live at their homes (written before this record). */
  | { type: 'land'; dest: number; count: number }
  /** A destination block's data, kept in the journal itself (finish breaking a cycle of slots). */
  | { type: 'hold'; dest: number; data: Buffer }
  /** Finish began: every block is released and confirmed. */
  | { type: 'finish-begin' }
  /** Everything held has landed; the disk is the new layout. */
  | { type: 'finished' };

export type StateRecordType = StateRecord['type'];

/** A disk block's original content at sealing, as a hash (hex). */
export interface SealSample {
  block: number;
  hash: string;
}

/** What `status` shows of a durable journal. */
export interface JournalInfo {
  path: string;
  /** Size of the state file now. */
  bytes: number;
  /** Records committed since the state was created. */
  records: number;
  /** When the last commit became durable (ISO time), or null. */
  lastCommit: string | null;
  /** Snapshots (compactions) written by this process. */
  compactions: number;
  /** Why a restart now would not find the state at its path (removed, or a mount over its directory), or null. */
  pathProblem: string | null;
}

/**
 * Where the records go. The engine's StateCommitter hands them over in
 * batches, each batch followed by `commit()`, and never appends while a
 * commit is running: a journal may buffer appends until its commit.
 */
export interface StateJournal {
  /**
   * True when records survive a crash once committed. Only then does a commit
   * first sync the device (data before the records that point at it).
   */
  readonly durable: boolean;
  append(record: StateRecord): void;
  /**
   * Durable barrier: every record appended before the call is durable when it
   * resolves. A failure is final — the journal takes no more commits —
   * unless the error is retryable (isRetryableCommitFailure): then none of
   * the batch was taken, and a later commit of it may succeed.
   */
  commit(): Promise<void>;
  /** For `status`: where the records go and how far they got. */
  info?(): JournalInfo;
}

/**
 * A commit failure after which the journal takes commits again: nothing was
 * synced and what was written of the batch is cut off again (a full file
 * system). The committer queues the batch again, ahead of what came after.
 */
export function isRetryableCommitFailure(err: unknown): boolean {
  return (err as { retryable?: unknown } | null)?.retryable === true;
}

/**
 * The journal before durability exists (issue 4): keeps nothing but counts,
 * so a long migration does not grow memory. Tests pass `keepRecords` to see them.
 */
export class MemoryStateJournal implements StateJournal {
  readonly durable: boolean;
  readonly records: StateRecord[] = [];
  readonly counts: Partial<Record<StateRecordType, number>> = {};
  appended = 0;
  commits = 0;
  private readonly keep: boolean;

  constructor(options: { keepRecords?: boolean; durable?: boolean } = {}) {
    this.keep = options.keepRecords ?? false;
    this.durable = options.durable ?? false;
  }

  append(record: StateRecord): void {
    this.appended++;
    this.counts[record.type] = (this.counts[record.type] ?? 0) + 1;
    if (this.keep) this.records.push(record);
  }

  async commit(): Promise<void> {
    this.commits++;
  }
}
