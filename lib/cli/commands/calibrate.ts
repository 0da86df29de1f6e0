/** `llama-kv calibrate`: what each K/V cache setting costs in quality, against f16/f16. */
import { readFile, writeFile } from 'node:fs/promises';
import { calibrate as runCalibration, LONG_PROMPT_TOKENS, readPromptFile, type CalibrationConfig, type CalibrationReport } from '../../calibrate/index.js';
import { ensureFixtureModel } from '../../demo/models.js';
import { KV_PRESETS, type FlashAttention, type KvCacheType, type KvPreset } from '../../options/kv-cache.js';
import { setLogger } from '../../logger.js';
import { inFlagNames } from '../format/flag-names.js';
import { loadModel } from '../flags/load-model.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes } from '../format/bytes.js';
import { calibrationChartSvg } from '../format/calibration-chart.js';
import { progressBar } from '../format/progress.js';
import { textTable } from '../format/table.js';
import { modelFlags, modelOptionsFromFlags } from '../flags/model-flags.js';

export const calibrateFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file (default: the built-in demo model)' },
    { names: ['--prompts'], key: 'prompts', type: 'string', help: 'prompt file: .jsonl ({"text", "name"?, "category"?} per line) or text (prompts split at --- lines); default: built-in set' },
    { names: ['--configs'], key: 'configs', type: 'string', help: 'comma-separated K/V pairs or presets, e.g. f16/f16,q8_0/q4_0 (default: the four presets)' },
    { names: ['--reference'], key: 'reference', type: 'string', help: 'the K/V pair every configuration is compared with (default f16/f16)' },
    { names: ['-c', '--ctx-size'], key: 'contextSize', type: 'int', help: 'context size; longer prompts are cut (default 2048 or the trained size)' },
    { names: ['-t', '--threads'], key: 'threads', type: 'int', help: 'threads (default: number of CPUs)' },
    { names: ['-fa', '--flash-attn'], key: 'flashAttention', type: 'string', help: 'on | off | auto (default auto)' },
    { names: ['-n', '--gen-tokens'], key: 'generationTokens', type: 'int', help: 'tokens generated per configuration to time generation; 0 skips (default 32)' },
    ...modelFlags,
    { names: ['--out'], key: 'out', type: 'string', help: 'write the report as JSON' },
    { names: ['--chart'], key: 'chart', type: 'string', help: 'write an SVG chart: mean KL against KV bytes, one point per configuration' },
    { names: ['--baseline'], key: 'baseline', type: 'string', help: 'a saved report (--out) to check against; needs --max-kl' },
    { names: ['--max-kl'], key: 'maxKl', type: 'float', help: 'with --baseline: exit 1 when a configuration\'s mean KL rose by more than this (nats)' },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print the report as JSON instead of the table' },
    { names: ['--verbose'], key: 'verbose', type: 'bool', help: "show llama.cpp's info log and progress on stderr" },
];

export const calibrateUsage =
    'usage: llama-kv calibrate [-m model.gguf] [--prompts set.jsonl] [--configs f16/f16,q8_0/q8_0,q8_0/q4_0,q4_0/q4_0] [-c 2048] [-t N]\n' +
    '                          [--out report.json] [--chart report.svg] [--baseline saved.json --max-kl 0.005] [--json]\n' +
    'Exit codes: 0 done, 1 a failure or a regression against --baseline, 2 a usage error.\n' +
    flagHelp(calibrateFlags);

/** "q8_0/q4_0" or a preset name. */
function parseConfig(flag: string, text: string): KvPreset | CalibrationConfig {
    const item = text.trim();
    if (item in KV_PRESETS) return item as KvPreset;
    const parts = item.split('/');
    if (parts.length !== 2 || parts.some((p) => p === '')) {
        throw new UsageError(`${flag} expects K/V pairs like q8_0/q4_0 or preset names (${Object.keys(KV_PRESETS).join(', ')}) but received "${item}"`);
    }
    return { cacheTypeK: parts[0] as KvCacheType, cacheTypeV: parts[1] as KvCacheType };
}

const pct = (f: number) => `${(f * 100).toFixed(1)}%`;
const kl = (v: number) => (v === 0 ? '0' : v < 1e-4 ? v.toExponential(2) : v.toFixed(4));
const signedPct = (f: number) => `${f >= 0 ? '+' : ''}${(f * 100).toFixed(2)}%`;

/** The report as the table `llama-kv calibrate` prints. */
export function formatCalibration(report: CalibrationReport): string {
    const ref = `${report.reference.cacheTypeK}/${report.reference.cacheTypeV}`;
    const out: string[] = [];
    out.push(
        `model: ${report.model}\ncontext ${report.contextSize}, ${report.threads} threads, ${report.prompts.length} prompts ` +
            `(${report.prompts.map((p) => `${p.name} ${p.tokens}${p.truncated ? ' cut' : ''}`).join(', ')} tokens), ${report.positions} positions scored per configuration\n` +
            `reference ${ref}: perplexity ${report.reference.perplexity.toPrecision(5)}, KV ${formatBytes(report.reference.kvBytes)}\n\n`,
    );
    out.push(
        textTable(
            ['K/V', 'KV bytes', 'vs ref', 'KL mean', 'KL p95', 'KL max', 'top-1', 'perplexity', 'Δ ppl', 'gen t/s'],
            report.results.map((r) => [
                `${r.cacheTypeK}/${r.cacheTypeV}`,
                formatBytes(r.kvBytes),
                pct(r.kvBytes / report.reference.kvBytes),
                kl(r.kl.mean),
                kl(r.kl.p95),
                kl(r.kl.max),
                pct(r.top1Agreement),
                r.perplexity.toPrecision(5),
                signedPct(r.perplexityChange),
                r.generationTokensPerSecond === null ? '-' : r.generationTokensPerSecond.toFixed(1),
            ]),
        ) + '\n',
    );
    const long = report.results.filter((r) => r.byPosition !== null);
    if (long.length > 0) {
        out.push(`\nlong prompts (>= ${LONG_PROMPT_TOKENS} tokens) by position: ${long[0].byPosition!.first.positions} positions per quarter\n`);
        out.push(
            textTable(
                ['K/V', 'KL first quarter', 'KL last quarter', 'top-1 first', 'top-1 last'],
                long.map((r) => [`${r.cacheTypeK}/${r.cacheTypeV}`, kl(r.byPosition!.first.klMean), kl(r.byPosition!.last.klMean), pct(r.byPosition!.first.top1Agreement), pct(r.byPosition!.last.top1Agreement)]),
            ) + '\n',
        );
    }
    out.push(`\nKL: divergence of each next-token distribution from ${ref}'s, in nats; top-1: positions whose most likely token is ${ref}'s.\n`);
    return out.join('');
}

function formatComparison(report: CalibrationReport, baselinePath: string): string {
    const c = report.comparison!;
    const out: string[] = [`\nagainst ${baselinePath} (max mean-KL increase ${c.maxKlIncrease}):\n`];
    for (const w of c.warnings) out.push(`  warning: ${w}\n`);
    for (const m of c.missing) out.push(`  not measured this time: ${m}\n`);
    for (const r of c.regressions) out.push(`  REGRESSION ${r.configuration}: mean KL ${kl(r.savedKlMean)} -> ${kl(r.klMean)} (+${kl(r.increase)})\n`);
    if (c.regressions.length === 0) out.push('  no regression\n');
    return out.join('');
}

export async function calibrate(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, calibrateFlags);
    if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
    if ((flags.baseline === undefined) !== (flags.maxKl === undefined)) throw new UsageError('--baseline and --max-kl go together');
    const configurations = typeof flags.configs === 'string' ? flags.configs.split(',').map((c) => parseConfig('--configs', c)) : undefined;
    const reference = typeof flags.reference === 'string' ? parseConfig('--reference', flags.reference) : undefined;
    setLogger((level, message) => process.stderr.write(`[${level}] ${inFlagNames(message, calibrateFlags)}\n`), { level: flags.verbose ? 'info' : 'warn' });

    let baseline: CalibrationReport | undefined;
    if (typeof flags.baseline === 'string') {
        try {
            baseline = JSON.parse(await readFile(flags.baseline, 'utf8')) as CalibrationReport;
        } catch (error) {
            throw new UsageError(`--baseline ${flags.baseline}: ${(error as Error).message}`);
        }
    }
    const prompts = typeof flags.prompts === 'string' ? await readPromptFile(flags.prompts) : undefined;
    const path = typeof flags.model === 'string' ? flags.model : await ensureFixtureModel('tiny-q8_0');
    const model = await loadModel({ path, ...modelOptionsFromFlags(flags) });
    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    // Progress: --verbose's lines (between llama.cpp's log lines), else a bar on a terminal; nothing otherwise.
    const bar = progressBar();
    try {
        const report = await runCalibration({
            model,
            prompts,
            configurations,
            reference,
            contextSize: flags.contextSize as number | undefined,
            threads: flags.threads as number | undefined,
            flashAttention: flags.flashAttention as FlashAttention | undefined,
            generationTokens: flags.generationTokens as number | undefined,
            baseline,
            maxKlIncrease: flags.maxKl as number | undefined,
            signal: controller.signal,
            onProgress: (p) => {
                if (flags.verbose) process.stderr.write(`[${p.done}/${p.total}] ${p.configuration} ${p.prompt}\n`);
                else bar.update(p.done / p.total, `${p.done}/${p.total} ${p.configuration} ${p.prompt}`);
            },
        });
        bar.clear();
        if (typeof flags.out === 'string') await writeFile(flags.out, JSON.stringify(report, null, 2) + '\n');
        if (typeof flags.chart === 'string') await writeFile(flags.chart, calibrationChartSvg(report));
        process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + '\n' : formatCalibration(report));
        if (report.comparison) {
            (flags.json ? process.stderr : process.stdout).write(formatComparison(report, flags.baseline as string));
            if (report.comparison.regressions.length > 0) return 1;
        }
        return 0;
    } finally {
        bar.clear();
        process.off('SIGINT', onSigint);
        model.dispose();
    }
}
