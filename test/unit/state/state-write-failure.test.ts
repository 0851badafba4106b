import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/log/logger.js';
import { RemapMap } from '../../../src/remap/map.js';
import { FileStateJournal, tempPathOf } from '../../../src/state/file-state-journal.js';
import { StateWriteError } from '../../../src/state/state-errors.js';
import { nodeStateFs, type StateFile, type StateFs } from '../../../src/state/state-fs.js';
import { identityOf } from '../../../src/state/state-identity.js';
import { scratchDir } from '../../helpers/scratch.js';

/**
 * What the journal does when the file system under the state is full. The
 * files are real; a wrapper makes writes fail with ENOSPC, as a full file
 * system does, after writing the part that still fitted.
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

  private wrap(file: StateFile): StateFile {
    const serial = this.opened++;
    const fillsUp = async (data: Buffer, position: number): Promise<never> => {
      await file.write(data.subarray(0, data.length >> 1), position);
      throw enospc();
    };
    return {
      read: (buffer, position) => file.read(buffer, position),
      write: (data, position) => (this.full(serial) ? fillsUp(data, position) : file.write(data, position)),
      writev: (parts, position) => (this.full(serial) ? fillsUp(Buffer.concat(parts), position) : file.writev(parts, position)),
      datasync: () => file.datasync(),
      truncate: (length) => file.truncate(length),
      size: () => file.size(),
      close: () => file.close(),
    };
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
  it('fails the commit with an error that names the file, the cause and the fix; commits stop there, and a restart finds the last good one', async () => {
    const fs = new FillingFs();
    const path = dir.file('disk.remap-state');
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { fs });
    journal.append({ type: 'release', start: 0, count: 8 });
    journal.append({ type: 'hold', dest: 1, data: held(1, 1) });
    await journal.commit();

    fs.full = () => true;
    journal.append({ type: 'hold', dest: 2, data: held(2, 1) });
    const failure = await journal.commit().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(StateWriteError);
    const error = failure as StateWriteError;
    expect(error.code).toBe('ENOSPC');
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/no space left on the file system that holds it/);
    expect(error.fix).toContain(`df -h ${dir.path}`);
    expect(error.fix).toMatch(/resumes from the last commit/);

    // Space is back, but the file ends inside the failed group: nothing more may be committed after it.
    fs.full = () => false;
    journal.append({ type: 'hold', dest: 3, data: held(3, 1) });
    await expect(journal.commit()).rejects.toBe(error);
    await journal.close();

    const reopened = await FileStateJournal.open(path, { fs });
    if (reopened === undefined) throw new Error('the state file is gone');
    expect(reopened.cutBytes).toBeGreaterThan(0);
    expect([...reopened.holds.keys()]).toEqual([1]);
    expect(reopened.holds.get(1)?.equals(held(1, 1))).toBe(true);
    expect(reopened.state.released.countRange(0, BLOCKS)).toBe(8);
    // And the resumed journal commits again.
    reopened.journal.append({ type: 'hold', dest: 2, data: held(2, 2) });
    await reopened.journal.commit();
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
});
