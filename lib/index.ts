export { LlamaModel } from './model/model.js';
export { LlamaEmbeddingContext, type EmbeddingOf, type EmbeddingContextConfig } from './embedding/embedding-context.js';
export { LlamaRankingContext, type RankedDocument } from './embedding/ranking-context.js';
export type { EmbedderConfig, EmbeddingInput } from './embedding/embedder.js';
export {
    EMBEDDING_POOLINGS,
    type EmbeddingPooling,
    type ResolvedPooling,
    type EmbeddingNormalize,
    type EmbedderSettings,
    type EmbeddingContextOptions,
    type RankingContextOptions,
    type EmbedOptions,
} from './options/embedding-options.js';
export type { ModelMetadata } from './model/metadata.js';
export {
    LlamaContext,
    type LlamaContextOptions,
    type ContextConfig,
    type GeneratedToken,
    type CompletionResult,
    type FinishReason,
    type TokenScores,
    type ScoreOptions,
    type SequenceInfo,
    type SequenceState,
    type EngineStats,
    LlamaSequence,
    UNREAD_LIMIT,
} from './context/context.js';
export type { ContextFullPolicy } from './options/context-options.js';
export type { PromptCacheOptions } from './options/state-options.js';
export type { PromptCacheStats } from './context/prompt-cache.js';
export type { StateHeader } from './context/state-header.js';
export type { StateSize } from './memory/state-size.js';
export type { LlamaWarning, LlamaWarningCode } from './warnings.js';
export type { TokenizeAsyncOptions } from './options/model-options.js';
export {
    KV_CACHE_TYPES,
    KV_CACHE_TYPE_INFO,
    KV_PRESETS,
    type KvCacheType,
    type KvCacheTypeInfo,
    type KvPreset,
    type FlashAttention,
} from './options/kv-cache.js';
export type { ModelLoadOptions, TokenizeOptions } from './options/model-options.js';
export type { ContextSettings } from './options/context-options.js';
export type { ContextOptionsWithoutModel, LoraUse } from './context/options.js';
export type { GenerateOptions } from './options/generate-options.js';
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
export type { MemoryReport, MemoryComponent, DeviceMemory, WeightBuffer, WeightsMemory } from './memory/report.js';
export { getHostMemory, type HostMemory, type HostMemoryLimit } from './memory/host-memory.js';
export { planFit, FIT_LADDER, type FitPlan } from './memory/plan-fit.js';
export type { PlanFitOptions, FitPreference } from './options/plan-fit-options.js';
export { estimateMemory, type MemoryEstimate, type EstimateSource } from './memory/estimate.js';
export type { EstimateOptions } from './options/estimate-options.js';
export { setLogger, setLogLevel, type Logger, type LogLevel, type LoggerOptions } from './logger.js';
export { readGgufMetadata } from './gguf/reader.js';
export { resolveModelFile, readRemoteGgufMetadata, type ResolveModelFileOptions, type RemoteGgufOptions, type DownloadProgress, type FetchFunction } from './download/index.js';
export type { GgufMetadata, GgufTensorInfo, GgufValue } from './gguf/types.js';
export { ensureFixtureModel, type FixtureModelName } from './demo/models.js';
export { getBackends, GPU_BACKEND_KINDS, type BackendInfo, type BackendDevice, type BackendKind, type GpuBackendKind } from './backends/backends.js';
export { LlamaLora, type LoraMetadata } from './model/lora.js';
export { quantizeModel, type QuantizeResult } from './model/quantize.js';
export { QUANTIZATION_TYPES, type QuantizationType, type QuantizeOptions } from './options/quantize-options.js';
export { ensureFixtureLora, type FixtureLoraName } from './demo/loras.js';
export { inspectModel, type InspectModelOptions, type ModelInspection } from './model/inspect-model.js';
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
} from './calibrate/index.js';
export { LlamaChatSession, type ChatPromptResult, type ChatDelta, type ChatStream, type LlamaChatSessionOptions, type ChatToolCallResult } from './chat/session.js';
export type { ChatTemplateInfo, ChatTemplateOrigin } from './model/chat-template.js';
export type { ApplyChatTemplateOptions, ChatMessage, ChatTool, ChatToolCall, ChatPromptOptions } from './options/chat-options.js';
export type { GrammarOptions } from './options/grammar-options.js';
