/** The calibration tool's public surface (lib/calibrate/ holds the parts). */
export { calibrate, configLabel, CALIBRATION_REPORT_VERSION, LONG_PROMPT_TOKENS } from './calibrate/calibrate.js';
export type { CalibrateOptions, CalibrationConfig, CalibrationProgress, CalibrationReport, CalibrationResult, BucketScore } from './calibrate/calibrate.js';
export { compareCalibration, type CalibrationComparison, type CalibrationRegression } from './calibrate/compare.js';
export { builtInPrompts, readPromptFile, retrievalPrompt, type CalibrationPrompt } from './calibrate/prompts.js';
export type { KlSummary } from './calibrate/stats.js';
