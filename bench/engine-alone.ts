/**
 * `npm run bench:engine [-- DIST_ROOT …]`: the ordering engine's own cost,
 * without NBD, sockets or a disk — for working on the engine. The remap
 * group's destination-write row moves ±10% from run to run on these machines,
 * more than most engine changes save; the engine's CPU time in-process, as a
 * median of interleaved runs, moves ~3%.
 *
 * Each run is a fresh process: a disk of swapped halves in memory, the first
 * half read from `source` and checkpointed, then 512 MiB written to
 * `destination` in 256 KiB requests, 16 in flight (nbdcopy's pattern). The
 * device's writes complete on the next turn of the event loop, as libuv's do.
 * Scenarios: `spill` (64M cache: the bench row's case), `spill-no-revisit`
 * (--revisit-cache 0: no captures) and `hold` (a cache larger than the data:
 * no I/O at all).
 *
 * Each run is measured cold (the first engine in its process: V8 compiles the
 * engine's code as it goes, as in a fresh server) and warm (a third fresh
 * engine in the same process, whose code is compiled already): the first
 * third or more of a cold run is compiling, so a change to the per-block work
 * may show only warm (docs/performance.md, "Cold code").
 *
 * With several DIST_ROOTs (directories holding a build's `dist/`, e.g. a git
 * worktree of another commit), their runs are interleaved and compared.
 * Not a test and not a peer comparison: there is no peer for this.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MiB } from './config.js';

const SIZE = 1024 * MiB;
const HALF = SIZE / 2;
const B = 4096;
const REQUEST = 256 * 1024;
const IN_FLIGHT = 16;

const SCENARIOS: Record<string, { cacheMiB: number; revisitMiB: number }> = {
  spill: { cacheMiB: 64, revisitMiB: 64 },
  'spill-no-revisit': { cacheMiB: 64, revisitMiB: 0 },
  hold: { cacheMiB: 700, revisitMiB: 64 },
};

interface RunResult {
  cpuSeconds: number;
  wallSeconds: number;
}

/** Fresh engines one after another in this process; the first is cold, the third warm. */
const ENGINES_PER_PROCESS = 3;

/** The runs of one process: `root` is the directory whose dist/ is measured. */
async function runProcess(root: string, scenario: string): Promise<{ cold: RunResult; warm: RunResult }> {
  const remap = (await import(pathToFileURL(resolve(root, 'dist/src/remap/index.js')).href)) as typeof import('../src/remap/index.js');
  // Touched up front, so the run measures the engine, not page faults of the fake disk.
  const disk = Buffer.alloc(SIZE, 1);
  const data = Buffer.alloc(HALF);
  for (let at = 0; at < HALF; at += 4) data.writeUInt32LE(Math.imul(at + 1, 0x9e3779b1) >>> 0, at);
  const results: RunResult[] = [];
  for (let i = 0; i < ENGINES_PER_PROCESS; i++) {
    disk.fill(1);
    results.push(await runOnce(remap, disk, data, scenario));
  }
  return { cold: results[0], warm: results[results.length - 1] };
}

/** One fresh engine over `disk`: the first half read and checkpointed, then `data` written to destination. */
async function runOnce(remap: typeof import('../src/remap/index.js'), disk: Buffer, data: Buffer, scenario: string): Promise<RunResult> {
  const { cacheMiB, revisitMiB } = SCENARIOS[scenario];
  const device = {
    size: SIZE,
    async readInto(buffer: Buffer, offset: number): Promise<void> {
      disk.copy(buffer, 0, offset, offset + buffer.length);
    },
    write(offset: number, data: Buffer): Promise<void> {
      data.copy(disk, offset);
      return new Promise<void>((done) => setImmediate(done));
    },
    writev(offset: number, buffers: readonly Buffer[]): Promise<void> {
      let at = offset;
      for (const b of buffers) at += b.copy(disk, at);
      return new Promise<void>((done) => setImmediate(done));
    },
    async sync(): Promise<void> {},
  };
  const map = remap.RemapMap.fromExtents(
    [
      { destOffset: 0, length: HALF, diskOffset: HALF },
      { destOffset: HALF, length: HALF, diskOffset: 0 },
    ],
    SIZE,
    B,
  );
  const engine = remap.createRemapper({ device, map, cacheBytes: cacheMiB * MiB, revisitCacheBytes: revisitMiB * MiB });
  await engine.seal();
  const chunk = Buffer.alloc(MiB);
  for (let at = 0; at < HALF; at += MiB) await engine.source.readInto(chunk, at);
  await engine.checkpoint();

  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  let next = 0;
  const writer = async (): Promise<void> => {
    while (next < HALF) {
      const at = next;
      next += REQUEST;
      await engine.destination.write(at, data.subarray(at, at + REQUEST), { fua: false });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, writer));
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  const status = engine.status();
  if (status.heldInRam + status.spilled + status.landed !== HALF / B) throw new Error(`lost blocks: ${JSON.stringify(status)}`);
  return { cpuSeconds: (used.user + used.system) / 1e6, wallSeconds };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

async function main(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  if (process.env.ENGINE_BENCH_CHILD !== undefined) {
    const [root, scenario] = process.env.ENGINE_BENCH_CHILD.split('\n');
    process.stdout.write(JSON.stringify(await runProcess(root, scenario)));
    return;
  }
  const roots = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [fileURLToPath(new URL('../..', import.meta.url))];
  const runs = Math.max(1, Number(process.env.ENGINE_BENCH_RUNS ?? 7));
  const scenarios = (process.env.ENGINE_BENCH_SCENARIOS ?? Object.keys(SCENARIOS).join(',')).split(',');
  for (const s of scenarios) if (!(s in SCENARIOS)) throw new Error(`unknown scenario ${s}; choose from ${Object.keys(SCENARIOS).join(', ')}`);
  console.log(
    `engine alone: 512 MiB to destination, ${REQUEST / 1024} KiB requests, ${IN_FLIGHT} in flight; ${runs} interleaved processes per build; ` +
      `medians, cold (a process's first engine) and warm (its third)`,
  );
  const show = (r: RunResult[]): string => {
    const cpu = median(r.map((x) => x.cpuSeconds));
    const wall = median(r.map((x) => x.wallSeconds));
    return `CPU ${cpu.toFixed(3)} s, wall ${wall.toFixed(3)} s (${(HALF / MiB / wall).toFixed(0)} MiB/s)`;
  };
  for (const scenario of scenarios) {
    const results = new Map<string, Array<{ cold: RunResult; warm: RunResult }>>(roots.map((r) => [r, []]));
    for (let i = 0; i < runs; i++) {
      for (const root of roots) {
        const out = execFileSync(process.execPath, [self], { env: { ...process.env, ENGINE_BENCH_CHILD: `${root}\n${scenario}` }, encoding: 'utf8' });
        results.get(root)?.push(JSON.parse(out) as { cold: RunResult; warm: RunResult });
      }
    }
    for (const [root, list] of results) {
      console.log(`${scenario.padEnd(17)} ${root}: cold ${show(list.map((r) => r.cold))}; warm ${show(list.map((r) => r.warm))}`);
    }
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
