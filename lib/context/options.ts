/** The options of a context: its settings (options/), the model and the LoRA adapters. */
import { LlamaLora } from '../model/lora.js';
import type { LlamaModel } from '../model/model.js';
import { contextOptionsSchemaFor, loraListSchema as loraListSchemaFor, type ContextSettings } from '../options/context-options.js';

/** An adapter applied to a context, and its scale. */
export interface LoraUse {
    lora: LlamaLora;
    /** 1 applies the adapter as trained, 0 is the base model; other values scale its effect. */
    scale: number;
}

/** Options of {@link LlamaContext} without `model`: what {@link LlamaModel.createContext} takes. */
export interface ContextOptionsWithoutModel extends ContextSettings {
    /**
     * LoRA adapters applied from the start, each with a scale (1 is the adapter as trained,
     * 0 is the base model). Same as calling `ctx.setLoras()` right after creation. Defaults to none.
     */
    loras?: LoraUse[];
}

/** Options of {@link LlamaContext}. */
export interface LlamaContextOptions extends ContextOptionsWithoutModel {
    /** The model this context runs. */
    model: LlamaModel;
}

const isLora = (value: unknown): value is LlamaLora => value instanceof LlamaLora;

/** The schema of {@link LlamaContextOptions}. @internal */
export const contextOptionsSchema = contextOptionsSchemaFor(isLora);

/** The schema of ctx.setLoras()'s list. @internal */
export const loraListSchema = loraListSchemaFor(isLora);
