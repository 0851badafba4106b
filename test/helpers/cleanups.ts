import { afterEach } from 'vitest';

/**
 * Per-test teardown in reverse order of setup (servers before their scratch
 * directories), run even when the test failed. Call at module level.
 */
export function useCleanups(): (cleanup: () => Promise<unknown> | void) => void {
  const cleanups: Array<() => Promise<unknown> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return (cleanup) => void cleanups.push(cleanup);
}
