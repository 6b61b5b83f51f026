import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../vitest.shared.ts';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      include: ['e2e/**/*.test.ts', 'reliability/**/*.test.ts'],
      // The reliability suite renders reliability/REPORT.md from what its files recorded.
      globalSetup: ['reliability/global-setup.ts'],
    },
  }),
);
