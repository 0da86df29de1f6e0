/** Checking a calibration against a saved one: the regression check for users' CI. */
import { LlamaConfigError } from '../errors.js';
import type { CalibrationComparison, CalibrationRegression, CalibrationReport } from './report.js';

type ResultLike = { cacheTypeK: string; cacheTypeV: string; kl: { mean: number } };

function savedResults(saved: unknown): ResultLike[] {
    const results = (saved as { results?: unknown } | null)?.results;
    const valid =
        Array.isArray(results) &&
        results.every((r) => r !== null && typeof r === 'object' && typeof r.cacheTypeK === 'string' && typeof r.cacheTypeV === 'string' && typeof r.kl?.mean === 'number');
    if (!valid) {
        throw new LlamaConfigError('the saved calibration report is not one: expected { results: [{ cacheTypeK, cacheTypeV, kl: { mean } }, ...] }', 'INVALID_ARGUMENT', ['baseline']);
    }
    return results as ResultLike[];
}

/**
 * Compares a calibration with a saved one, configuration by configuration (matched by
 * cacheTypeK/cacheTypeV): a configuration whose mean KL rose by more than
 * `maxKlIncrease` nats is a regression. Throws INVALID_ARGUMENT when `saved` is not a
 * calibration report.
 */
export function compareCalibration(current: Pick<CalibrationReport, 'results' | 'model' | 'contextSize' | 'prompts'>, saved: unknown, maxKlIncrease: number): CalibrationComparison {
    if (!(maxKlIncrease >= 0) || !Number.isFinite(maxKlIncrease)) {
        throw new LlamaConfigError(`Expected a number >= 0 for maxKlIncrease but received ${String(maxKlIncrease)}`, 'INVALID_ARGUMENT', ['maxKlIncrease']);
    }
    const previous = savedResults(saved);
    const key = (r: { cacheTypeK: string; cacheTypeV: string }) => `${r.cacheTypeK}/${r.cacheTypeV}`;
    const now = new Map(current.results.map((r) => [key(r), r]));
    const regressions: CalibrationRegression[] = [];
    const missing: string[] = [];
    for (const old of previous) {
        const r = now.get(key(old));
        if (!r) {
            missing.push(key(old));
            continue;
        }
        const increase = r.kl.mean - old.kl.mean;
        if (increase > maxKlIncrease) regressions.push({ configuration: key(old), savedKlMean: old.kl.mean, klMean: r.kl.mean, increase });
    }
    const s = saved as Partial<CalibrationReport>;
    const warnings: string[] = [];
    if (typeof s.model === 'string' && s.model !== current.model) warnings.push(`the saved run used another model file (${s.model})`);
    if (typeof s.contextSize === 'number' && s.contextSize !== current.contextSize) warnings.push(`the saved run used context size ${s.contextSize}, this one ${current.contextSize}`);
    if (Array.isArray(s.prompts)) {
        const sig = (ps: readonly { name?: unknown; tokens?: unknown }[]) => ps.map((p) => `${String(p.name)}:${String(p.tokens)}`).join(',');
        if (sig(s.prompts) !== sig(current.prompts)) warnings.push('the saved run scored other prompts (names or token counts differ)');
    }
    return { maxKlIncrease, regressions, missing, warnings };
}
