import { describe, expect, it } from 'vitest';
import { CrashRun, prng, randomOps, scenarioFrom } from './helpers/crash-workload.js';
import type { CrashMode } from './helpers/crash-world.js';

/**
 * Simulated power loss (CrashMonkey/ALICE style, DESIGN G5/G6): random
 * migrations on a disk and state-file model that remembers every write since
 * the last sync; at crash points, random subsets and prefixes of the unsynced
 * writes (disk and state file, sector by sector) are materialised, the
 * migration is recovered through openMigration, and G2, G3 (writes
 * acknowledged before a FLUSH, or with FUA), G5 and G6 (after a resumed
 * finish) are checked. A quarter of the workloads find the state's file
 * system full for some of its writes (commits cut off and retried), another
 * quarter the disk image's (writes fail half done).
 * CRASH_STATES=N runs N crash states (default 10,000).
 */
const TARGET = Math.max(1, Number(process.env.CRASH_STATES ?? 10_000));
const SEED = Number(process.env.CRASH_SEED ?? 20240601);

describe('simulated power loss', () => {
  it(`recovers every crash state (${TARGET} states)`, async () => {
    const random = prng(SEED);
    const started = Date.now();
    let states = 0;
    let workloads = 0;
    const phases: Record<string, number> = {};
    const modes: CrashMode[] = ['random', 'random', 'prefix', 'none', 'all'];
    let enospc = 0;
    let eio = 0;
    let full = 0;
    let diskFull = 0;
    let partial = 0;
    while (states < TARGET) {
      const scenario = scenarioFrom(random);
      const run = new CrashRun(scenario);
      const ops = randomOps(run.map, random, { finish: random() < 0.5, length: 10 + Math.floor(random() * 40) });
      workloads++;
      try {
        await run.run(ops);
      } catch (err) {
        throw new Error(`workload failed before any crash: ${(err as Error).message}\nscenario ${JSON.stringify(scenario)}\nops ${JSON.stringify(ops)}`, { cause: err });
      }
      enospc += run.enospc;
      eio += run.eio;
      full += run.full;
      diskFull += run.diskFull;
      partial += run.partial;
      const budget = Math.min(TARGET - states, 40 + Math.floor(random() * 160));
      for (let i = 0; i < budget; i++) {
        const point = run.points[Math.floor(random() * run.points.length)];
        const mode = modes[Math.floor(random() * modes.length)];
        try {
          const phase = await run.check(point, mode, random, random() < 0.5);
          phases[phase] = (phases[phase] ?? 0) + 1;
        } catch (err) {
          throw new Error(`${(err as Error).message}\nscenario ${JSON.stringify(scenario)}\nops ${JSON.stringify(ops)}`, { cause: err });
        }
        states++;
      }
    }
    const seconds = (Date.now() - started) / 1000;
    console.log(`power loss: ${states} crash states from ${workloads} workloads in ${seconds.toFixed(1)} s; recovered phases ${JSON.stringify(phases)}; enospc ${enospc}, eio ${eio}, failed on a full file system: state ${full}, image ${diskFull}; partial-block writes ${partial}`);
    expect(states).toBeGreaterThanOrEqual(TARGET);
    // The states must reach every phase, or the property proves little.
    if (TARGET >= 1000) for (const phase of ['unsealed', 'sealed', 'finishing', 'finished']) expect(phases[phase] ?? 0, `no crash state recovered in phase ${phase}`).toBeGreaterThan(0);
    // …and operations that found the state's or the image's file system full must have happened.
    if (TARGET >= 1000) expect(full).toBeGreaterThan(0);
    if (TARGET >= 1000) expect(diskFull).toBeGreaterThan(0);
    if (TARGET >= 1000) expect(partial).toBeGreaterThan(0);
  }, 600_000);
});
