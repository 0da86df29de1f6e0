/** The calibration tool's public surface (lib/calibrate/ holds the parts). */
export { calibrate, type CalibrateOptions } from './calibrate.js';
export { configLabel, CALIBRATION_REPORT_VERSION, LONG_PROMPT_TOKENS } from './report.js';
export type { BucketScore, CalibrationComparison, CalibrationConfig, CalibrationProgress, CalibrationRegression, CalibrationReport, CalibrationResult } from './report.js';
export { compareCalibration } from './compare.js';
export { builtInPrompts, readPromptFile, retrievalPrompt, type CalibrationPrompt } from './prompts.js';
export type { KlSummary } from './stats.js';
