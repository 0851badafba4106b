import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/log/logger.js';
import { RemapMap } from '../../../src/remap/map.js';
import { FileStateJournal } from '../../../src/state/file-state-journal.js';
import { identityOf } from '../../../src/state/state-identity.js';
import { scratchDir } from '../../helpers/scratch.js';

/**
 * A state file removed or replaced under a running server (by hand, or by a
 * cleaner of /tmp) must not be gone at the next start: a commit notices and
 * writes the committed state at its path again. Real files.
 */
const B = 4096;
const map = RemapMap.identity(64 * B, B);
const held = (d: number, round: number): Buffer => Buffer.alloc(B, (d * 13 + round) & 0xff);

let dir: ReturnType<typeof scratchDir>;
beforeEach(() => {
  dir = scratchDir('nbd-remapper-state-gone-');
});
afterEach(() => dir.cleanup());

function recordingLog(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const ignore = (): void => undefined;
  const log: Logger & { errors: string[] } = { errors, debug: ignore, info: ignore, warn: ignore, error: (m) => void errors.push(m), child: () => log };
  return log;
}

async function reopenHolds(path: string): Promise<Map<number, Buffer>> {
  const reopened = await FileStateJournal.open(path);
  if (reopened === undefined) throw new Error(`no state at ${path}`);
  await reopened.journal.close();
  return reopened.holds;
}

describe('a state file removed or replaced while the server runs', () => {
  for (const how of ['removed', 'replaced'] as const) {
    it(`is written again at the next commit when it was ${how}, with everything committed before and after`, async () => {
      const path = dir.file('disk.remap-state');
      const log = recordingLog();
      const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { log, pathCheckMs: 0 });
      journal.append({ type: 'release', start: 0, count: 4 });
      journal.append({ type: 'hold', dest: 1, data: held(1, 1) });
      await journal.commit();

      if (how === 'removed') unlinkSync(path);
      else {
        writeFileSync(dir.file('other'), 'not a state file');
        renameSync(dir.file('other'), path);
      }
      journal.append({ type: 'hold', dest: 2, data: held(2, 1) });
      await journal.commit();
      expect(log.errors).toHaveLength(1);
      expect(log.errors[0]).toMatch(/was removed or replaced while the server runs: writing the committed state there again/);
      expect(existsSync(path)).toBe(true);

      // And later commits go to the file at the path.
      journal.append({ type: 'hold', dest: 3, data: held(3, 1) });
      await journal.commit();
      await journal.close();
      const holds = await reopenHolds(path);
      expect([...holds.keys()].sort()).toEqual([1, 2, 3]);
      for (const [d, data] of holds) expect(data.equals(held(d, 1))).toBe(true);
      expect(log.errors).toHaveLength(1);
    });
  }

  it('says so when it cannot be written again (its directory is gone too), and writes it once the directory is back', async () => {
    const sub = dir.file('states');
    mkdirSync(sub);
    const path = `${sub}/disk.remap-state`;
    const log = recordingLog();
    const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { log, pathCheckMs: 0 });
    journal.append({ type: 'hold', dest: 1, data: held(1, 2) });
    await journal.commit();

    rmSync(sub, { recursive: true });
    journal.append({ type: 'hold', dest: 2, data: held(2, 2) });
    // The commit itself succeeds (the open file takes it); the state is no longer anywhere a restart would find it.
    await journal.commit();
    expect(log.errors.join('\n')).toMatch(
      new RegExp(`state file ${path} could not be written again: the migration's state now exists only in this process\\. Do not stop the server; make ${sub} writable again \\(the next commit tries again\\)`),
    );
    expect(existsSync(path)).toBe(false);
    expect(journal.info().pathProblem).toMatch(/removed and could not be written again: the state exists only in this process/);

    mkdirSync(sub);
    journal.append({ type: 'hold', dest: 3, data: held(3, 2) });
    await journal.commit();
    await journal.close();
    const holds = await reopenHolds(path);
    expect([...holds.keys()].sort()).toEqual([1, 2, 3]);
  });

  // Mounting needs root (CI machines and the developer containers here are root).
  it.runIf(process.getuid?.() === 0)(
    'writes nothing into a file system mounted over its directory (the old filesystem from source, say): commits go on into the hidden file',
    async () => {
      const sub = dir.file('states');
      mkdirSync(sub);
      const path = `${sub}/disk.remap-state`;
      const log = recordingLog();
      // A small compaction threshold: a snapshot comes due while the directory is covered. The periodic look
      // at the path happens once (the first commit); what keeps the snapshot out of the mount is the look before it.
      const journal = await FileStateJournal.create(path, identityOf(map, dir.file('disk.img')), map, { log, pathCheckMs: 3_600_000, compactBytes: 4 * B });
      journal.append({ type: 'hold', dest: 1, data: held(1, 3) });
      await journal.commit();

      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'covering', sub], { timeout: 20_000 });
      try {
        for (let round = 0; round < 8; round++) {
          journal.append({ type: 'hold', dest: 2 + (round % 3), data: held(2 + (round % 3), 3) });
          await journal.commit();
        }
        expect(readdirSync(sub), 'nothing is written into the covering file system').toEqual([]);
        expect(log.errors).toHaveLength(1);
        expect(log.errors[0]).toMatch(new RegExp(`a file system was mounted over ${sub} while the server runs\. The state file is hidden under it`));
        expect(journal.info().pathProblem).toMatch(/a file system is mounted over .* unmount it before any restart/);
      } finally {
        // Lazy: a failed run may have left a file open in the mount, which must not outlive the test.
        execFileSync('umount', ['--lazy', sub], { timeout: 20_000 });
      }
      journal.append({ type: 'hold', dest: 5, data: held(5, 3) });
      // The next snapshot looks again: the mount is gone, and so is the problem.
      for (let round = 0; round < 8 && journal.info().pathProblem !== null; round++) {
        journal.append({ type: 'hold', dest: 5, data: held(5, 3) });
        await journal.commit();
      }
      expect(journal.info().pathProblem).toBeNull();
      await journal.close();
      const holds = await reopenHolds(path);
      expect([...holds.keys()].sort()).toEqual([1, 2, 3, 4, 5]);
      for (const [d, data] of holds) expect(data.equals(held(d, 3))).toBe(true);
      expect(log.errors).toHaveLength(1);
    },
  );
});
