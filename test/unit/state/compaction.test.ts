import { statSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RemapMap } from '../../../src/remap/map.js';
import { FileStateJournal } from '../../../src/state/file-state-journal.js';
import { identityOf } from '../../../src/state/state-identity.js';
import { scratchDir } from '../../helpers/scratch.js';

/**
 * When the journal writes a fresh snapshot. Held data still held is live: a
 * snapshot would only copy it, so a FLUSH that logs a full cache must not
 * trigger one. Held data that was held again (or landed) is dead: once it
 * dominates the file, a snapshot reclaims it.
 */
const B = 4096;
const BLOCKS = 256;
const COMPACT_BYTES = 64 * 1024;

let dir: ReturnType<typeof scratchDir>;
beforeEach(() => {
  dir = scratchDir('nbd-remapper-compaction-');
});
afterEach(() => dir.cleanup());

const map = RemapMap.identity(BLOCKS * B, B);
const data = (d: number, round: number): Buffer => Buffer.alloc(B, (d * 31 + round) & 0xff);

async function holdAll(journal: FileStateJournal, round: number, count: number): Promise<void> {
  for (let d = 0; d < count; d++) journal.append({ type: 'hold', dest: d, data: data(d, round) });
  await journal.commit();
}

describe('state file compaction', () => {
  it('does not rewrite live held data: logging a cache 4× the threshold compacts nothing', async () => {
    const path = dir.file('disk.remap-state');
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { compactBytes: COMPACT_BYTES });
    await holdAll(journal, 1, 64); // 256 KiB live
    expect(journal.info().compactions).toBe(0);
    expect(statSync(path).size).toBeGreaterThan(64 * B);
    await journal.close();
  });

  it('reclaims dead held data once it dominates, and the file stays bounded', async () => {
    const path = dir.file('disk.remap-state');
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { compactBytes: COMPACT_BYTES });
    const live = 32 * B;
    let largest = 0;
    for (let round = 1; round <= 20; round++) {
      await holdAll(journal, round, 32);
      largest = Math.max(largest, statSync(path).size);
    }
    expect(journal.info().compactions).toBeGreaterThan(0);
    // Dead bytes are reclaimed before they exceed both the threshold and the live data (plus one commit's worth).
    expect(largest).toBeLessThan(2 * (live + COMPACT_BYTES) + live + 16 * 1024);
    await journal.close();

    const reopened = await FileStateJournal.open(path);
    if (reopened === undefined) throw new Error('the state file is gone after close');
    expect(reopened.holds.size).toBe(32);
    for (const [d, held] of reopened.holds) expect(held.equals(data(d, 20))).toBe(true);
    await reopened.journal.close();
  });
});

describe("a checkpoint's note", () => {
  it('survives a reopen, and a compaction; a checkpoint without one keeps the last', async () => {
    const path = dir.file('disk.remap-state');
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { compactBytes: COMPACT_BYTES });
    journal.append({ type: 'seal', samples: [] });
    journal.append({ type: 'release', start: 0, count: 8 });
    journal.append({ type: 'checkpoint', note: 'copy: 8 blocks' });
    journal.append({ type: 'release', start: 8, count: 8 });
    journal.append({ type: 'checkpoint' });
    journal.append({ type: 'release', start: 16, count: 4 });
    await journal.commit();
    await journal.close();

    const reopened = await FileStateJournal.open(path, { compactBytes: COMPACT_BYTES });
    if (reopened === undefined) throw new Error('the state file is gone after close');
    expect(reopened.state.checkpointNote).toBe('copy: 8 blocks');
    expect(reopened.state.unconfirmed.count).toBe(4);
    // Dead held data past the threshold: the next commit compacts, and the note goes into the snapshot.
    for (let round = 1; round <= 20; round++) await holdAll(reopened.journal, round, 32);
    reopened.journal.append({ type: 'checkpoint', note: 'copy: all' });
    for (let round = 21; round <= 40; round++) await holdAll(reopened.journal, round, 32);
    expect(reopened.journal.info().compactions).toBeGreaterThan(0);
    await reopened.journal.close();

    const compacted = await FileStateJournal.open(path);
    if (compacted === undefined) throw new Error('the state file is gone after close');
    expect(compacted.state.checkpointNote).toBe('copy: all');
    expect(compacted.state.unconfirmed.count).toBe(0);
    expect(compacted.state.released.count).toBe(20);
    await compacted.journal.close();
  });
});

describe('blocks released as holes', () => {
  it('stay holes (originals of zeroes) across a reopen and a compaction', async () => {
    const path = dir.file('disk.remap-state');
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { compactBytes: COMPACT_BYTES });
    journal.append({ type: 'seal', samples: [] });
    journal.append({ type: 'release-hole', start: 4, count: 8 });
    journal.append({ type: 'release', start: 20, count: 4 });
    await journal.commit();
    await journal.close();

    const reopened = await FileStateJournal.open(path, { compactBytes: COMPACT_BYTES });
    if (reopened === undefined) throw new Error('the state file is gone after close');
    const holesOf = (s: typeof reopened.state): number[] => {
      const runs: number[] = [];
      s.holes.forEachRun(true, 0, BLOCKS, (a, b) => runs.push(a, b));
      return runs;
    };
    expect(holesOf(reopened.state)).toEqual([4, 12]);
    expect(reopened.state.released.count).toBe(12);
    // Holes are confirmed at once: redoing the copy never needs them.
    expect(reopened.state.unconfirmed.count).toBe(4);
    for (let round = 1; round <= 20; round++) await holdAll(reopened.journal, round, 32);
    expect(reopened.journal.info().compactions).toBeGreaterThan(0);
    await reopened.journal.close();

    const compacted = await FileStateJournal.open(path);
    if (compacted === undefined) throw new Error('the state file is gone after close');
    expect(holesOf(compacted.state)).toEqual([4, 12]);
    expect(compacted.state.released.count).toBe(12);
    await compacted.journal.close();
  });
});
