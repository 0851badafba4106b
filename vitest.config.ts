import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run against the workspace packages' sources, so a change there needs no rebuild to be tested.
    alias: {
      'nbd-protocol-ts': fileURLToPath(new URL('./packages/nbd-protocol-ts/src/index.ts', import.meta.url)),
      'linux-io': fileURLToPath(new URL('./packages/linux-io/src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
