import { readFileSync } from 'node:fs';

const MiB = 1024 * 1024;

/** Resident memory of process `pid` now (VmRSS), in bytes. */
export function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  if (line === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(line.split(/\s+/)[1]) * 1024;
}

/** Polls until three readings in a row agree within 1 MiB (the process has taken all it will), at most ~10 s. */
export async function settledRss(pid: number): Promise<number> {
  let last = rssOf(pid);
  let steady = 0;
  for (let i = 0; i < 50 && steady < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const now = rssOf(pid);
    steady = Math.abs(now - last) < MiB ? steady + 1 : 0;
    last = now;
  }
  return last;
}
