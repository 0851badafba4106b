/**
 * The peers and clients a benchmark run starts, checked before anything is
 * timed: a missing one would otherwise surface minutes in as a bare
 * `spawn … ENOENT`.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TOOL_ENV } from './config.js';

/** Each tool a group may start, with the Debian package that ships it. */
export const TOOL_PACKAGES = {
  nbdcopy: 'libnbd-bin',
  nbdkit: 'nbdkit',
  'qemu-nbd': 'qemu-utils',
  fio: 'fio',
  /** libnbd's Python binding, which the durability workload drives. */
  'python3 nbd module': 'python3-libnbd',
} as const;

export type BenchTool = keyof typeof TOOL_PACKAGES;

function present(tool: BenchTool, path: string): boolean {
  if (tool === 'python3 nbd module') return spawnSync('python3', ['-c', 'import nbd'], { env: { ...TOOL_ENV, PATH: path }, stdio: 'ignore' }).status === 0;
  return onPath(tool, path);
}

function onPath(tool: string, path: string): boolean {
  return path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Throws one error naming every missing tool and the install command that brings them all. */
export function requireTools(tools: Iterable<BenchTool>, path = TOOL_ENV.PATH ?? ''): void {
  const missing = [...new Set(tools)].filter((tool) => !present(tool, path));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((tool) => TOOL_PACKAGES[tool]))];
  throw new Error(
    `the benchmark needs ${missing.join(', ')}, not found; ` +
      `install with: apt-get install -y ${packages.join(' ')} (or choose groups that do not need them: npm run bench -- GROUP)`,
  );
}
