import { defineConfig } from 'vitest/config';

// Two projects. `unit`: no build, no vendor tree, no models (npm run test:unit, seconds on a
// fresh clone after `npm ci --ignore-scripts`). `model`: the generated fixture models, the
// built addon and the pinned llama.cpp source (the global setup writes the models and builds
// the reference program). `npm test` runs both.
export default defineConfig({
    test: {
        projects: [
            {
                test: {
                    name: 'unit',
                    include: ['test/unit/**/*.test.ts'],
                    testTimeout: 60_000,
                },
            },
            {
                test: {
                    name: 'model',
                    include: ['test/model/**/*.test.ts'],
                    globalSetup: ['test/support/global-setup.ts'],
                    testTimeout: 60_000,
                    hookTimeout: 300_000,
                    // Model tests share the 2 CPUs with llama.cpp's threads: run files one at a time.
                    fileParallelism: false,
                    pool: 'forks',
                },
            },
        ],
    },
});
