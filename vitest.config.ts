import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests start real servers on fixed-free ports; run files one at a time
    // on this 2-core machine so timings stay sane and ports never collide.
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default'],
  },
});
