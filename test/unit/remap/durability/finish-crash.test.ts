import { describe, expect, it } from 'vitest';
import { finishOffline, openMigration } from '../../../../src/state/open-migration.js';
import { CrashDisk, materialise, type CrashMode, type CrashSnapshot, type Recorder } from './helpers/crash-world.js';
import { backgroundCommitRecordsOf, CrashRun, keptEdgeBlocksOf, prng, randomOps, scenarioFrom, silent, STATE_PATH, type CrashOp } from './helpers/crash-workload.js';
import { readExport } from '../../../../src/server/block-export.js';

/**
 * G6: a crash at any point of finish — and again at any point of the resumed
 * finish — is completed by running finish again (offline here), and the disk
 * then equals, block for block, what the destination served before finish
 * (everything was flushed first, so that is exact).
 */
describe('crash during finish, then resume', () => {
  it('completes after one and after two crashes at many points', async () => {
    const random = prng(4242);
    let single = 0;
    let nested = 0;
    let workloads = 0;
    while (single < 600) {
      const scenario = { ...scenarioFrom(random), cacheBlocks: 1 + Math.floor(random() * 3) };
      const run = new CrashRun(scenario);
      const ops: CrashOp[] = randomOps(run.map, random, { finish: true, length: 40 });
      const finishAt = ops.length - 1;
      let served: Buffer[] = [];
      await run.run(ops, async (i) => {
        if (i !== finishAt) return;
        served = [];
        for (let d = 0; d < run.map.destinationBlocks; d++) served.push(await readExport(run.engine.destination, d * run.B, run.map.destBlockLength(d)));
      });
      workloads++;
      const points = run.points.filter((p) => p.op === finishAt);
      const expectLayout = (disk: CrashDisk, where: string): void => {
        for (let d = 0; d < served.length; d++) {
          const home = run.map.homeOf(d);
          const got = disk.bytes.subarray(home * run.B, home * run.B + served[d].length);
          if (!got.equals(served[d])) throw new Error(`${where}: disk block ${home} differs from destination block ${d} as served before finish\nscenario ${JSON.stringify(scenario)}`);
        }
      };
      for (const point of points) {
        const mode: CrashMode = (['random', 'prefix', 'none', 'all'] as const)[Math.floor(random() * 4)];
        // First crash; resume online, recording crash points of the resumed finish.
        const resumedPoints: CrashSnapshot[] = [];
        let world: { disk: CrashDisk; fs: ReturnType<typeof materialise>['fs'] } | undefined;
        const recorder: Recorder = { onEvent: () => world !== undefined && resumedPoints.push({ disk: world.disk.snapshot(), fs: world.fs.snapshot() }) };
        const first = materialise(point.snap, mode, random, recorder);
        world = { disk: new CrashDisk(first.image, recorder), fs: first.fs };
        const m = await openMigration({ disk: world.disk, diskPath: 'disk.img', statePath: STATE_PATH, cacheBytes: scenario.cacheBlocks * run.B, log: silent, fs: world.fs, compactBytes: scenario.compactBytes, backgroundCommitRecords: backgroundCommitRecordsOf(scenario), keptEdgeBytes: keptEdgeBlocksOf(scenario) * run.B });
        await m.engine.finish();
        await m.close();
        expectLayout(world.disk, `crash during finish (${mode}), resumed online`);
        single++;
        // Second crash, inside the resumed finish; completed offline.
        for (let i = 0; i < 3 && resumedPoints.length > 0; i++) {
          const snap = resumedPoints[Math.floor(random() * resumedPoints.length)];
          const second = materialise(snap, (['random', 'prefix', 'none'] as const)[i], random);
          const disk = new CrashDisk(second.image);
          await finishOffline({ disk, statePath: STATE_PATH, log: silent, fs: second.fs, compactBytes: scenario.compactBytes, backgroundCommitRecords: backgroundCommitRecordsOf(scenario) });
          expectLayout(disk, 'second crash in the resumed finish, completed offline');
          nested++;
        }
      }
    }
    console.log(`finish crashes: ${single} single and ${nested} nested crash states from ${workloads} workloads, each completed to the served layout`);
    expect(nested).toBeGreaterThan(300);
  });
});
