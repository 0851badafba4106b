import { expect, it } from 'vitest';
import { RemapMap } from '../../../src/remap/map.js';
import { FileStateJournal } from '../../../src/state/file-state-journal.js';
import { identityOf, type StateIdentity } from '../../../src/state/state-identity.js';
import { CrashFs } from '../remap/durability/helpers/crash-world.js';

const B = 4096;
const PATH = '/state/disk.remap-state';

it('a state file of format 1 (before frame seeds: no frameSeed in its header, checksums from 0) opens, takes commits and compacts as format 1', async () => {
  const fs = new CrashFs();
  const map = RemapMap.identity(64 * B, B);
  // The header as the previous version wrote it.
  const { frameSeed: _none, ...rest } = identityOf(map, '/dev/old');
  const old = { ...rest, format: 1 } as unknown as StateIdentity;
  const journal = await FileStateJournal.create(PATH, old, map, { fs, pathCheckMs: 1e9 });
  journal.append({ type: 'seal', samples: [] });
  journal.append({ type: 'release', start: 0, count: 8 });
  await journal.commit();
  await journal.close();
  expect((fs.contents(PATH) as Buffer).toString('latin1')).not.toContain('frameSeed');

  const opened = await FileStateJournal.open(PATH, { fs, pathCheckMs: 1e9, compactBytes: 1 });
  if (opened === undefined) throw new Error('state file vanished');
  expect(opened.identity).toMatchObject({ format: 1, frameSeed: 0 });
  expect(opened.state.released.count).toBe(8);
  opened.journal.append({ type: 'release', start: 8, count: 8 });
  await opened.journal.commit();
  await opened.journal.compact();
  await opened.journal.close();

  const again = await FileStateJournal.open(PATH, { fs, pathCheckMs: 1e9 });
  if (again === undefined) throw new Error('state file vanished');
  expect(again.identity).toMatchObject({ format: 1, frameSeed: 0 });
  expect(again.state.released.count).toBe(16);
  await again.journal.close();
});
