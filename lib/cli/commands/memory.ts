import { writeFileSync } from 'node:fs';
import { LlamaContext } from '../../context/context.js';
import { estimateFromHeader, estimateMemory, KV_ONLY_LOAD, type MemoryEstimate } from '../../memory/estimate.js';
import { isRemoteModel, readModelHeader } from '../../download/model-header.js';
import { type GgufMetadata } from '../../gguf/types.js';
import { KV_PRESETS, type KvPreset } from '../../options/kv-cache.js';
import { loadModel } from '../flags/load-model.js';
import { modelFactsFromGguf } from '../../memory/model-facts.js';
import type { MemoryReport } from '../../memory/report.js';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../flags/args.js';
import { formatBytes, parseBytes } from '../format/bytes.js';
import { kvChartSvg } from '../format/chart.js';
import { contextFlags, contextOptionsFromFlags } from '../flags/context-flags.js';
import { modelFlags, modelOptionsFromFlags } from '../flags/model-flags.js';

export const memoryFlags: FlagSpec[] = [
    { names: ['-m', '--model'], key: 'model', type: 'string', help: 'GGUF model file, hf:owner/repo/file.gguf or an https:// URL (its header only is read) (required)' },
    ...contextFlags,
    ...modelFlags,
    { names: ['--simulate'], key: 'simulate', type: 'bool', help: "estimate with llama.cpp's dry run (exact compute) instead of the header" },
    { names: ['--live'], key: 'live', type: 'bool', help: 'also create the context and show the measured figures and the difference' },
    { names: ['--budget'], key: 'budget', type: 'string', help: 'memory budget (e.g. 6GiB): drawn on the chart' },
    { names: ['--chart'], key: 'chart', type: 'string', help: 'write an SVG chart of KV size against context length per preset' },
    { names: ['--json'], key: 'json', type: 'bool', help: 'print JSON' },
];

export const memoryUsage = `usage: llama-kv memory -m model.gguf [-c 32768] [-np 2] [-ctk q8_0 -ctv q4_0] [--no-mmap] [--no-repack] [--gpu none|vulkan|... -ngl N -dev D -ts 3,1 --n-cpu-moe N --rpc host:port,...] [--simulate] [--live] [--json] [--chart kv.svg [--budget 6GiB]]\n${flagHelp(memoryFlags)}`;

type Row = [name: string, estimate: number, live?: number];

function rows(e: MemoryEstimate | MemoryReport): Row[] {
    return [
        [`kv cache (K ${e.kv.k.type} / V ${e.kv.v.type})`, e.kv.bytes],
        ['  K', e.kv.k.bytes],
        ['  V', e.kv.v.bytes],
        ['weights', e.weights.bytes],
        ['compute buffers', e.compute.bytes],
        ['output buffer', e.output.bytes],
        ['total', e.total.bytes],
    ];
}

export async function memory(argv: readonly string[]): Promise<number> {
    const { flags, positional } = parseFlags(argv, memoryFlags);
    const path = (flags.model as string | undefined) ?? positional[0];
    if (!path) throw new UsageError('-m/--model is required');
    const budget = typeof flags.budget === 'string' ? parseBytes('--budget', flags.budget) : undefined;
    const options = contextOptionsFromFlags(flags);
    if (flags.live && isRemoteModel(path)) throw new UsageError(`--live needs a local model file: download it first with \`llama-kv pull ${path}\``);
    const gguf = await readModelHeader(path); // read once (a URL's with range requests): for the header estimate and the chart
    const simulate = flags.simulate === true;
    const load = modelOptionsFromFlags(flags);
    const estimate = await estimateMemory({ model: simulate ? path : gguf, ...options, ...load, simulate });

    let live: MemoryReport | undefined;
    if (flags.live) {
        // The header estimate assumes the CPU: without --simulate the live context is measured there too.
        const model = await loadModel({ path, ...(simulate ? {} : { gpu: false as const }), ...load });
        try {
            const ctx = new LlamaContext({ model, ...options });
            live = ctx.memoryReport();
            ctx.dispose();
        } finally {
            model.dispose();
        }
    }
    if (typeof flags.chart === 'string') writeChart(flags.chart, path, gguf, estimate, budget);

    if (flags.json) {
        process.stdout.write(JSON.stringify({ model: path, estimate, ...(live ? { live } : {}) }) + '\n');
        return 0;
    }
    const c = estimate.config;
    process.stdout.write(
        `${path}\ncontextSize ${c.contextSize}, parallel ${c.parallel}, K ${c.cacheTypeK} / V ${c.cacheTypeV}, flash attention ${c.flashAttention}, ` +
            `ubatch ${c.ubatchSize}; estimate from ${estimate.source.compute === 'simulate' ? "llama.cpp's dry run" : 'the GGUF header'}\n\n`,
    );
    const liveRows = live ? rows(live) : [];
    const table = rows(estimate).map(([name, bytes], i): string[] => {
        const exact = exactness(estimate, name);
        const cells = [name.padEnd(30), formatBytes(bytes).padStart(12), exact.padEnd(7)];
        if (live) {
            const measured = liveRows[i][1];
            const diff = bytes - measured;
            cells.push(formatBytes(measured).padStart(12), (diff === 0 ? 'same' : `${diff > 0 ? '+' : ''}${formatBytes(diff)}`).padStart(12));
        }
        return cells;
    });
    const header = ['component'.padEnd(30), 'estimate'.padStart(12), ''.padEnd(7), ...(live ? ['live'.padStart(12), 'difference'.padStart(12)] : [])];
    for (const line of [header, ...table]) process.stdout.write(line.join('  ').trimEnd() + '\n');
    process.stdout.write(`\nweights by buffer type (estimate): ${weightBuffersText(estimate.weights)}\n`);
    if (live) process.stdout.write(`weights by buffer type (live): ${weightBuffersText(live.weights)}\n`);
    if (estimate.devices.length > 1) process.stdout.write(`by device (estimate): ${devicesText(estimate.devices)}\n`);
    if (live && live.devices.length > 1) process.stdout.write(`by device (live): ${devicesText(live.devices)}\n`);
    for (const note of estimate.notes) process.stdout.write(`\nnote: ${note}\n`);
    if (typeof flags.chart === 'string') process.stdout.write(`\nchart written to ${flags.chart}\n`);
    return 0;
}

/** `CPU_Mapped 17.88 MiB mapped (2.25 MiB of it holds tensors placed elsewhere), AMX 17.88 MiB allocated`. */
function weightBuffersText(w: MemoryReport['weights']): string {
    return w.byBufferType
        .map((b) => {
            const elsewhere = b.mapped && b.elsewhereBytes ? ` (${formatBytes(b.elsewhereBytes)} of it holds tensors placed elsewhere)` : '';
            return `${b.bufferType} ${formatBytes(b.bytes)} ${b.mapped ? 'mapped' : 'allocated'}${elsewhere}`;
        })
        .join(', ');
}

/** `Vulkan0 weights 30.1 MiB, KV 4.0 MiB, compute 12.0 MiB; CPU weights 2.0 MiB, ...` (a remote device with its server: `RPC0 (10.0.0.2:50052) weights ...`). */
function devicesText(devices: MemoryEstimate['devices']): string {
    return devices
        .map((d) => `${d.name}${d.endpoint ? ` (${d.endpoint})` : ''} weights ${formatBytes(d.weightsBytes)}, KV ${formatBytes(d.kvBytes)}, compute ${formatBytes(d.computeBytes)}, output ${formatBytes(d.outputBytes)}`)
        .join('; ');
}

function exactness(e: MemoryEstimate, row: string): string {
    const key = row.startsWith('kv') || row.startsWith('  ') ? 'kv' : row.startsWith('weights') ? 'weights' : row.startsWith('compute') ? 'compute' : row.startsWith('output') ? 'output' : null;
    if (key === null) return Object.values(e.exact).every(Boolean) ? 'exact' : 'approx';
    return e.exact[key] ? 'exact' : 'approx';
}

function writeChart(file: string, path: string, gguf: GgufMetadata, estimate: MemoryEstimate, budget: number | undefined): void {
    const facts = modelFactsFromGguf(gguf);
    const c = estimate.config;
    const maxContext = Math.max(c.contextSize, facts.trainedContextSize || 0, 4096);
    const xs = Array.from({ length: 33 }, (_, i) => Math.max(256, Math.round((maxContext * i) / 32 / 256) * 256));
    const series = [];
    for (const preset of Object.keys(KV_PRESETS) as KvPreset[]) {
        try {
            series.push({
                name: `${preset} (${KV_PRESETS[preset].cacheTypeK}/${KV_PRESETS[preset].cacheTypeV})`,
                points: xs.map((x): [number, number] => [x, estimateFromHeader(gguf, facts, { contextSize: x, parallel: c.parallel, kvPreset: preset }, KV_ONLY_LOAD).kv.bytes]),
            });
        } catch {
            // a preset this model cannot use (e.g. head dimension not a multiple of 32) is left out
        }
    }
    const other = estimate.weights.bytes + estimate.compute.bytes + estimate.output.bytes;
    const svg = kvChartSvg({
        title: `KV cache size by context length: ${facts.architecture}, ${facts.layerCount} layers`,
        subtitle: `${path.split(/[\\/]/).pop()} - parallel ${c.parallel}; lower is smaller`,
        series,
        ...(budget !== undefined
            ? {
                  budget: {
                      bytes: Math.max(0, budget - other),
                      label:
                          budget > other
                              ? `KV budget: ${formatBytes(budget)} minus weights, compute, output`
                              : `no room for a KV cache: weights, compute and output need ${formatBytes(other)} of ${formatBytes(budget)}`,
                  },
              }
            : {}),
    });
    writeFileSync(file, svg);
}
