/**
 * The fit planner: picks contextSize, parallel and K/V types for a memory budget,
 * following the usual escalation (f16/f16, then K to q8_0, then V to q8_0, then V to
 * q4_0, then K to q4_0; never below q4_0/q4_0).
 */
import { z } from 'zod';
import {
    CONTEXT_PADDING,
    estimateFromHeader,
    KV_ONLY_LOAD,
    openSimulator,
    weightLoad,
    pad,
    type EstimateContextOptions,
    type MemoryEstimate,
    type RemoteDevice,
    type Simulator,
} from './estimate.js';
import { LlamaAbortError, LlamaConfigError, LlamaError } from '../errors.js';
import { isRemoteModel, readModelHeader } from '../download/model-header.js';
import type { GgufMetadata } from '../gguf/types.js';
import { checkUbatchSize } from '../options/context-params.js';
import { LIMITS } from '../options/llama-limits.js';
import type { FlashAttention, KvCacheType } from '../options/kv-cache.js';
import { planFitSchema, type PlanFitOptions } from '../options/plan-fit-options.js';
import { modelFactsFromGguf, type HeaderModelFacts } from './model-facts.js';
import { defaults } from '../options/defaults.js';
import { parseOptions } from '../options/validate.js';

/** The chosen settings: pass them to `new LlamaContext({ model, ...plan.settings })`. */
export interface FitPlan {
    settings: { contextSize: number; parallel: number; cacheTypeK: KvCacheType; cacheTypeV: KvCacheType; flashAttention: FlashAttention };
    /** The estimate of the chosen settings (simulated by llama.cpp when the model is a path). */
    estimate: MemoryEstimate;
    /** One line: why these settings. */
    reason: string;
}

/** The escalation, most precise first. */
export const FIT_LADDER: readonly (readonly [KvCacheType, KvCacheType])[] = [
    ['f16', 'f16'],
    ['q8_0', 'f16'],
    ['q8_0', 'q8_0'],
    ['q8_0', 'q4_0'],
    ['q4_0', 'q4_0'],
];

const STEP = CONTEXT_PADDING;
const MIB = 1024 * 1024;

const fmt = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

/**
 * Picks settings that fit the budget. Throws LlamaError 'INSUFFICIENT_MEMORY' with the
 * shortfall when even the smallest settings (q4_0/q4_0 at minContextSize) do not fit.
 *
 * @example
 * const plan = await planFit({ model: 'model.gguf', budgetBytes: 6 * 2 ** 30, prefer: 'context' });
 * const ctx = new LlamaContext({ model, ...plan.settings });
 */
export async function planFit(options: PlanFitOptions): Promise<FitPlan> {
    const opts = parseOptions(planFitSchema, options, 'planFit()');
    if (opts.signal?.aborted) throw new LlamaAbortError('planFit() was aborted before it started');
    const gguf = await readModelHeader(opts.model, opts.signal ? { signal: opts.signal } : {});
    const facts = modelFactsFromGguf(gguf);
    checkPlanOptions(opts, facts.trainedContextSize);
    // With a file path every candidate is measured by llama.cpp's own dry run (exact);
    // with only a header, by the header-level estimate with a margin on its approximate
    // compute figure (also for a remote file, whose header alone is read). The plan is for
    // a budget of host memory: the whole model on the CPU, as the header level assumes.
    // With rpcServers, the host's share and each remote device's are measured by the dry run.
    const local = typeof opts.model === 'string' && !isRemoteModel(opts.model);
    checkRemoteOptions(opts, local);
    const { rpcServers, rpcTimeoutMs, gpuLayers, tensorSplit } = opts;
    const load = { repack: opts.repack ?? defaults.model.repack, placement: { gpu: false as const, ...(rpcServers ? { rpcServers, rpcTimeoutMs, gpuLayers, tensorSplit } : {}) } };
    const simulator = local ? await openSimulator(opts.model as string, load) : null;
    try {
        return plan(opts, gguf, facts, simulator);
    } finally {
        simulator?.dispose();
    }
}

type PlanOptions = z.output<typeof planFitSchema>;

/** The options of a plan across RPC servers: each needs rpcServers, which needs a dry run. */
function checkRemoteOptions(opts: PlanOptions, localFile: boolean): void {
    for (const key of ['rpcTimeoutMs', 'gpuLayers', 'tensorSplit', 'deviceBudgets'] as const) {
        if (opts[key] !== undefined && !opts.rpcServers) {
            throw new LlamaConfigError(`${key} needs rpcServers (a plan without them puts the whole model on the host)`, 'INVALID_CONFIG', [key, 'rpcServers']);
        }
    }
    if (opts.rpcServers && !localFile) {
        throw new LlamaConfigError(
            'rpcServers needs the model as a local GGUF file path: the plan dry-runs the load across the servers',
            'INVALID_CONFIG',
            ['model', 'rpcServers'],
        );
    }
}

/** Bytes of one device in an estimate. */
const deviceBytes = (d: MemoryEstimate['devices'][number]) => d.weightsBytes + d.kvBytes + d.loraBytes + d.computeBytes + d.outputBytes;

/** What each remote device of a dry run may take: its deviceBudgets entry (by name or host:port), else its server's free memory. */
function remoteBudgets(opts: PlanOptions, devices: RemoteDevice[]): Map<string, number> {
    const given = opts.deviceBudgets ?? {};
    for (const key of Object.keys(given)) {
        if (!devices.some((d) => d.name === key || d.endpoint === key)) {
            const list = devices.map((d) => `${d.name} (${d.endpoint})`).join(', ') || 'none';
            throw new LlamaConfigError(`deviceBudgets names ${key}, which is not a remote device of this plan: they are ${list}`, 'INVALID_CONFIG', ['deviceBudgets']);
        }
    }
    const budgets = new Map<string, number>();
    for (const d of devices) {
        const budget = given[d.name] ?? given[d.endpoint] ?? d.freeBytes;
        if (budget === undefined) {
            throw new LlamaError('BACKEND_UNAVAILABLE', `${d.name} (${d.endpoint}) did not report its free memory: give its budget in deviceBudgets`);
        }
        budgets.set(d.name, budget);
    }
    return budgets;
}

const trainedOr4096 = (trained: number) => (trained > 0 ? trained : 4096);
const defaultMinContext = (trained: number) => Math.min(defaults.context.contextSize, trainedOr4096(trained));

/**
 * What a context of the plan would be refused for, checked before planning, with planFit's
 * option names: the batch sizes (LlamaContext's rule and message), the sequences a batch
 * holds, and minContextSize x parallel within the largest contextSize.
 */
function checkPlanOptions(opts: PlanOptions, trained: number): void {
    const batchSize = opts.batchSize ?? defaults.context.batchSize;
    checkUbatchSize(opts.ubatchSize ?? Math.min(defaults.context.ubatchSize, batchSize), batchSize);
    if ((opts.prefer ?? defaults.planFit.prefer) === 'parallel') return; // parallel is what the plan chooses
    const parallel = opts.parallel ?? defaults.planFit.parallel;
    if (parallel > batchSize) {
        throw new LlamaConfigError(
            `Expected parallel <= batchSize but received parallel ${parallel} and batchSize ${batchSize}; raise batchSize or lower parallel`,
            'INVALID_CONFIG',
            ['parallel', 'batchSize'],
        );
    }
    const minContext = opts.minContextSize ?? defaultMinContext(trained);
    if (minContext * parallel > LIMITS.contextSize) {
        throw new LlamaConfigError(
            `Expected minContextSize x parallel <= ${LIMITS.contextSize} (the largest contextSize) but received minContextSize ${minContext} and parallel ${parallel}; ` +
                'lower minContextSize or parallel',
            'INVALID_CONFIG',
            ['minContextSize', 'parallel'],
        );
    }
}

function plan(opts: PlanOptions, gguf: GgufMetadata, facts: HeaderModelFacts, simulator: Simulator | null): FitPlan {
    const prefer = opts.prefer ?? defaults.planFit.prefer;
    const trained = trainedOr4096(facts.trainedContextSize);
    const minContext = opts.minContextSize ?? defaultMinContext(facts.trainedContextSize);
    const parallel = opts.parallel ?? defaults.planFit.parallel;
    const batchSize = opts.batchSize ?? defaults.context.batchSize;
    const budget = opts.budgetBytes;
    const extra = { batchSize: opts.batchSize, ubatchSize: opts.ubatchSize, ...(opts.promptCache ? { promptCache: opts.promptCache } : {}) };

    const margin = 1.15;
    const useMmap = opts.useMmap ?? defaults.model.useMmap;
    const load = simulator ? KV_ONLY_LOAD : weightLoad({ useMmap, repack: opts.repack ?? defaults.model.repack });
    const estimate = (o: EstimateContextOptions) => (simulator ? simulator.run(o, facts, { useMmap }) : estimateFromHeader(gguf, facts, o, load));
    // Over RPC servers, budget is the host's: each remote device has a budget of its own.
    // A first dry run connects the servers' devices and asks their free memory.
    const remoteDevices = () => {
        estimate({ contextSize: STEP, ...extra });
        return simulator!.remoteDevices();
    };
    const remote = opts.rpcServers && simulator ? remoteBudgets(opts, remoteDevices()) : new Map<string, number>();
    const hostBytes = (e: MemoryEstimate) => e.total.bytes - e.devices.filter((d) => remote.has(d.name)).reduce((sum, d) => sum + deviceBytes(d), 0);
    /** The first remote device over its budget, if any. */
    const overRemote = (e: MemoryEstimate) => e.devices.find((d) => remote.has(d.name) && deviceBytes(d) > remote.get(d.name)!);
    const fitsEstimate = (e: MemoryEstimate) => hostBytes(e) <= budget && !overRemote(e);
    const candidate = (contextSize: number, np: number, k: KvCacheType, v: KvCacheType) => {
        if (opts.signal?.aborted) throw new LlamaAbortError('planFit() was aborted');
        return estimate({ contextSize, parallel: np, cacheTypeK: k, cacheTypeV: v, ...extra });
    };
    const planned = (e: MemoryEstimate) => hostBytes(e) + (e.exact.compute ? 0 : e.compute.bytes * (margin - 1));
    const fits = (contextSize: number, np: number, k: KvCacheType, v: KvCacheType) => {
        const e = candidate(contextSize, np, k, v);
        return planned(e) <= budget && !overRemote(e);
    };
    const valid = (k: KvCacheType, v: KvCacheType) => {
        try {
            estimateFromHeader(gguf, facts, { contextSize: STEP, cacheTypeK: k, cacheTypeV: v, ...extra }, KV_ONLY_LOAD);
            return true;
        } catch (error) {
            if (error instanceof LlamaConfigError) return false; // e.g. head dimension not a multiple of 32
            throw error;
        }
    };
    const ladder = FIT_LADDER.filter(([k, v]) => valid(k, v));
    /** Largest n in [0, hi] with fits(n) (fits is monotone), or 0. */
    const largest = (hi: number, fits: (n: number) => boolean) => {
        let lo = 0;
        while (lo < hi) {
            const mid = Math.ceil((lo + hi) / 2);
            if (fits(mid)) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    };
    /** Largest context (multiple of the padding, at most `cap`) that fits, or 0. */
    const maxContext = (np: number, k: KvCacheType, v: KvCacheType, cap: number) =>
        largest(Math.floor(cap / STEP), (n) => fits(n * STEP, np, k, v)) * STEP;
    /** Most sequences of `perSeq` tokens that fit, or 0: at most batchSize of them, and perSeq x n within the largest contextSize. */
    const maxParallel = (perSeq: number, k: KvCacheType, v: KvCacheType) =>
        largest(Math.min(LIMITS.parallel, batchSize, Math.floor(LIMITS.contextSize / perSeq)), (n) => fits(perSeq * n, n, k, v));

    const smallest = ladder.at(-1) ?? (['f16', 'f16'] as const);
    let choice: { contextSize: number; parallel: number; k: KvCacheType; v: KvCacheType; reason: string } | null = null;

    if (prefer === 'parallel') {
        let best = { n: 0, index: -1 };
        for (const [i, [k, v]] of ladder.entries()) {
            const n = maxParallel(pad(minContext, STEP), k, v);
            if (n > best.n) best = { n, index: i };
        }
        if (best.n > 0) {
            const [k, v] = ladder[best.index];
            choice = { contextSize: pad(minContext, STEP) * best.n, parallel: best.n, k, v, reason: `${best.n} sequences of ${pad(minContext, STEP)} tokens fit with K ${k} / V ${v}; more precise types fit fewer` };
        }
    } else {
        // Up to the trained context, or to minContextSize when that asks for more (llama.cpp allows it).
        const cap = Math.min(pad(Math.max(trained, minContext), STEP) * parallel, LIMITS.contextSize);
        for (const [k, v] of ladder) {
            const context = maxContext(parallel, k, v, cap);
            if (context < minContext * parallel) continue;
            if (prefer === 'quality') {
                choice = { contextSize: context, parallel, k, v, reason: `K ${k} / V ${v} are the most precise types that give ${minContext} tokens per sequence` };
                break;
            }
            // 'context': the most precise types that reach the trained context, else the longest context.
            if (!choice || context > choice.contextSize) {
                choice = { contextSize: context, parallel, k, v, reason: context >= cap ? `the model's full trained context fits with K ${k} / V ${v}` : `K ${k} / V ${v} give the longest context that fits` };
            }
            if (context >= cap) break;
        }
    }
    if (!choice) {
        const smallestEstimate = candidate(minContext * parallel, parallel, ...smallest);
        const over = overRemote(smallestEstimate);
        if (over) throw remoteShortfall(over, remote.get(over.name)!, `Even the smallest settings (K ${smallest[0]} / V ${smallest[1]}, ${minContext} tokens x ${parallel} sequences)`);
        const needed = planned(smallestEstimate);
        const how = simulator ? '' : ' (header estimate, with a 15% margin on its approximate compute figure; give the model as a file path for an exact dry run)';
        const small = estimate({ contextSize: STEP, ...extra });
        const weights = small.weights.bytes - small.devices.filter((d) => remote.has(d.name)).reduce((sum, d) => sum + d.weightsBytes, 0);
        throw new LlamaError(
            'INSUFFICIENT_MEMORY',
            weights > budget
                ? `The weights alone need ${fmt(weights)}, ${fmt(weights - budget)} more than the budget of ${fmt(budget)}: use a smaller or more quantized model`
                : `Even the smallest settings (K ${smallest[0]} / V ${smallest[1]}, ${minContext} tokens x ${parallel} sequences) need ${fmt(needed)}${how}, ` +
                      `${fmt(needed - budget)} more than the budget of ${fmt(budget)}: raise the budget or lower minContextSize`,
        );
    }

    // Without a dry run the compute figure is approximate: step down if it was optimistic.
    const final = choice;
    const estimateChoice = (c: { contextSize: number; parallel: number }) =>
        estimate({ contextSize: c.contextSize, parallel: c.parallel, cacheTypeK: final.k, cacheTypeV: final.v, ...extra });
    let chosen = estimateChoice(choice);
    while (!fitsEstimate(chosen)) {
        if (prefer === 'parallel' && choice.parallel > 1) {
            choice.parallel -= 1;
            choice.contextSize = pad(minContext, STEP) * choice.parallel;
        } else if (prefer !== 'parallel' && choice.contextSize - STEP * choice.parallel >= minContext * choice.parallel) {
            choice.contextSize -= STEP * choice.parallel;
        } else {
            const over = overRemote(chosen);
            if (over) throw remoteShortfall(over, remote.get(over.name)!, 'The smallest settings that meet minContextSize');
            throw new LlamaError(
                'INSUFFICIENT_MEMORY',
                `The smallest settings that meet minContextSize need ${fmt(hostBytes(chosen))}, ` +
                    `${fmt(hostBytes(chosen) - budget)} more than the budget of ${fmt(budget)}: raise the budget or lower minContextSize`,
            );
        }
        chosen = estimateChoice(choice);
    }
    return {
        settings: { contextSize: chosen.config.contextSize, parallel: choice.parallel, cacheTypeK: choice.k, cacheTypeV: choice.v, flashAttention: 'auto' },
        estimate: chosen,
        reason: `${choice.reason}; ${simulator ? 'dry-run' : 'estimated'} ${remote.size > 0 ? 'host ' : ''}total ${fmt(hostBytes(chosen))} of ${fmt(budget)}` +
            chosen.devices.filter((d) => remote.has(d.name)).map((d) => `, ${d.name} ${fmt(deviceBytes(d))} of ${fmt(remote.get(d.name)!)}`).join(''),
    };
}

/** INSUFFICIENT_MEMORY for a remote device over its budget: what it needs and what to change. */
function remoteShortfall(d: MemoryEstimate['devices'][number], budget: number, what: string): LlamaError {
    const needs = deviceBytes(d);
    const weights = d.weightsBytes > budget ? ` (its weights alone need ${fmt(d.weightsBytes)})` : '';
    return new LlamaError(
        'INSUFFICIENT_MEMORY',
        `${what} need ${fmt(needs)} on ${d.name} (${d.endpoint}), ${fmt(needs - budget)} more than its budget of ${fmt(budget)}${weights}: ` +
            'raise its deviceBudgets entry, give it fewer layers (tensorSplit, gpuLayers) or lower minContextSize',
    );
}
