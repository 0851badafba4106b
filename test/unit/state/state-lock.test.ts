import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RemapMap } from '../../../src/remap/map.js';
import { FileStateJournal } from '../../../src/state/file-state-journal.js';
import { NotAStateFileError, StateCorruptError, StateError, StateInUseError } from '../../../src/state/state-errors.js';
import { lockPathOf } from '../../../src/state/state-fs.js';
import { identityOf } from '../../../src/state/state-identity.js';
import { rejection } from '../../helpers/rejection.js';
import { scratchDir } from '../../helpers/scratch.js';

/**
 * One process at a time per state file, with the real flock: two servers
 * appending to one state would interleave their records (the disk's own lock
 * does not help when the two run on different disks — a clone, say — with
 * the same --state). flock locks belong to an open file description, so two
 * opens inside this one process contend exactly as two processes would.
 */
const B = 4096;
const map = RemapMap.identity(64 * B, B);

let dir: ReturnType<typeof scratchDir>;
const open: FileStateJournal[] = [];
beforeEach(() => {
  dir = scratchDir('nbd-remapper-state-lock-');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((j) => j.close().catch(() => undefined)));
  dir.cleanup();
});

async function create(path: string): Promise<FileStateJournal> {
  const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { compactBytes: 4096 });
  open.push(journal);
  return journal;
}

describe('state file lock', () => {
  it('refuses a second opener while the first holds the state, naming the file and the fix', async () => {
    const path = dir.file('disk.remap-state');
    await create(path);
    const reopened = await rejection(FileStateJournal.open(path));
    expect(reopened).toBeInstanceOf(StateInUseError);
    expect((reopened as StateInUseError).message).toContain(path);
    expect((reopened as StateInUseError).fix).toMatch(/stop that process|its own --state/);
    // Creating over it is refused too, before the file is touched.
    expect(await rejection(FileStateJournal.create(path, identityOf(map, 'other.img'), map))).toBeInstanceOf(StateInUseError);
    expect(existsSync(lockPathOf(path))).toBe(true);
  });

  it('holds across compaction, which replaces the state file by rename', async () => {
    const path = dir.file('disk.remap-state');
    const journal = await create(path);
    for (let d = 0; d < 8; d++) journal.append({ type: 'hold', dest: d, data: Buffer.alloc(B, d) });
    await journal.commit();
    await journal.compact();
    expect(journal.info().compactions).toBe(1);
    expect(await rejection(FileStateJournal.open(path))).toBeInstanceOf(StateInUseError);
  });

  it('is free again once the holder closes, and the next opener sees its records', async () => {
    const path = dir.file('disk.remap-state');
    const first = await create(path);
    first.append({ type: 'hold', dest: 3, data: Buffer.alloc(B, 0xab) });
    await first.commit();
    await first.close();
    const second = await FileStateJournal.open(path);
    expect(second).toBeDefined();
    open.push(second!.journal);
    expect(second!.holds.get(3)?.equals(Buffer.alloc(B, 0xab))).toBe(true);
  });

  it('is not taken when there is no state to open (no lock file left behind), and a new state takes it', async () => {
    const path = dir.file('disk.remap-state');
    expect(await FileStateJournal.open(path)).toBeUndefined();
    expect(existsSync(lockPathOf(path))).toBe(false);
    await create(path);
    expect(existsSync(lockPathOf(path))).toBe(true);
  });

  it('is not taken for a file that is not a state file (a mistyped --state): refused, and nothing is left beside it', async () => {
    const path = dir.file('notes.txt');
    writeFileSync(path, 'some other file\n');
    const err = await rejection(FileStateJournal.open(path));
    expect(err).toBeInstanceOf(NotAStateFileError);
    expect(err).toBeInstanceOf(StateCorruptError);
    expect((err as NotAStateFileError).message).toBe(`${path} does not begin with a state header: it is not an nbd-remapper state file, or one damaged in its first bytes`);
    expect(existsSync(lockPathOf(path))).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('some other file\n');
    // An empty file too: a state file is never empty (it is created whole, by rename).
    writeFileSync(path, '');
    expect(await rejection(FileStateJournal.open(path))).toBeInstanceOf(NotAStateFileError);
    expect(existsSync(lockPathOf(path))).toBe(false);
  });

  it('never creates over a state that appeared since none was found (two servers starting at once)', async () => {
    const path = dir.file('disk.remap-state');
    expect(await FileStateJournal.open(path)).toBeUndefined();
    const first = await create(path);
    first.append({ type: 'hold', dest: 1, data: Buffer.alloc(B, 7) });
    await first.commit();
    await first.close();
    const late = await rejection(FileStateJournal.create(path, identityOf(map, 'other.img'), map));
    expect(late).toBeInstanceOf(StateError);
    expect(late.message).toMatch(/already exists/);
    // The first one's migration is intact.
    const reopened = await FileStateJournal.open(path);
    open.push(reopened!.journal);
    expect(reopened!.holds.get(1)?.equals(Buffer.alloc(B, 7))).toBe(true);
  });
});
