export { LlamaModel, type ModelMetadata } from './model.js';
export {
    LlamaContext,
    type LlamaContextOptions,
    type ContextConfig,
    type GeneratedToken,
    type CompletionResult,
    type FinishReason,
    type TokenScores,
    type ScoreOptions,
} from './context.js';
export {
    KV_CACHE_TYPES,
    KV_CACHE_TYPE_INFO,
    KV_PRESETS,
    type KvCacheType,
    type KvCacheTypeInfo,
    type KvPreset,
    type FlashAttention,
} from './kv-cache.js';
export type { ModelLoadOptions, ContextOptionsWithoutModel, GenerateOptions, TokenizeOptions } from './options.js';
export {
    LlamaError,
    LlamaConfigError,
    LlamaModelLoadError,
    LlamaDisposedError,
    LlamaAbortError,
    LlamaDecodeError,
    LlamaMemoryError,
    type LlamaErrorCode,
    type MemoryLocation,
} from './errors.js';
export type { MemoryReport, MemoryComponent, DeviceMemory, WeightBuffer, WeightsMemory } from './memory.js';
export { getHostMemory, type HostMemory, type HostMemoryLimit } from './host-memory.js';
export { planFit, FIT_LADDER, type PlanFitOptions, type FitPlan, type FitPreference } from './plan-fit.js';
export { estimateMemory, type EstimateOptions, type MemoryEstimate, type EstimateSource } from './estimate.js';
export { setLogger, setLogLevel, type Logger, type LogLevel, type LoggerOptions } from './logger.js';
export { readGgufMetadata, type GgufMetadata, type GgufTensorInfo, type GgufValue } from './gguf.js';
export { ensureFixtureModel, type FixtureModelName } from './fixtures/models.js';
export { getBackends, GPU_BACKEND_KINDS, type BackendInfo, type BackendDevice, type BackendKind, type GpuBackendKind } from './backends.js';
export { LlamaLora, type LoraMetadata } from './lora.js';
export type { LoraUse } from './options.js';
export { quantizeModel, QUANTIZATION_TYPES, type QuantizationType, type QuantizeOptions, type QuantizeResult } from './quantize.js';
export { ensureFixtureLora, type FixtureLoraName } from './fixtures/loras.js';
export { inspectModel, type InspectModelOptions, type ModelInspection } from './isolation.js';
export {
    calibrate,
    compareCalibration,
    readPromptFile,
    builtInPrompts,
    CALIBRATION_REPORT_VERSION,
    LONG_PROMPT_TOKENS,
    type CalibrateOptions,
    type CalibrationConfig,
    type CalibrationProgress,
    type CalibrationReport,
    type CalibrationResult,
    type CalibrationComparison,
    type CalibrationRegression,
    type CalibrationPrompt,
    type BucketScore,
    type KlSummary,
} from './calibration.js';
