/** How the commands load a model: LlamaModel.load with a progress bar on a terminal. */
import { basename } from 'node:path';
import { LlamaModel } from '../../model/model.js';
import type { ModelLoadOptions } from '../../options/model-options.js';
import { progressBar, type ProgressStream } from '../format/progress.js';

/** Milliseconds a load may take before its bar appears: the demo model's load shows none. */
const LOAD_BAR_DELAY_MS = 250;

/**
 * `LlamaModel.load(options)`, drawing `[####....]  40% loading model.gguf` on `stream`
 * (stderr) while it loads when that is a terminal, and erasing it when done; nothing otherwise.
 */
export async function loadModel(options: ModelLoadOptions, stream: ProgressStream = process.stderr): Promise<LlamaModel> {
    const bar = progressBar({ stream, delayMs: LOAD_BAR_DELAY_MS });
    const label = `loading ${basename(options.path)}`;
    try {
        return await LlamaModel.load({
            ...options,
            onProgress: (p) => {
                bar.update(p, label);
                options.onProgress?.(p);
            },
        });
    } finally {
        bar.clear();
    }
}
