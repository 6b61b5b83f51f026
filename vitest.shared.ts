import { defineConfig } from 'vitest/config';

// Shared by every package: tests talk to real Redis, Postgres and gRPC servers, so they
// get generous timeouts and run their files one at a time on this 2-core machine.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
