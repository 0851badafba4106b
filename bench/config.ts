/**
 * Settings shared by every benchmark group, from the environment:
 * BENCH_SIZE_MIB (image size, default 1024), BENCH_ROUNDS (interleaved rounds,
 * default 3), BENCH_RANDOM_SECONDS (each fio run, default 4), BENCH_DURABLE_MIB
 * (bytes written per durability workload, default 64).
 */
import { fileURLToPath } from 'node:url';

export const MiB = 1024 * 1024;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw} must be a positive number`);
  return value;
}

export const SIZE = Math.round(positive('BENCH_SIZE_MIB', 1024)) * MiB;
export const ROUNDS = Math.round(positive('BENCH_ROUNDS', 3));
export const RANDOM_SECONDS = positive('BENCH_RANDOM_SECONDS', 4);
export const DURABLE_BYTES = Math.round(positive('BENCH_DURABLE_MIB', 64)) * MiB;

/** Our CLI, as built by `tsc -b` (bench/ compiles to dist/bench/). */
export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Debian's tools first: python3-libnbd lives in /usr/bin's python, not in any other on PATH. */
export const TOOL_ENV: NodeJS.ProcessEnv = { ...process.env, PATH: `/usr/bin:/bin:/usr/sbin:/sbin:${process.env.PATH ?? ''}` };
