import { defineConfig } from 'vitest/config';

export default defineConfig({
    test: {
        include: ['test/**/*.test.ts'],
        exclude: ['test/package/**', '**/node_modules/**'],
        globalSetup: ['test/fixtures/global-setup.ts'],
        testTimeout: 60_000,
        hookTimeout: 300_000,
        // Model tests share the 2 CPUs with llama.cpp's threads: run files one at a time.
        fileParallelism: false,
        pool: 'forks',
    },
});
