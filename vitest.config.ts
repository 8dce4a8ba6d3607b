import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The Temporal worker loads a native module: run test files in child processes, not threads.
    pool: 'forks',
    // Two cores: more than two files at once only makes every real-server test slower.
    maxWorkers: 2,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Every file stops the process groups it started (testkit/processes.ts); the run fails if any process it started remains (testkit/leftovers.ts).
    setupFiles: ['testkit/vitest-setup.ts'],
    globalSetup: ['testkit/global-setup.ts'],
    // The leftover check waits up to 15 s for processes that are still stopping.
    teardownTimeout: 60_000,
  },
});
