import { defineConfig } from 'vitest/config';

// `npm run test:package`: the packed package installed without a compiler. Needs the
// CPU prebuild (npm run prebuild -- --variant cpu).
export default defineConfig({
    test: {
        include: ['test/package/**/*.test.ts'],
        testTimeout: 120_000,
        hookTimeout: 600_000,
        fileParallelism: false,
        pool: 'forks',
    },
});
