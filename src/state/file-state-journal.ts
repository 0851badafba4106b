import { dirname } from 'node:path';
import { silentLogger, type Logger } from '../log/logger.js';
import { MapError } from '../remap/map-error.js';
import { RemapMap } from '../remap/map.js';
import type { JournalInfo, StateJournal, StateRecord } from '../remap/state-journal.js';
import { ByteReader, ByteWriter, DecodeError } from './byte-codec.js';
import { DurableState, type HoldRef } from './durable-state.js';
import { decodeFrame, FRAME_HEADER_BYTES, FRAME_MAGIC, FrameKind, frameParts, isFrame, validFramesAfter, type Frame } from './frame-codec.js';
import { decodeRecord, encodeRecord, recordOutOfRange } from './record-codec.js';
import { snapshotFrames, SnapshotReader } from './snapshot-codec.js';
import { nodeStateFs, type StateFile, type StateFs, type StateLock } from './state-fs.js';
import { parseIdentity, type StateIdentity } from './state-identity.js';
import { NotAStateFileError, StateCorruptError, StateError, StateWriteError, existingStateAccessError, isOutOfSpace, stateAccessError, stateWriteError } from './state-errors.js';

export interface FileJournalOptions {
  /** Default: the real file system. The power-loss tests inject a model. */
  fs?: StateFs;
  log?: Logger;
  /**
   * Compact (write a fresh snapshot) once the log after the snapshot exceeds
   * this many bytes and the snapshot's own size. Default 64 MiB.
   */
  compactBytes?: number;
  /** How often (ms) a commit checks that the path still names the state file. Default PATH_CHECK_MS; tests pass 0. */
  pathCheckMs?: number;
}

/** A commit looks at most this often whether the state file was removed or replaced under the server. */
export const PATH_CHECK_MS = 1000;

/** What recovery found in an existing state file. */
export interface OpenedState {
  journal: FileStateJournal;
  identity: StateIdentity;
  map: RemapMap;
  /** The committed state (snapshot + log replayed). */
  state: DurableState;
  /** Data of the blocks held in the state file, to put back into RAM. */
  holds: Map<number, Buffer>;
  /** Bytes of a torn tail cut off (0: the file ended cleanly). */
  cutBytes: number;
}

const DEFAULT_COMPACT_BYTES = 64 * 1024 * 1024;
/** Compaction reads the old file's held data this much at a time. */
const READ_WINDOW_BYTES = 4 * 1024 * 1024;
/** A snapshot is written in pieces of about this size, so the windows of held data read for it can go. */
const WRITE_CHUNK_BYTES = 8 * 1024 * 1024;

/** Parts at least this big (held data) are written from where they are; smaller ones are copied together. */
const DIRECT_PART_BYTES = 4096;

/**
 * Frames are mostly tiny (headers, block ranges: a few dozen bytes) with held
 * data in between. Each run of small parts becomes one buffer, and held data
 * stays a part of its own: a commit of 10,000 `release` records is a handful
 * of iovecs, not 20,000, and 64 MiB of holds is written uncopied.
 */
function gatherSmallParts(parts: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let small: Buffer[] = [];
  const flushSmall = (): void => {
    if (small.length === 1) out.push(small[0]);
    else if (small.length > 1) out.push(Buffer.concat(small));
    small = [];
  };
  for (const part of parts) {
    if (part.length >= DIRECT_PART_BYTES) {
      flushSmall();
      out.push(part);
    } else {
      small.push(part);
    }
  }
  flushSmall();
  return out;
}

export function tempPathOf(path: string): string {
  return `${path}.tmp`;
}

/**
 * The durable journal: one file, `header · snapshot · log`.
 *
 * The log is a sequence of commit groups (batches): the frames of the
 * group's records, then a commit frame naming the batch and its record
 * count, written in one go and made durable with one fdatasync. Recovery
 * applies only complete groups; a torn last group is cut off. Compaction
 * writes `header · snapshot` of the committed state to `PATH.tmp`, syncs it,
 * renames it over PATH and syncs the directory, so a crash at any instant
 * leaves either the old file or the new one. docs/durability.md has the format.
 */
export class FileStateJournal implements StateJournal {
  readonly durable = true;
  private batch: StateRecord[] = [];
  private lastCommitAt: string | null = null;
  private compactionCount = 0;
  /** worthCompacting() looks again once the file reaches this size. */
  private compactCheckAt = 0;
  private failed: unknown;

  private constructor(
    readonly path: string,
    private readonly fs: StateFs,
    private file: StateFile,
    private readonly identity: StateIdentity,
    /** The committed state, kept current at every commit (snapshots are written from it). */
    readonly state: DurableState,
    /** Last committed batch number. */
    private batchNo: number,
    /** Where the next batch goes (the file's valid length). */
    private end: number,
    /** Where the log begins (just past the snapshot). */
    private logStart: number,
    private readonly log: Logger,
    private readonly compactBytes: number,
    /** Held from open/create to close: no other process may append to this state meanwhile. */
    private readonly lock: StateLock,
    private readonly pathCheckMs: number,
  ) {}

  /** When a commit last looked whether the path still names the state file (ms). */
  private pathCheckedAt = -Infinity;
  /** The device of the state's directory when the path named the open file (at open, else at the first look that found it so). */
  private directoryDevice: number | undefined;
  /** The last look found the directory covered by a mount (said once, until it is uncovered). */
  private covered = false;
  /** What the last look at the path found wrong (for status), or null. */
  private pathProblem: string | null = null;

  /**
   * Creates a new state file for `map` (atomically: temp file, sync, rename,
   * sync the directory). Never over an existing one: a state that appeared
   * since the caller found none (another server started at the same moment)
   * is a migration in progress.
   */
  static async create(path: string, identity: StateIdentity, map: RemapMap, options: FileJournalOptions = {}): Promise<FileStateJournal> {
    const fs = options.fs ?? nodeStateFs;
    const lock = await fs.lock(path);
    try {
      const existing = await fs.openExisting(path, false);
      if (existing !== undefined) {
        await existing.close();
        throw new StateError(
          `state file ${path} already exists: another process created it while this one was starting`,
          'start again: the migration it records is resumed if it belongs to this disk, and refused with what differs if not',
        );
      }
      const state = new DurableState(map);
      const tmp = tempPathOf(path);
      let file: StateFile;
      let end: number;
      try {
        ({ file, end } = await writeTempStateFile(fs, tmp, identity, state, 0, async () => Buffer.alloc(0)));
        await installStateFile(fs, tmp, path).catch(async (err: unknown) => {
          await file.close().catch(() => undefined);
          throw err;
        });
      } catch (err) {
        await fs.remove(tmp).catch(() => undefined);
        throw stateWriteError(path, err, { creating: true });
      }
      const journal = new FileStateJournal(
        path,
        fs,
        file,
        identity,
        state,
        0,
        end,
        end,
        options.log ?? silentLogger,
        options.compactBytes ?? DEFAULT_COMPACT_BYTES,
        lock,
        options.pathCheckMs ?? PATH_CHECK_MS,
      );
      await journal.rememberDirectory();
      return journal;
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Opens an existing state file and recovers the committed state, or returns
   * undefined when there is none. A leftover temp file of an interrupted
   * compaction is removed (the complete old file is still in place); one of
   * an interrupted creation is overwritten by the next `create`.
   */
  static async open(path: string, options: FileJournalOptions = {}): Promise<OpenedState | undefined> {
    const fs = options.fs ?? nodeStateFs;
    const log = options.log ?? silentLogger;
    // No state, no lock file: a mistyped --state (a missing file, or one that is not a state) leaves nothing behind.
    const probe = await fs.openExisting(path, false);
    if (probe === undefined) return undefined;
    const magic = Buffer.alloc(4);
    const got = await probe
      .read(magic, 0)
      .catch((err: unknown) => Promise.reject(stateAccessError(path, path, err) ?? err))
      .finally(() => probe.close());
    if (got < magic.length || magic.readUInt32LE(0) !== FRAME_MAGIC) throw new NotAStateFileError(path);
    // Taken before anything is changed: the temp file may be another server's compaction in progress.
    const lock = await fs.lock(path);
    let file: StateFile | undefined;
    try {
      await fs.remove(tempPathOf(path));
      file = await fs.openExisting(path, true);
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw existingStateAccessError(path, err) ?? err;
    }
    if (file === undefined) {
      await lock.release();
      return undefined;
    }
    try {
      const size = await file.size();
      const data = Buffer.alloc(size);
      const got = await file.read(data, 0);
      const parsed = parseStateFile(path, got === size ? data : data.subarray(0, got));
      let cutBytes = 0;
      if (parsed.validEnd < got) {
        cutBytes = got - parsed.validEnd;
        log.warn(
          `state file ${path}: cut ${cutBytes} byte(s) after offset ${parsed.validEnd}: an incomplete commit group (a crash while it was written; it was never acknowledged)`,
        );
        await file.truncate(parsed.validEnd);
        await file.datasync();
      }
      const holds = new Map<number, Buffer>();
      for (const [dest, ref] of parsed.state.holds) holds.set(dest, Buffer.from(data.subarray(ref.position, ref.position + ref.length)));
      const journal = new FileStateJournal(
        path,
        fs,
        file,
        parsed.identity,
        parsed.state,
        parsed.batchNo,
        parsed.validEnd,
        parsed.logStart,
        log,
        options.compactBytes ?? DEFAULT_COMPACT_BYTES,
        lock,
        options.pathCheckMs ?? PATH_CHECK_MS,
      );
      await journal.rememberDirectory();
      return { journal, identity: parsed.identity, map: parsed.map, state: parsed.state, holds, cutBytes };
    } catch (err) {
      await file.close().catch(() => undefined);
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  append(record: StateRecord): void {
    this.batch.push(record);
  }

  async commit(): Promise<void> {
    if (this.failed !== undefined) throw this.failed;
    const records = this.batch;
    this.batch = [];
    if (records.length === 0) return;
    try {
      const batchNo = this.batchNo + 1;
      // Every part is stable (hold data is a copy or a buffer nobody reuses), so the group is written
      // from where its parts are, uncopied.
      const parts: Buffer[] = [];
      const holdRefs: Array<HoldRef | undefined> = [];
      let at = this.end;
      const push = (frame: readonly Buffer[]): void => {
        for (const part of frame) {
          parts.push(part);
          at += part.length;
        }
      };
      for (const r of records) {
        const encoded = encodeRecord(r);
        // A hold's data is its payload's last part.
        holdRefs.push(r.type === 'hold' ? { position: at + FRAME_HEADER_BYTES + encoded.parts[0].length, length: r.data.length } : undefined);
        push(frameParts(encoded.kind, batchNo, encoded.parts, this.identity.frameSeed));
      }
      push(frameParts(FrameKind.Commit, batchNo, [new ByteWriter().uint(records.length).finish()], this.identity.frameSeed));
      try {
        await this.file.writev(gatherSmallParts(parts), this.end);
      } catch (err) {
        // No room: nothing is synced yet, so cutting off what fitted leaves the file as it was, and a
        // later commit of the batch may succeed once there is room. The cut is synced before that retry
        // writes over it, so a crash cannot leave this try's frames behind a shorter retry's.
        const cut = isOutOfSpace(err) && (await this.file.truncate(this.end).then(() => this.file.datasync()).then(() => true, () => false));
        if (cut) {
          throw stateWriteError(this.path, err, { retryable: true });
        }
        throw err;
      }
      await this.file.datasync();
      records.forEach((r, i) => this.state.apply(r, holdRefs[i]));
      this.batchNo = batchNo;
      this.end = at;
      this.lastCommitAt = new Date().toISOString();
    } catch (err) {
      if (err instanceof StateWriteError && err.retryable) throw err;
      // The file may now hold part of this group, and after a failed fdatasync the kernel may have dropped
      // pages it never wrote while reporting the next sync clean: nothing more is committed after it.
      this.failed = stateWriteError(this.path, err);
      throw this.failed;
    }
    const compacting = this.worthCompacting();
    // A snapshot is written by path: it must not go into a file system mounted over the state's directory.
    if ((compacting || performance.now() - this.pathCheckedAt >= this.pathCheckMs) && (await this.rewriteIfGone())) return;
    if (compacting) await this.compact();
  }

  /**
   * A state file removed or replaced under a running server (by hand, or by a
   * cleaner of /tmp) would be gone at the next start — and a new migration
   * over a disk whose blocks are partly moved loses them. So a commit looks
   * (at most once per pathCheckMs, and before every snapshot) whether the path
   * still names this file, and if not writes the committed state there again
   * as a fresh snapshot. Returns true when it did (or tried), or when the path
   * leads into a file system mounted over the state's directory, where nothing
   * is written: commits go on into the open (hidden) file, which is durable,
   * and a person is told to unmount it. That mount may be the old filesystem
   * mounted from `source`: a snapshot written there would land in the old
   * layout (and its FLUSH wait on this very server).
   */
  private async rewriteIfGone(): Promise<boolean> {
    this.pathCheckedAt = performance.now();
    const place = await this.whereIsPath();
    if (place === 'covered') {
      if (!this.covered) {
        this.log.error(
          `state file ${this.path}: a file system was mounted over ${dirname(this.path)} while the server runs. The state file is hidden under it; ` +
            `commits go on into it (they are durable) and no snapshot is written there meanwhile. Unmount it (findmnt ${dirname(this.path)} shows it): ` +
            `a restart while it is mounted would not find the state`,
        );
      }
      this.covered = true;
      this.pathProblem = `a file system is mounted over ${dirname(this.path)}, hiding the state file (commits go on into it): unmount it before any restart`;
      return true;
    }
    if (this.covered) this.log.info(`state file ${this.path}: its directory is no longer covered by a mount`);
    this.covered = false;
    this.pathProblem = null;
    if (place === 'here') return false;
    this.log.error(`state file ${this.path} was removed or replaced while the server runs: writing the committed state there again`);
    await this.compact();
    if ((await this.whereIsPath()) !== 'here') {
      this.pathProblem = `it was removed and could not be written again: the state exists only in this process; do not stop the server, make ${dirname(this.path)} writable again`;
      this.log.error(
        `state file ${this.path} could not be written again: the migration's state now exists only in this process. ` +
          `Do not stop the server; make ${dirname(this.path)} writable again (the next commit tries again)`,
      );
    }
    return true;
  }

  /** Where the state's directory is as the state is opened: a mount over it later changes its device. */
  private async rememberDirectory(): Promise<void> {
    this.directoryDevice = await this.fs.directoryDevice(this.path).catch(() => undefined);
  }

  /**
   * 'here' when the path names the open file; 'covered' when it does not and
   * its directory is now on another file system than when it did (a mount
   * over it); else 'gone'. A look that fails (a stat error) counts as 'here':
   * the commit itself succeeded.
   */
  private async whereIsPath(): Promise<'here' | 'gone' | 'covered'> {
    try {
      if (await this.fs.isFileAt(this.path, this.file)) {
        this.directoryDevice ??= await this.fs.directoryDevice(this.path);
        return 'here';
      }
      const device = await this.fs.directoryDevice(this.path);
      return device !== undefined && this.directoryDevice !== undefined && device !== this.directoryDevice ? 'covered' : 'gone';
    } catch (err) {
      this.log.warn(`state file ${this.path}: could not check that it is still in place: ${(err as Error).message}`);
      return 'here';
    }
  }

  /**
   * A snapshot pays when the file has grown past the threshold and most of
   * it is dead: superseded records and held data no longer held. Held data
   * still live would only be copied into the new file — a FLUSH that logs a
   * full cache must not rewrite it at once (measured: a 64 MiB cache made the
   * FLUSH at the end of a copy take ~1.2 s instead of ~0.2 s).
   */
  private worthCompacting(): boolean {
    const logBytes = this.end - this.logStart;
    if (logBytes <= this.compactBytes || logBytes <= this.logStart || this.end < this.compactCheckAt) return false;
    let liveHeld = 0;
    for (const ref of this.state.holds.values()) liveHeld += ref.length;
    const dead = this.end - liveHeld;
    if (dead > this.compactBytes && dead > liveHeld) return true;
    // Summing the holds costs O(cache): look again only once the file has grown by what is still missing.
    this.compactCheckAt = this.end + Math.max(this.compactBytes - dead, liveHeld - dead, 1);
    return false;
  }

  /**
   * Writes a fresh snapshot of the committed state and switches to it. A
   * snapshot that cannot be written (no space for a second copy of the live
   * state, say) changes nothing: the log goes on in the old file, which only
   * stays larger; compaction is tried again once the log has grown by as
   * much again. Failing to put the snapshot in place is final, like a failed commit.
   */
  async compact(): Promise<void> {
    if (this.failed !== undefined) throw this.failed;
    const old = this.file;
    const reader = new WindowedReader(old);
    const tmp = tempPathOf(this.path);
    let written: Awaited<ReturnType<typeof writeTempStateFile>>;
    try {
      written = await writeTempStateFile(this.fs, tmp, this.identity, this.state, this.batchNo, (ref) => reader.read(ref));
    } catch (err) {
      await this.fs.remove(tmp).catch(() => undefined);
      this.compactCheckAt = this.end + this.compactBytes;
      this.log.warn(`state file ${this.path}: no snapshot written, the log goes on (${stateWriteError(this.path, err).message})`);
      return;
    }
    const { file, end, holds } = written;
    try {
      await installStateFile(this.fs, tmp, this.path);
    } catch (err) {
      await file.close().catch(() => undefined);
      this.failed = stateWriteError(this.path, err);
      throw this.failed;
    }
    this.file = file;
    this.end = end;
    this.logStart = end;
    this.state.holds.clear();
    for (const [d, ref] of holds) this.state.holds.set(d, ref);
    this.compactionCount++;
    await old.close();
  }

  info(): JournalInfo {
    return { path: this.path, bytes: this.end, records: this.state.records, lastCommit: this.lastCommitAt, compactions: this.compactionCount, pathProblem: this.pathProblem };
  }

  /** Commits nothing more; closes the file. Appended but uncommitted records are dropped. */
  async close(): Promise<void> {
    this.failed ??= new Error(`state journal ${this.path} is closed`);
    try {
      await this.file.close();
    } finally {
      await this.lock.release();
    }
  }
}

/** Held data of the old file during compaction, read in large windows: holds come in file order, mostly adjacent. */
class WindowedReader {
  private window = Buffer.alloc(0);
  private windowAt = 0;

  constructor(private readonly file: StateFile) {}

  async read(ref: HoldRef): Promise<Buffer> {
    const end = ref.position + ref.length;
    if (ref.position < this.windowAt || end > this.windowAt + this.window.length) {
      // A fresh window each time, never overwritten: the views handed out stay valid until written.
      const window = Buffer.allocUnsafe(Math.max(READ_WINDOW_BYTES, ref.length));
      const n = await this.file.read(window, ref.position);
      this.window = window.subarray(0, n);
      this.windowAt = ref.position;
      if (n < ref.length) throw new Error(`state file: held data at offset ${ref.position} is cut short`);
    }
    return this.window.subarray(ref.position - this.windowAt, end - this.windowAt);
  }
}

/**
 * Writes `header · snapshot(state)` to the temp file `tmp`, synced, and
 * returns it open for appending; installStateFile then puts it in place.
 */
async function writeTempStateFile(
  fs: StateFs,
  tmp: string,
  identity: StateIdentity,
  state: DurableState,
  batchNo: number,
  readHold: (ref: HoldRef) => Promise<Buffer>,
): Promise<{ file: StateFile; end: number; holds: Map<number, HoldRef> }> {
  const file = await fs.create(tmp);
  try {
    const holds = new Map<number, HoldRef>();
    let at = 0;
    let chunks: Buffer[] = [];
    let chunkBytes = 0;
    let chunkAt = 0;
    const flush = async (): Promise<void> => {
      if (chunks.length === 0) return;
      await file.writev(gatherSmallParts(chunks), chunkAt);
      chunks = [];
      chunkBytes = 0;
      chunkAt = at;
    };
    const push = async (parts: readonly Buffer[]): Promise<void> => {
      for (const part of parts) {
        chunks.push(part);
        chunkBytes += part.length;
        at += part.length;
      }
      if (chunkBytes >= WRITE_CHUNK_BYTES) await flush();
    };
    await push(frameParts(FrameKind.Header, 0, [Buffer.from(JSON.stringify(identity), 'utf8')]));
    for await (const f of snapshotFrames(state, readHold)) {
      if (f.hold !== undefined) holds.set(f.hold.dest, { position: at + FRAME_HEADER_BYTES + f.hold.dataAt, length: f.hold.length });
      await push(frameParts(f.kind, batchNo, f.parts, identity.frameSeed));
    }
    await flush();
    await file.datasync();
    return { file, end: at, holds };
  } catch (err) {
    await file.close().catch(() => undefined);
    throw err;
  }
}

/** Renames a synced temp state file over `path` and syncs the directory: a crash leaves the old file or the new one. */
async function installStateFile(fs: StateFs, tmp: string, path: string): Promise<void> {
  await fs.rename(tmp, path);
  await fs.syncDir(path);
}

interface ParsedState {
  identity: StateIdentity;
  map: RemapMap;
  state: DurableState;
  batchNo: number;
  logStart: number;
  /** Length of the valid part: the header, the snapshot and every complete commit group. */
  validEnd: number;
}

const FAULTS: Record<string, string> = {
  'end-of-file': 'the file ends here',
  truncated: 'the file ends inside a frame',
  'bad-magic': 'no frame starts here (bad magic number)',
  'bad-length': 'the frame length field is damaged',
  'bad-checksum': 'the frame checksum does not match its contents',
};

/**
 * Recovery (docs/durability.md §Recovery): the header and the snapshot must be
 * intact (they were synced before the file was renamed into place). The log is
 * replayed group by group; at the first frame that is not valid, or does not
 * belong to the next group, the rest is either the torn last group of a crash
 * — then it is cut — or damage: a valid frame of any other group after the bad
 * spot means later groups were written after it, so it is not a torn tail and
 * the file is refused.
 */
export function parseStateFile(path: string, data: Buffer): ParsedState {
  const corrupt = (offset: number, what: string): StateCorruptError => new StateCorruptError(path, offset, what);
  const header = decodeFrame(data, 0);
  if (!isFrame(header) || header.kind !== FrameKind.Header) {
    throw corrupt(0, `the header is not readable (${isFrame(header) ? `frame kind ${header.kind}` : FAULTS[header]})`);
  }
  const identity = parseIdentity(header.payload.toString('utf8'));
  if (typeof identity === 'string') throw corrupt(0, identity);
  let map: RemapMap;
  try {
    map = RemapMap.fromExtents(identity.extents, identity.diskSize, identity.blockSize);
  } catch (err) {
    if (err instanceof MapError || err instanceof RangeError) throw corrupt(0, `the map in the header is not valid: ${err.message}`);
    throw err;
  }
  // Snapshot.
  let pos = header.end;
  const seed = identity.frameSeed;
  const first = decodeFrame(data, pos, seed);
  if (!isFrame(first)) throw corrupt(pos, `the snapshot's first frame is not readable (${FAULTS[first]})`);
  const snapshotBatch = first.batch;
  let reader: SnapshotReader;
  try {
    reader = new SnapshotReader(map, first);
  } catch (err) {
    throw corrupt(pos, `the snapshot does not parse: ${(err as Error).message}`);
  }
  pos = first.end;
  while (!reader.done) {
    const f = decodeFrame(data, pos, seed);
    if (!isFrame(f)) throw corrupt(pos, `the snapshot is incomplete or damaged (${FAULTS[f]})`);
    if (f.batch !== snapshotBatch) throw corrupt(pos, `a snapshot frame of batch ${f.batch} inside the snapshot of batch ${snapshotBatch}`);
    try {
      reader.add(f);
    } catch (err) {
      throw corrupt(pos, `the snapshot does not parse: ${(err as Error).message}`);
    }
    pos = f.end;
  }
  const state = reader.state;
  const logStart = pos;
  // Log.
  let batchNo = snapshotBatch;
  let validEnd = pos;
  let group: Array<{ record: StateRecord; ref?: HoldRef }> = [];
  let stop: { offset: number; why: string } | undefined;
  for (;;) {
    const f = decodeFrame(data, pos, seed);
    if (!isFrame(f)) {
      if (f !== 'end-of-file' || group.length > 0) stop = { offset: pos, why: FAULTS[f] };
      break;
    }
    if (f.batch !== batchNo + 1) {
      stop = { offset: pos, why: `a frame of commit group ${f.batch} where group ${batchNo + 1} was expected` };
      break;
    }
    if (f.kind === FrameKind.Commit) {
      const count = decodeCount(f);
      if (count !== group.length) throw corrupt(f.offset, `commit group ${f.batch} says it has ${String(count)} records, ${group.length} precede it`);
      for (const { record, ref } of group) state.apply(record, ref);
      group = [];
      batchNo = f.batch;
      validEnd = f.end;
    } else {
      group.push(decodeLogRecord(f, map, corrupt));
    }
    pos = f.end;
  }
  if (stop !== undefined || validEnd < data.length) {
    // Only a frame of a later group proves damage: groups are written one after another, each after the one
    // before is synced, so none can follow a torn one. Frames of earlier groups past the end are no proof: a
    // `hold` record's data may be any bytes (a copied state file's frames, say), and a commit retried after
    // ENOSPC by an older version could leave a longer first try's frames behind its own.
    for (const f of validFramesAfter(data, validEnd, seed)) {
      if (f.batch > batchNo + 1) {
        const at = stop?.offset ?? validEnd;
        throw corrupt(
          at,
          `${stop?.why ?? 'the commit group starting here is incomplete'}, yet a valid frame of commit group ${f.batch} follows at offset ${f.offset}: ` +
            `this is damage in the middle of the log, not the torn end of a crash`,
        );
      }
    }
  }
  return { identity, map, state, batchNo, logStart, validEnd };
}

function decodeCount(f: Frame): number | undefined {
  try {
    const r = new ByteReader(f.payload);
    const n = r.uint();
    r.end();
    return n;
  } catch {
    return undefined;
  }
}

function decodeLogRecord(f: Frame, map: RemapMap, corrupt: (offset: number, what: string) => StateCorruptError): { record: StateRecord; ref?: HoldRef } {
  let decoded: ReturnType<typeof decodeRecord>;
  try {
    decoded = decodeRecord(f.kind, f.payload);
  } catch (err) {
    if (err instanceof DecodeError) throw corrupt(f.offset, `a record does not parse: ${err.message}`);
    throw err;
  }
  if (decoded === undefined) throw corrupt(f.offset, `frame kind ${f.kind} does not belong in the log`);
  const bad = recordOutOfRange(decoded.record, map.diskBlocks, map.destinationBlocks, (d) => map.destBlockLength(d));
  if (bad !== undefined) throw corrupt(f.offset, bad);
  const record = decoded.record;
  if (record.type === 'hold') return { record, ref: { position: f.offset + FRAME_HEADER_BYTES + (decoded.dataAt ?? 0), length: record.data.length } };
  return { record };
}
