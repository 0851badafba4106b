import { existsSync, statSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/log/logger.js';
import { RemapMap } from '../../../src/remap/map.js';
import { isRetryableCommitFailure } from '../../../src/remap/state-journal.js';
import { FileStateJournal, tempPathOf } from '../../../src/state/file-state-journal.js';
import { StateWriteError, stateWriteError } from '../../../src/state/state-errors.js';
import { nodeStateFs, type StateFile, type StateFs } from '../../../src/state/state-fs.js';
import { identityOf } from '../../../src/state/state-identity.js';
import { openMigration } from '../../../src/state/open-migration.js';
import { Disk } from '../../../src/store/disk.js';
import { randomImage, scratchDir } from '../../helpers/scratch.js';

/**
 * What the journal does when the file system under the state is full, or its
 * storage fails a sync. The files are real; a wrapper makes writes fail with
 * ENOSPC, as a full file system does, after writing the part that still
 * fitted, or fdatasync fail with EIO.
 */
const B = 4096;
const BLOCKS = 64;
const map = RemapMap.identity(BLOCKS * B, B);

function enospc(): NodeJS.ErrnoException {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
}

/**
 * The real file system, except that while `full` says so for a file, writes
 * to it store half of what they were given and fail. Files are told apart by
 * the order they were opened in (`serial`): renames keep the handle.
 */
class FillingFs implements StateFs {
  full: (serial: number) => boolean = () => false;
  /** fdatasync fails with EIO, as on a storage error. */
  syncFails = false;
  opened = 0;

  openExisting = async (path: string, writable: boolean): Promise<StateFile | undefined> => {
    const file = await nodeStateFs.openExisting(path, writable);
    return file === undefined ? undefined : this.wrap(file);
  };
  create = async (path: string): Promise<StateFile> => this.wrap(await nodeStateFs.create(path));
  rename = (from: string, to: string): Promise<void> => nodeStateFs.rename(from, to);
  remove = (path: string): Promise<void> => nodeStateFs.remove(path);
  syncDir = (path: string): Promise<void> => nodeStateFs.syncDir(path);
  lock = (path: string): ReturnType<StateFs['lock']> => nodeStateFs.lock(path);
  isFileAt = (path: string, file: StateFile): Promise<boolean> => nodeStateFs.isFileAt(path, this.unwrapped.get(file) ?? file);
  directoryDevice = (path: string): Promise<number | undefined> => nodeStateFs.directoryDevice(path);
  private readonly unwrapped = new WeakMap<StateFile, StateFile>();

  private wrap(file: StateFile): StateFile {
    const serial = this.opened++;
    const fillsUp = async (data: Buffer, position: number): Promise<never> => {
      await file.write(data.subarray(0, data.length >> 1), position);
      throw enospc();
    };
    const wrapped: StateFile = {
      read: (buffer, position) => file.read(buffer, position),
      write: (data, position) => (this.full(serial) ? fillsUp(data, position) : file.write(data, position)),
      writev: (parts, position) => (this.full(serial) ? fillsUp(Buffer.concat(parts), position) : file.writev(parts, position)),
      datasync: () => (this.syncFails ? Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', syscall: 'fdatasync' })) : file.datasync()),
      truncate: (length) => file.truncate(length),
      size: () => file.size(),
      close: () => file.close(),
    };
    this.unwrapped.set(wrapped, file);
    return wrapped;
  }
}

function recordingLog(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const ignore = (): void => undefined;
  const log: Logger & { warnings: string[] } = { warnings, debug: ignore, info: ignore, warn: (m) => void warnings.push(m), error: ignore, child: () => log };
  return log;
}

const held = (d: number, round: number): Buffer => Buffer.alloc(B, (d * 7 + round) & 0xff);

let dir: ReturnType<typeof scratchDir>;
beforeEach(() => {
  dir = scratchDir('nbd-remapper-state-full-');
});
afterEach(() => dir.cleanup());

describe('a state file on a full file system', () => {
  it('fails a commit that finds no room with an error naming the file, the cause and the fix; the batch can be committed once there is room', async () => {
    const fs = new FillingFs();
    const path = dir.file('disk.remap-state');
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { fs });
    journal.append({ type: 'release', start: 0, count: 8 });
    journal.append({ type: 'hold', dest: 1, data: held(1, 1) });
    await journal.commit();
    const goodEnd = journal.info().bytes;

    fs.full = () => true;
    journal.append({ type: 'hold', dest: 2, data: held(2, 1) });
    const failure = await journal.commit().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(StateWriteError);
    const error = failure as StateWriteError;
    expect(error.retryable).toBe(true);
    expect(isRetryableCommitFailure(error)).toBe(true);
    expect(error.code).toBe('ENOSPC');
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/no space left on the file system that holds it/);
    expect(error.fix).toContain(`df -h ${dir.path}`);
    expect(error.fix).toMatch(/the next FLUSH \(or finish, or a stop\) commits what waits/);
    // What fitted of the group was cut off again: the file is as it was.
    expect(statSync(path).size).toBe(goodEnd);
    expect(journal.info().bytes).toBe(goodEnd);

    // The journal took none of the batch: appended again, it commits once there is room.
    fs.full = () => false;
    journal.append({ type: 'hold', dest: 2, data: held(2, 1) });
    journal.append({ type: 'hold', dest: 3, data: held(3, 1) });
    await journal.commit();
    await journal.close();

    const reopened = await FileStateJournal.open(path, { fs });
    if (reopened === undefined) throw new Error('the state file is gone');
    expect(reopened.cutBytes).toBe(0);
    expect([...reopened.holds.keys()].sort()).toEqual([1, 2, 3]);
    for (const [d, data] of reopened.holds) expect(data.equals(held(d, 1))).toBe(true);
    expect(reopened.state.released.countRange(0, BLOCKS)).toBe(8);
    await reopened.journal.close();
  });

  it('stops for good when a sync fails, and a restart resumes from the last commit', async () => {
    const fs = new FillingFs();
    const path = dir.file('disk.remap-state');
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { fs });
    journal.append({ type: 'hold', dest: 1, data: held(1, 1) });
    await journal.commit();

    // After a failed fdatasync the kernel may call the next one clean without having written the data.
    fs.syncFails = true;
    journal.append({ type: 'hold', dest: 2, data: held(2, 1) });
    const failure = (await journal.commit().then(
      () => undefined,
      (err: unknown) => err,
    )) as StateWriteError;
    expect(failure).toBeInstanceOf(StateWriteError);
    expect(failure.retryable).toBe(false);
    expect(failure.message).toMatch(/the storage under it reported an I\/O error \(EIO\)/);
    expect(failure.fix).toMatch(/restart `nbd-remapper serve`/);
    expect(failure.fix).toMatch(/copy the state file to healthy storage/);
    const readOnly = stateWriteError(path, Object.assign(new Error('EROFS: read-only file system, write'), { code: 'EROFS' }));
    expect(readOnly.message).toMatch(/its file system became read-only .*\(EROFS\)/);
    expect(readOnly.fix).toMatch(/check that storage \(dmesg\)/);

    fs.syncFails = false;
    journal.append({ type: 'hold', dest: 3, data: held(3, 1) });
    await expect(journal.commit()).rejects.toBe(failure);
    await journal.close();

    // The failed group was written whole (only its sync failed): recovery may keep it, as after a crash
    // right after a commit; what it may not keep is anything appended after the failure.
    const reopened = await FileStateJournal.open(path, { fs });
    if (reopened === undefined) throw new Error('the state file is gone');
    expect(reopened.holds.has(1)).toBe(true);
    expect(reopened.holds.has(3)).toBe(false);
    await reopened.journal.close();
  });

  it('goes on in the old file when a snapshot cannot be written, and compacts once there is room again', async () => {
    const fs = new FillingFs();
    const log = recordingLog();
    const path = dir.file('disk.remap-state');
    const compactBytes = 16 * B;
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { fs, log, compactBytes });
    // Only a new file (the snapshot's) finds the file system full: the log still has room.
    const before = fs.opened;
    fs.full = (serial) => serial >= before;
    let round = 0;
    // Holding the same 8 blocks again and again leaves dead data that a snapshot would reclaim.
    while (log.warnings.length === 0 && round < 40) {
      round++;
      for (let d = 0; d < 8; d++) journal.append({ type: 'hold', dest: d, data: held(d, round) });
      await journal.commit();
    }
    expect(log.warnings.length).toBe(1);
    expect(log.warnings[0]).toMatch(/no snapshot written, the log goes on/);
    expect(log.warnings[0]).toMatch(/ENOSPC/);
    expect(journal.info().compactions).toBe(0);
    expect(existsSync(tempPathOf(path))).toBe(false);

    fs.full = () => false;
    for (let more = 0; more < 40 && journal.info().compactions === 0; more++) {
      round++;
      for (let d = 0; d < 8; d++) journal.append({ type: 'hold', dest: d, data: held(d, round) });
      await journal.commit();
    }
    expect(journal.info().compactions).toBe(1);
    await journal.close();

    const reopened = await FileStateJournal.open(path, { fs });
    if (reopened === undefined) throw new Error('the state file is gone');
    expect(reopened.holds.size).toBe(8);
    for (const [d, data] of reopened.holds) expect(data.equals(held(d, round))).toBe(true);
    await reopened.journal.close();
  });

  it('refuses to start a migration whose state cannot be created, leaving no state behind', async () => {
    const fs = new FillingFs();
    fs.full = () => true;
    const path = dir.file('disk.remap-state');
    const failure = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { fs }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(StateWriteError);
    expect((failure as StateWriteError).message).toMatch(/cannot create the state file .*no space left/);
    expect((failure as StateWriteError).fix).toMatch(/or pass --state with a path on another file system/);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(tempPathOf(path))).toBe(false);
    // The lock is given back: once there is room, the migration starts.
    fs.full = () => false;
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { fs });
    await journal.close();
  });

  it('a stop keeps trying while the held data does not fit, and saves it once there is room; given up, it fails', async () => {
    const fs = new FillingFs();
    const warnings: string[] = [];
    const ignore = (): void => undefined;
    const log: Logger = { debug: ignore, info: ignore, warn: (m) => void warnings.push(m), error: ignore, child: () => log };
    const imagePath = dir.file('disk.img');
    randomImage(imagePath, BLOCKS * B);
    const statePath = dir.file('disk.remap-state');
    const start = async (): Promise<{ disk: Disk; m: Awaited<ReturnType<typeof openMigration>> }> => {
      const disk = await Disk.open(imagePath, { readOnly: false });
      const m = await openMigration({ disk, diskPath: imagePath, statePath, fs, cacheBytes: 8 * B, revisitCacheBytes: 0, log, closeRetryMs: 20 });
      return { disk, m };
    };

    const first = await start();
    await first.m.engine.seal();
    // Homes unread: held in RAM until the stop carries them into the state.
    await first.m.engine.destination.write(0, Buffer.concat([held(0, 5), held(1, 5)]), { fua: false });
    fs.full = () => true;
    let stopped = false;
    const stopping = first.m.close(new Promise(() => undefined)).then(() => (stopped = true));
    const waiting = (): string[] => warnings.filter((w) => /cannot stop yet/.test(w));
    for (let i = 0; i < 200 && waiting().length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    // Tried more than once, and said so with the way out.
    expect(waiting().length).toBeGreaterThanOrEqual(2);
    expect(waiting()[0]).toMatch(/cannot stop yet: what is held in RAM does not fit in the state file/);
    expect(waiting()[0]).toMatch(/no space left .*; fix: free space/);
    expect(waiting()[0]).toMatch(/another SIGINT, SIGTERM or SIGHUP stops without it/);
    expect(stopped).toBe(false);
    fs.full = () => false;
    await stopping;
    await first.disk.close();

    const second = await start();
    expect(second.m.resumed).toBe(true);
    const read = Buffer.alloc(2 * B);
    await second.m.engine.destination.readInto(read, 0);
    expect(read.equals(Buffer.concat([held(0, 5), held(1, 5)]))).toBe(true);
    await second.m.engine.destination.write(2 * B, held(2, 6), { fua: false });
    fs.full = () => true;
    let giveUp: () => void = () => undefined;
    const stop = second.m.close(new Promise<void>((resolve) => (giveUp = resolve)));
    const before = waiting().length;
    for (let i = 0; i < 200 && waiting().length === before; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    giveUp();
    await expect(stop).rejects.toBeInstanceOf(StateWriteError);
    await second.disk.close();
  });
});
