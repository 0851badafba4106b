import { describe, expect, it } from 'vitest';
import { RemapMap } from '../../../src/remap/map.js';
import { FileStateJournal } from '../../../src/state/file-state-journal.js';
import { StateError } from '../../../src/state/state-errors.js';
import type { StateFile } from '../../../src/state/state-fs.js';
import { identityOf } from '../../../src/state/state-identity.js';
import { CrashFs } from '../remap/durability/helpers/crash-world.js';

const B = 4096;
const PATH = '/state/disk.remap-state';

/** A file system on which the state file can be read but not opened for writing (mode 0444, chattr +i, or a read-only mount). */
class ReadOnlyStateFs extends CrashFs {
  constructor(private readonly code: string) {
    super();
  }

  override async openExisting(path: string, writable: boolean): Promise<StateFile | undefined> {
    if (writable) throw Object.assign(new Error(`${this.code}: cannot open ${path}`), { code: this.code });
    return super.openExisting(path, writable);
  }
}

describe('a state file that cannot be opened for writing', () => {
  for (const code of ['EACCES', 'EPERM', 'EROFS']) {
    it(`${code}: a StateError that says so and keeps the user on this state file`, async () => {
      const fs = new ReadOnlyStateFs(code);
      const map = RemapMap.identity(16 * B, B);
      const journal = await FileStateJournal.create(PATH, identityOf(map, '/dev/test'), map, { fs });
      await journal.close();
      const err = await FileStateJournal.open(PATH, { fs }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StateError);
      expect((err as StateError).message).toContain(`cannot open the state file ${PATH} for writing`);
      expect((err as StateError).message).toContain(code);
      expect((err as StateError).fix).not.toMatch(/pass --state/);
      expect((err as StateError).fix).toMatch(/holds this migration/);
    });
  }
});
