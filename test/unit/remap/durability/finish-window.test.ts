import { expect, it } from 'vitest';
import { FileStateJournal } from '../../../../src/state/file-state-journal.js';
import { finishOffline, openMigration } from '../../../../src/state/open-migration.js';
import { CrashDisk, materialise } from './helpers/crash-world.js';
import { CrashRun, prng, silent, STATE_PATH } from './helpers/crash-workload.js';

/**
 * Finish settles (nothing held: destination becomes a plain view of the
 * disk), then syncs and commits its `finished` record. A destination write in
 * between must not reach the disk before that record: a crash would leave a
 * `finishing` state with a block changed that no record destroyed — one of
 * the seal's content samples, recovery would say this is another disk, and
 * neither a resume nor an offline finish would run (G6: resumable at any point).
 */
it('a destination write while finish commits its end waits for it, so a crash right after leaves a resumable state (G6)', async () => {
  const run = new CrashRun({ blockSize: 512, fullBlocks: 8, tail: 0, mapKind: 'identity', cacheBlocks: 1, revisitBlocks: 0, safe: false, seed: 1, compactBytes: 1 << 30 });
  await run.run([{ kind: 'seal' }, { kind: 'flush' }]);
  const engine = run.engine;
  const B = run.B;
  const finishing = engine.finish();
  // Settled, not yet committed: the phase is `finished` in memory before finish() resolves.
  for (let i = 0; i < 10_000 && engine.phase !== 'finished'; i++) await null;
  expect(engine.phase).toBe('finished');
  // Every disk block of this small disk is a seal sample; block 2 was never written or destroyed.
  await engine.destination.write(2 * B, Buffer.alloc(B, 0x5a), { fua: false });
  // A crash now, keeping every write (kill -9: they are in the page cache).
  const world = materialise(run.points[run.points.length - 1].snap, 'all', prng(1));
  await finishing;

  const recovered = await FileStateJournal.open(STATE_PATH, { fs: world.fs, log: silent });
  const phase = recovered?.state.phase;
  await recovered?.journal.close();
  expect(phase).toBe('finished');
  const disk = new CrashDisk(world.image);
  const resumed = await openMigration({ disk, diskPath: 'disk.img', statePath: STATE_PATH, cacheBytes: B, log: silent, fs: world.fs });
  expect(resumed.engine.phase).toBe('finished');
  await resumed.close();
  await finishOffline({ disk, statePath: STATE_PATH, log: silent, fs: world.fs });
});
