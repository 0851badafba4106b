/**
 * `npm run bench`: performance against peers, in one run, interleaved round by
 * round, printing medians, ratios and targets. Not a test: absolute figures on
 * shared machines move 2× between minutes, so only ratios within one run mean
 * anything.
 *
 * Groups: peers (issue 2), remap (issue 3), durability (issue 4). All run by
 * default; choose with `npm run bench -- remap durability` or
 * BENCH_GROUPS=remap,durability. Sizes and rounds: see config.ts.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DURABLE_BYTES, MiB, RANDOM_SECONDS, ROUNDS, SIZE, TOOL_ENV } from './config.js';
import { durabilityGroup } from './group-durability.js';
import { peersGroup } from './group-peers.js';
import { remapGroup } from './group-remap.js';
import type { BenchGroup } from './group.js';
import { fillRandom } from './images.js';
import { progress } from './table.js';
import { requireTools } from './tools.js';

const GROUPS: readonly BenchGroup[] = [peersGroup, remapGroup, durabilityGroup];

function selectedGroups(): BenchGroup[] {
  const names = [...process.argv.slice(2), ...(process.env.BENCH_GROUPS ?? '').split(',')].map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return [...GROUPS];
  const unknown = names.filter((n) => !GROUPS.some((g) => g.name === n));
  if (unknown.length > 0) {
    throw new Error(`unknown benchmark group(s): ${unknown.join(', ')}; choose from: ${GROUPS.map((g) => `${g.name} (${g.summary})`).join('; ')}`);
  }
  return GROUPS.filter((g) => names.includes(g.name));
}

async function main(): Promise<void> {
  const groups = selectedGroups();
  requireTools(groups.flatMap((g) => g.tools));
  const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-bench-'));
  // The bench's migrations are not the user's: they are listed in a registry of its own, removed with it.
  TOOL_ENV.NBD_REMAPPER_REGISTRY = join(dir, 'registry');
  const started = Date.now();
  try {
    console.log(
      `nbd-remapper bench: groups ${groups.map((g) => g.name).join(', ')}; image ${SIZE / MiB} MiB, ${ROUNDS} rounds, ` +
        `fio ${RANDOM_SECONDS} s per run, durability ${DURABLE_BYTES / MiB} MiB per case; node ${process.version}`,
    );
    const master = join(dir, 'master.img');
    fillRandom(master, SIZE);
    for (const group of groups) {
      const groupDir = join(dir, group.name);
      mkdirSync(groupDir);
      progress(`${group.name}: ${group.summary}`);
      try {
        await group.run(groupDir, master);
      } finally {
        rmSync(groupDir, { recursive: true, force: true });
      }
    }
    console.log(`\nwall time ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
