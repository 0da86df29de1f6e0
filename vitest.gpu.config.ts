import { defineConfig } from 'vitest/config';

// `npm run test:gpu`: the model tests that need a GPU backend, run on the device that
// LLAMA_KV_TEST_GPU names (vulkan, cuda or rocm). The backend is loaded from its package
// folder npm/<platform>-<arch>-<kind>/ (npm run prebuild -- --variant <kind>), linked into
// node_modules/@llama-kv/ as an installed package would be (test/support/gpu-setup.ts).
// The same tests run on Mesa's llvmpipe Vulkan device in CI and on a real GPU.
export default defineConfig({
    test: {
        name: 'gpu',
        include: ['test/gpu/**/*.test.ts'],
        globalSetup: ['test/support/gpu-setup.ts'],
        // llvmpipe compiles each shader pipeline on first use, on the CPU.
        testTimeout: 300_000,
        hookTimeout: 600_000,
        fileParallelism: false,
        pool: 'forks',
    },
});
