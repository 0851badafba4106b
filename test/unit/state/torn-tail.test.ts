import { describe, expect, it } from 'vitest';
import { RemapMap } from '../../../src/remap/map.js';
import type { StateRecord } from '../../../src/remap/state-journal.js';
import { FileStateJournal } from '../../../src/state/file-state-journal.js';
import { FrameKind, frameParts } from '../../../src/state/frame-codec.js';
import { identityOf } from '../../../src/state/state-identity.js';
import { StateCorruptError } from '../../../src/state/state-errors.js';
import { CrashFs } from '../remap/durability/helpers/crash-world.js';
import { describeState } from './state-helpers.js';

/**
 * A torn last commit group is cut; damage in the middle is refused. What
 * tells them apart is a valid frame of a later group past the tear — and only
 * that: frames of earlier groups may lie there for harmless reasons.
 */

const B = 4096;
const PATH = '/state/disk.remap-state';
const map = RemapMap.identity(64 * B, B);
const identity = identityOf(map, '/dev/test');

/** The bytes of a state file after committing `groups`, one commit each. */
async function fileOf(groups: StateRecord[][]): Promise<Buffer> {
  const fs = new CrashFs();
  const journal = await FileStateJournal.create(PATH, identity, map, { fs, pathCheckMs: 1e9 });
  for (const group of groups) {
    for (const record of group) journal.append(record);
    await journal.commit();
  }
  await journal.close();
  return Buffer.from(fs.contents(PATH) as Buffer);
}

async function open(bytes: Buffer): Promise<{ described: string; cut: number }> {
  const fs = new CrashFs();
  fs.setContents(PATH, bytes);
  const opened = await FileStateJournal.open(PATH, { fs, pathCheckMs: 1e9 });
  if (opened === undefined) throw new Error('state file vanished');
  await opened.journal.close();
  return { described: describeState(opened.state, opened.holds), cut: opened.cutBytes };
}

const sealed: StateRecord[] = [{ type: 'seal', samples: [] }, { type: 'release', start: 0, count: 8 }];
const hold = (dest: number, data: Buffer): StateRecord => ({ type: 'hold', dest, data });

/**
 * A group holding `block` (and a release) was being written when the power went: its commit frame never
 * reached the file. Recovery cuts the group and gives the state before it.
 */
async function expectTornHoldCut(block: Buffer): Promise<void> {
  const committed = await fileOf([sealed]);
  const whole = await fileOf([sealed, [hold(3, block), { type: 'release', start: 8, count: 1 }]]);
  const got = await open(whole.subarray(0, whole.length - 8));
  expect(got.described).toBe((await open(committed)).described);
  expect(got.cut).toBe(whole.length - 8 - committed.length);
}

describe('the end of the log after a crash', () => {
  it('a torn group whose held data contains a valid frame (a copied state file) is cut, not taken for damage in the middle', async () => {
    // A destination block that begins with a state file's header frame: group 0 of another file.
    const block = Buffer.alloc(B);
    Buffer.concat(frameParts(FrameKind.Header, 0, [Buffer.from(JSON.stringify(identityOf(RemapMap.identity(16 * B, B), '/img')))])).copy(block);
    await expectTornHoldCut(block);
  });

  it("a torn group whose held data contains another state file's log frames, of groups later than this file's, is cut", async () => {
    // Another migration, further along: its frames carry group numbers this file has not reached.
    const other = identityOf(RemapMap.identity(16 * B, B), '/img');
    expect(other.frameSeed).not.toBe(identity.frameSeed);
    const block = Buffer.alloc(B);
    Buffer.concat([
      ...frameParts(FrameKind.Release, 5000, [Buffer.from([0, 1])], other.frameSeed),
      ...frameParts(FrameKind.Commit, 5000, [Buffer.from([1])], other.frameSeed),
    ]).copy(block);
    await expectTornHoldCut(block);
  });

  it("a shorter group written over a longer try's frames (a commit retried after ENOSPC) keeps the shorter one and cuts the rest", async () => {
    const first = [hold(1, Buffer.alloc(B, 1)), hold(2, Buffer.alloc(B, 2)), hold(3, Buffer.alloc(B, 3))];
    const retried: StateRecord[] = [{ type: 'release', start: 8, count: 1 }];
    const longTry = await fileOf([sealed, first]);
    const shortTry = await fileOf([sealed, retried]);
    // The first try stopped short of its commit frame; the retry's group went over its beginning.
    const bytes = Buffer.concat([shortTry, longTry.subarray(shortTry.length, longTry.length - 40)]);
    const got = await open(bytes);
    expect(got.described).toBe((await open(shortTry)).described);
    expect(got.cut).toBe(bytes.length - shortTry.length);
  });

  it('a damaged group followed by a later complete group is refused', async () => {
    const whole = await fileOf([sealed, [{ type: 'release', start: 8, count: 1 }], [{ type: 'release', start: 9, count: 1 }]]);
    const twoGroups = await fileOf([sealed, [{ type: 'release', start: 8, count: 1 }]]);
    const bytes = Buffer.from(whole);
    bytes[twoGroups.length - 6] ^= 0x10; // inside the second group's commit frame
    await expect(open(bytes)).rejects.toBeInstanceOf(StateCorruptError);
  });
});
