import { dirname, join } from 'node:path';
import { shellQuote } from '../format/shell-quote.js';

/**
 * Errors about the state file, for a person: `message` says what is wrong
 * (naming the file, and the offset for damage), `fix` what to do. The CLI
 * prints both, like every error with a `fix`.
 */
export class StateError extends Error {
  override readonly name: string = 'StateError';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

/** The state file is damaged where a crash cannot have left it (header, snapshot, or the middle of the log). */
export class StateCorruptError extends StateError {
  override readonly name: string = 'StateCorruptError';
  constructor(
    readonly path: string,
    readonly offset: number,
    what: string,
    text?: { message: string; fix: string },
  ) {
    super(
      text?.message ?? `state file ${path} is damaged at byte offset ${offset}: ${what}`,
      text?.fix ??
        'do not start a new migration over this disk: its blocks are partly moved. Restore the state file from a backup copy if you have one ' +
          '(any copy taken while the server was stopped), then run again; without a valid state the moved data cannot be located',
    );
  }
}

/**
 * The file at the state path does not even begin with a state header: most
 * likely a mistyped --state naming some other file, else a state file
 * damaged in its first bytes. Found before the state's lock is taken, so a
 * typo leaves no lock file beside someone else's file.
 */
export class NotAStateFileError extends StateCorruptError {
  override readonly name = 'NotAStateFileError';
  constructor(path: string) {
    super(path, 0, 'no state header', {
      message: `${path} does not begin with a state header: it is not an nbd-remapper state file, or one damaged in its first bytes`,
      fix:
        "check --state: it must name this disk's state file, or a path where none exists yet to start a new migration (nothing was changed). " +
        'If it is this disk\'s state file, restore it from a backup copy taken while the server was stopped; never start a new migration over a disk whose blocks are partly moved',
    });
  }
}

/** The state file belongs to another disk, block size or map. */
export class StateMismatchError extends StateError {
  override readonly name = 'StateMismatchError';
  constructor(
    readonly path: string,
    readonly differences: string[],
    fix: string,
  ) {
    super(`state file ${path} does not belong to this migration: ${differences.join('; ')}`, fix);
  }
}

/** The state asks for something this run cannot give (e.g. a cache smaller than the data held in the state). */
export class StateUnusableError extends StateError {
  override readonly name = 'StateUnusableError';
}

/** Another process (a server, or `finish` run offline) holds the state's lock. */
export class StateInUseError extends StateError {
  override readonly name = 'StateInUseError';
  constructor(
    readonly path: string,
    lockPath: string,
    options?: { cause?: unknown },
  ) {
    super(
      `state file ${path} is in use by another nbd-remapper (a server or an offline finish holds its lock ${lockPath})`,
      `stop that process first (fuser -v ${shellQuote(lockPath)} shows it); if this is another disk, give it its own --state: a state file belongs to one disk`,
    );
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** The state's directory or files cannot be used at all (missing directory, no permission, read-only file system). */
export function stateAccessError(statePath: string, touched: string, err: unknown): StateError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  const dir = dirname(statePath);
  let error: StateError | undefined;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      error = new StateError(
        `cannot keep the state file ${statePath}: the directory ${dir} does not exist (${code})`,
        `create it (mkdir -p ${shellQuote(dir)}) or pass --state with a path in an existing directory — on a file system that is not on the disk being converted`,
      );
      break;
    case 'EACCES':
    case 'EPERM':
      error = new StateError(
        `cannot keep the state file ${statePath}: permission denied writing ${touched} (${code})`,
        `run as a user who may write in ${dir}, or pass --state with a path in a directory you can write`,
      );
      break;
    case 'EROFS':
      error = new StateError(
        `cannot keep the state file ${statePath}: ${dir} is on a read-only file system (${code})`,
        'pass --state with a path on a writable file system that is not on the disk being converted',
      );
      break;
    case 'EISDIR':
      error = new StateError(
        `cannot keep the state file ${statePath}: it is a directory (${code})`,
        `--state names the state file itself: pass a file path, for example ${join(statePath, 'disk.remap-state')}`,
      );
      break;
  }
  if (error !== undefined) error.cause = err;
  return error;
}

/**
 * An existing state file (or its directory, for the compaction's temp file)
 * cannot be opened for writing. It holds a migration, so the fix is to make
 * it writable — never another --state, which would start the migration over
 * a disk whose blocks are partly moved.
 */
export function existingStateAccessError(statePath: string, err: unknown): StateError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  let error: StateError | undefined;
  if (code === 'EACCES' || code === 'EPERM') {
    error = new StateError(
      `cannot open the state file ${statePath} for writing: permission denied (${code})`,
      `run as the user who owns it, or make it and its directory writable for this one (chmod u+w ${shellQuote(statePath)}; lsattr shows an immutable flag, chattr -i clears it). ` +
        'It holds this migration: do not start again with another --state',
    );
  } else if (code === 'EROFS') {
    error = new StateError(
      `cannot open the state file ${statePath} for writing: ${dirname(statePath)} is on a read-only file system (${code})`,
      `remount it read-write (mount -o remount,rw ${shellQuote(dirname(statePath))}, or the mount point above it) — the state file holds this migration`,
    );
  }
  if (error !== undefined) error.cause = err;
  return error;
}

/**
 * Writing or syncing the state file failed (docs/durability.md, "When the
 * state file cannot be written"). Retryable when the write of a commit group
 * found the file system full and was cut off again: the journal takes
 * commits again, and the next one may succeed once there is room. Otherwise
 * final: what the file holds is the last good commit, which a restart resumes.
 */
export class StateWriteError extends StateError {
  override readonly name = 'StateWriteError';
  /** The journal takes commits again: this one may succeed later. */
  readonly retryable: boolean;
  /** The failed system call when the failure may pass (a full file system), so a client is told ENOSPC; else undefined. */
  readonly syscall: string | undefined;
  constructor(
    readonly path: string,
    /** The errno name (ENOSPC, EIO, ...) when the system gave one. */
    readonly code: string | undefined,
    message: string,
    fix: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, fix);
    if (options?.cause !== undefined) this.cause = options.cause;
    this.retryable = options?.retryable ?? false;
    this.syscall = this.retryable ? ((options?.cause as NodeJS.ErrnoException | undefined)?.syscall ?? 'write') : undefined;
  }
}

/** A commit group's write found no room (not its sync: after a failed fdatasync nothing may be retried). */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
}

/**
 * The failure of a write or sync of the state file at `statePath`, for a
 * person. `creating`: no migration was recorded yet (the fix is then to put
 * the state elsewhere). `retryable`: the journal takes commits again (a full
 * file system, nothing synced), so freeing space is all it takes; otherwise
 * the state holds a migration that a restart resumes once the cause is gone.
 */
export function stateWriteError(statePath: string, err: unknown, how: { creating?: boolean; retryable?: boolean } = {}): StateWriteError {
  if (err instanceof StateWriteError) return err;
  const creating = how.creating ?? false;
  const retryable = how.retryable ?? false;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const dir = dirname(statePath);
  const what = creating ? `cannot create the state file ${statePath}` : `cannot write the state file ${statePath}`;
  const resume = creating
    ? 'then start again (nothing was recorded, so nothing was changed on the disk)'
    : retryable
      ? 'the next FLUSH (or finish, or a stop) commits what waits, and nothing held is lost meanwhile (the server keeps it in RAM); a client that gave up on a failed FLUSH must write its data again'
      : 'then restart `nbd-remapper serve` with the same --state: it resumes from the last commit. Writes acknowledged by a FLUSH that succeeded are kept; ' +
        'anything written since must be written again (run the copy again from the last checkpoint)';
  const elsewhere = creating ? ', or pass --state with a path on another file system (not on the disk being converted)' : '';
  let cause: string;
  let fix: string;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      cause =
        code === 'ENOSPC'
          ? 'no space left on the file system that holds it'
          : code === 'EDQUOT'
            ? 'the disk quota of this user is used up on the file system that holds it'
            : 'the file may not grow any larger (a file size limit)';
      fix = `free space on the file system of ${dir} (df -h ${shellQuote(dir)})${code === 'EFBIG' ? ' or raise the limit (ulimit -f)' : ''}${elsewhere}; ${resume}`;
      break;
    case 'EIO':
    case 'EROFS':
      cause = code === 'EIO' ? 'the storage under it reported an I/O error' : 'its file system became read-only (a kernel remounts one so after errors)';
      fix = creating
        ? `check that storage (dmesg)${elsewhere}; ${resume}`
        : `check that storage (dmesg); stop the server, copy the state file to healthy storage (not the disk being converted), and ${resume.replace('the same --state', '--state pointing at the copy')}`;
      break;
    default: {
      cause = err instanceof Error ? err.message : String(err);
      fix = `see the cause above${elsewhere}; ${resume}`;
    }
  }
  const message = `${what}: ${cause}${code !== undefined && !cause.includes(code) ? ` (${code})` : ''}`;
  return new StateWriteError(statePath, code, message, fix, { cause: err, retryable });
}
