import type { BenchTool } from './tools.js';

/** A benchmark group: one issue's measurements, run in interleaved rounds, printing its own tables. */
export interface BenchGroup {
  /** Selects the group: `npm run bench -- NAME` or BENCH_GROUPS=NAME[,NAME…]. */
  name: string;
  summary: string;
  /** The programs it starts besides our own; checked before the run begins. */
  tools: readonly BenchTool[];
  /** `dir` is a scratch directory private to the group, removed afterwards. `master` is a random image of SIZE bytes. */
  run(dir: string, master: string): Promise<void>;
}
