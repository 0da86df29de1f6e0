#!/usr/bin/env node
// Renders the measured benchmark figures of bench-results/*.json into docs/performance.md,
// between <!-- bench-table:start --> and <!-- bench-table:end -->: a short table with one
// line per measurement run, then each run's figures in a collapsed section.
//
//   node scripts/bench-table.mjs            rewrite the region of docs/performance.md
//   node scripts/bench-table.mjs --check    exit 1 if the region differs from what the JSON gives
//   options: --doc FILE (default docs/performance.md), --results DIR (default bench-results)
//
// A results file is named YYYY-MM-DD-<what>.json and has "schema": "llama-kv-bench-result/1"
// (the reports `npm run bench` writes, bench-results/bench-<timestamp>.json, are another
// shape and are not read). Exit codes: 0 done (or up to date), 1 out of date (--check),
// 2 a bad file or a missing region. Plain Node, no dependencies.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SCHEMA = 'llama-kv-bench-result/1';
const START = '<!-- bench-table:start -->';
const END = '<!-- bench-table:end -->';
const FILE_NAME = /^\d{4}-\d{2}-\d{2}-[a-z0-9][a-z0-9._-]*\.json$/;
/** The target of the ours / llama.cpp ratios (RATIO_TARGET of the bench report). */
const RATIO_TARGET = 0.97;

class BadInput extends Error {}

function option(argv, name, fallback) {
    const i = argv.indexOf(name);
    return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

const fixed = (n, digits) => (typeof n === 'number' ? n.toFixed(digits) : '');
const tps = (n) => fixed(n, 1);
const ratio = (n) => fixed(n, 3);
const range = (values, format = String) => {
    const finite = values.filter((v) => typeof v === 'number');
    if (finite.length === 0) return '';
    const lo = Math.min(...finite);
    const hi = Math.max(...finite);
    return lo === hi ? format(lo) : `${format(lo)}–${format(hi)}`;
};

function table(header, rows, align) {
    const sep = header.map((_, i) => (align?.[i] === 'r' ? '--:' : '---'));
    return [header, sep, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function cpuText(cpu) {
    return [cpu.name ?? cpu.model, cpu.vcpus ? `${cpu.vcpus} vCPUs` : null].filter(Boolean).join(', ');
}

function modelNames(r) {
    if (r.model?.name) return r.model.name;
    if (Array.isArray(r.models)) return r.models.map((m) => m.name).join(', ');
    if (Array.isArray(r.rows)) return [...new Set(r.rows.map((row) => row.model).filter(Boolean))].join(', ');
    return '';
}

/** Checks the fields every renderer relies on; throws BadInput naming the file and field. */
function validate(file, r) {
    const need = (cond, what) => {
        if (!cond) throw new BadInput(`${file}: ${what}`);
    };
    need(r !== null && typeof r === 'object', 'not a JSON object');
    need(r.schema === SCHEMA, `"schema" must be "${SCHEMA}"`);
    need(typeof r.date === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(r.date), '"date" must be YYYY-MM-DD');
    need(basename(file).startsWith(r.date), `the file name must start with its "date" (${r.date})`);
    need(typeof r.title === 'string' && r.title.length > 0, '"title" is missing');
    need(typeof r.command === 'string' && r.command.length > 0, '"command" is missing');
    need(typeof r.benchmark === 'string' && RENDERERS[r.benchmark] !== undefined, `"benchmark" must be one of ${Object.keys(RENDERERS).join(', ')}`);
    need(r.cpu && typeof r.cpu.model === 'string' && typeof r.cpu.flags === 'string', '"cpu" needs "model" and "flags"');
    if (r.rows !== undefined) need(Array.isArray(r.rows), '"rows" must be an array');
    if (r.notes !== undefined) need(Array.isArray(r.notes) && r.notes.every((n) => typeof n === 'string'), '"notes" must be an array of strings');
}

/** `npm run bench`: llama-kv against llama-bench. */
const bench = {
    headline(r) {
        const pp = `pp${r.settings?.promptTokens ?? ''}`;
        const tg = `tg${r.settings?.generatedTokens ?? ''}`;
        if (Array.isArray(r.rows) && r.rows.length > 0) {
            const ratios = r.rows.flatMap((row) => [row.pp?.ratio, row.tg?.ratio]).filter((x) => typeof x === 'number');
            const met = ratios.filter((x) => x >= RATIO_TARGET).length;
            return `ours / llama.cpp: ${pp} ${range(r.rows.map((row) => row.pp?.ratio), ratio)}, ${tg} ${range(r.rows.map((row) => row.tg?.ratio), ratio)}; ${met} of ${ratios.length} ratios ≥ ${RATIO_TARGET}`;
        }
        const parts = [];
        if (typeof r.ratiosAtTarget === 'number') parts.push(`${r.ratiosAtTarget} of ${r.ratios} ratios ≥ ${RATIO_TARGET}`);
        if (r.lowestRatio) parts.push(`lowest ${r.lowestRatio.test} ${r.lowestRatio.kv} at ${r.lowestRatio.threads} threads: ${ratio(r.lowestRatio.ratio)}`);
        return parts.join('; ');
    },
    details(r) {
        const out = [];
        const pp = `pp${r.settings?.promptTokens ?? ''}`;
        const tg = `tg${r.settings?.generatedTokens ?? ''}`;
        if (Array.isArray(r.rows) && r.rows.length > 0) {
            out.push(table(
                ['threads', 'K/V', `${pp} ours t/s`, `${pp} llama.cpp t/s`, 'ratio', `${tg} ours t/s`, `${tg} llama.cpp t/s`, 'ratio'],
                r.rows.map((row) => [row.threads, row.kv, tps(row.pp.ours), tps(row.pp.llamaCpp), ratio(row.pp.ratio), tps(row.tg.ours), tps(row.tg.llamaCpp), ratio(row.tg.ratio)]),
                ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
            ));
        }
        if (Array.isArray(r.latency) && r.latency.length > 0) {
            out.push(table(
                ['threads', 'K/V', `TTFT ${r.settings?.promptTokens ?? ''}-token prompt`, 'event-loop lag p50 / p99 / max'],
                r.latency.map((row) => [row.threads, row.kv, `${row.ttftMs} ms`, `${fixed(row.eventLoopLagMs.p50, 2)} / ${fixed(row.eventLoopLagMs.p99, 2)} / ${fixed(row.eventLoopLagMs.max, 2)} ms`]),
                ['l', 'l', 'r', 'r'],
            ));
        }
        const bullets = [];
        if (r.eventLoopLagSummaryMs) {
            const l = r.eventLoopLagSummaryMs;
            bullets.push(`Event-loop lag: p99 ${l.p99Min}-${l.p99Max} ms, max ${l.max} ms.`);
        }
        if (r.eventLoopLagMs) {
            const l = r.eventLoopLagMs;
            bullets.push(`Event-loop lag: max ${l.max} ms (p99 ${l.p99} ms), ${l.kv} at ${l.threads} thread${l.threads === 1 ? '' : 's'}.`);
        }
        if (r.peakRss) {
            const m = r.peakRss;
            bullets.push(
                `Peak RSS (${m.threads} threads, ${m.kv} cache, ${m.workload}): ours ${fixed(m.oursMiB, 1)} MiB, llama-bench ${fixed(m.llamaBenchMiB, 1)} MiB, ratio **${fixed(m.ratio, 2)}**` +
                    (typeof m.nodeBaselineMiB === 'number' ? `; node with the addon loaded and no model: ${m.nodeBaselineMiB} MiB; ours without it: ${m.oursLessNodeBaselineMiB} MiB.` : '.'),
            );
        }
        if (r.modelLoadMmap) {
            const l = r.modelLoadMmap;
            bullets.push(`Model load with mmap: ours ${l.oursMs} ms, llama.cpp ${l.llamaCppMs} ms, ratio **${fixed(l.ratio, 2)}**.`);
        }
        if (typeof r.readGgufMetadataMedianMs === 'number') bullets.push(`readGgufMetadata of the model file: ${r.readGgufMetadataMedianMs} ms median.`);
        if (r.nativeTimings) {
            const n = r.nativeTimings;
            bullets.push(`${tg} at ${n.threads} thread${n.threads === 1 ? '' : 's'}, ${n.kv}: ${n.tgInWorkerTokensPerSecond} t/s by the native (in-worker) timings, ${n.tgSeenFromJsTokensPerSecond} t/s seen from JS.`);
        }
        if (r.previousRun) bullets.push(`The run before it (${r.previousRun.note ?? 'same setup'}): ${r.previousRun.ratiosAtTarget} of ${r.previousRun.ratios} ratios ≥ ${RATIO_TARGET}.`);
        if (r.pooled) {
            const p = r.pooled;
            bullets.push(
                `Pooled with [${p.with}](../bench-results/${p.with}) (${p.pairsPerConfiguration} interleaved pairs per configuration, ${p.statistic}): median pair ratio ${ratio(p.medianPairRatio.pp)} for pp and ${ratio(p.medianPairRatio.tg)} for tg; per configuration ${range(p.perConfigurationMedianRange)}.`,
            );
        }
        if (bullets.length > 0) out.push(bullets.map((b) => `- ${b}`).join('\n'));
        return out;
    },
};

/** The build from source against the prebuilt package (`npm run bench -- --addon ...`). */
const addons = {
    headline(r) {
        return `${tgLabel(r)} source / prebuilt ${range(r.rows.map((row) => row.tg.sourceRatio), ratio)}; old -march=native / prebuilt ${range(r.rows.map((row) => row.tg.oldRatio), ratio)}`;
    },
    details(r) {
        const out = [table(
            ['model', 'threads', 'K/V', `${tgLabel(r)} source t/s`, `${tgLabel(r)} prebuilt t/s`, 'source / prebuilt', `${tgLabel(r)} old t/s`, 'old / prebuilt'],
            r.rows.map((row) => [row.model, row.threads, row.kv, tps(row.tg.source), tps(row.tg.prebuilt), ratio(row.tg.sourceRatio), tps(row.tg.old), ratio(row.tg.oldRatio)]),
            ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r'],
        )];
        const bullets = [];
        if (r.addons) bullets.push(`Addons: source: ${r.addons.source}; prebuilt: ${r.addons.prebuilt}; old: ${r.addons.old}.`);
        for (const p of r.ppRatioRanges ?? []) {
            const parts = [];
            if (p.sourceRatio) parts.push(`source / prebuilt ${range(p.sourceRatio, ratio)}`);
            if (p.oldRatio) parts.push(`old / prebuilt ${range(p.oldRatio, ratio)}`);
            bullets.push(`pp512${p.model ? ` on ${p.model}` : ''}: ${parts.join(', ')}.`);
        }
        if (r.perRoundSourceRatioRange) bullets.push(`Per-round source / prebuilt ratios: ${range(r.perRoundSourceRatioRange, (x) => fixed(x, 2))}.`);
        out.push(bullets.map((b) => `- ${b}`).join('\n'));
        return out;
    },
};

function tgLabel(r) {
    return `tg${r.settings?.generatedTokens ?? 128}`;
}

/** `npm run bench:repack`: repack: false against the default. */
const repack = {
    headline(r) {
        return `repack: false / default: ${r.rows.map((row) => `${row.model} pp ${row.ppRatio.map(ratio).join(', ')}, tg ${row.tgRatio.map(ratio).join(', ')}`).join('; ')}`;
    },
    details(r) {
        const pp = `pp${r.settings?.promptTokens ?? ''}`;
        const tg = `tg${r.settings?.generatedTokens ?? ''}`;
        const runs = r.settings?.runs ?? 1;
        return [table(
            ['model', 'weights with repack (default)', 'with `repack: false`', `${pp} \`repack: false\` / default`, `${tg} \`repack: false\` / default`],
            r.rows.map((row) => [`${row.model} (${row.weightType}, ${row.fileMiB} MiB)`, row.weightsRepack, row.weightsNoRepack, row.ppRatio.map(ratio).join(', '), row.tgRatio.map(ratio).join(', ')]),
            ['l', 'l', 'l', 'r', 'r'],
        ) + (runs > 1 ? `\n\nOne ratio per run (${runs} runs).` : '')];
    },
};

/** `npm run bench -- --parallel`: N concurrent requests against llama-batched-bench. */
const parallel = {
    headline(r) {
        const rows = r.rows ?? [];
        const parts = [`S_TG ours / llama.cpp ${range(rows.map((row) => row.tg?.ratio), ratio)}`];
        const four = rows.filter((row) => row.npl === 4);
        if (four.length > 0) {
            parts.push(`4 sequences vs 1: ours ${range(four.map((row) => row.speedupVs1), (x) => `×${fixed(x, 2)}`)}, llama.cpp ${range(four.map((row) => row.llamaCppSpeedupVs1), (x) => `×${fixed(x, 2)}`)}`);
        }
        return parts.join('; ');
    },
    details(r) {
        const out = [table(
            ['npl', 'K/V', 'S_TG ours t/s', 'S_TG llama.cpp t/s', 'ratio', 'S ours t/s', 'S llama.cpp t/s', 'ratio', 'S_TG ours vs npl 1', 'S_TG llama.cpp vs npl 1', 'lag p99', 'outside llama_decode per step'],
            (r.rows ?? []).map((row) => [
                row.npl, row.kv, tps(row.tg.ours), tps(row.tg.llamaCpp), ratio(row.tg.ratio), tps(row.total.ours), tps(row.total.llamaCpp), ratio(row.total.ratio),
                `×${fixed(row.speedupVs1, 2)}`, `×${fixed(row.llamaCppSpeedupVs1, 2)}`, `${fixed(row.lagP99Ms, 2)} ms`,
                typeof row.outsideDecodeMsPerStep === 'number' ? `${fixed(row.outsideDecodeMsPerStep, 3)} ms (${fixed(row.outsideDecodePercent, 1)}%)` : 'n/a',
            ]),
            ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
        )];
        return out;
    },
};

/** `npm run bench:state`: restoring a saved state against decoding its tokens again. */
const state = {
    headline(r) {
        return (r.rows ?? [])
            .map((row) => `${row.kv}: restore ×${fixed(row.decodeOverRestoreBuffer, 0)} (Buffer), ×${fixed(row.decodeOverRestoreFile, 0)} (file) faster than decoding ${row.tokens} tokens; ${fixed(row.stateBytesPerToken, 1)} B/token for ${row.kvBytesPerCell} B/cell of KV`)
            .join('; ');
    },
    details(r) {
        return [table(
            ['K/V', 'tokens', 'decode', 'restore (Buffer)', 'restore (file)', 'decode / restore (Buffer)', 'decode / restore (file)', 'file', 'state B/token', 'KV B/cell', 'kv.state predicted'],
            (r.rows ?? []).map((row) => [
                row.kv, row.tokens, `${fixed(row.decodeMs, 0)} ms`, `${fixed(row.restoreBufferMs, 1)} ms`, `${fixed(row.restoreFileMs, 1)} ms`,
                `×${fixed(row.decodeOverRestoreBuffer, 0)}`, `×${fixed(row.decodeOverRestoreFile, 0)}`, `${fixed(row.fileBytes / 2 ** 20, 2)} MiB`,
                fixed(row.stateBytesPerToken, 1), row.kvBytesPerCell, row.predictedMatches ? 'exactly' : 'no',
            ]),
            ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
        )];
    },
};

/** `npm run bench -- --embed`: embedBatch() against llama-embedding, and one embed() per text. */
const embed = {
    headline(r) {
        const rows = r.rows ?? [];
        const parts = [`texts/s ours / llama-embedding ${range(rows.map((row) => row.ratio), ratio)}`];
        parts.push(`ours ${range(rows.map((row) => row.ours?.textsPerSecond), tps)} texts/s, llama-embedding ${range(rows.map((row) => row.llamaCpp?.textsPerSecond), tps)}`);
        parts.push(`embedBatch / one embed() per text ${range(rows.map((row) => row.batchingGain), (x) => `×${fixed(x, 2)}`)}`);
        return parts.join('; ');
    },
    details(r) {
        const out = [table(
            ['threads', 'ours texts/s', 'ours tokens/s', 'llama-embedding texts/s', 'llama-embedding tokens/s', 'ratio', 'one per call texts/s', 'one per call tokens/s', 'embedBatch / one per call'],
            (r.rows ?? []).map((row) => [
                row.threads, tps(row.ours.textsPerSecond), tps(row.ours.tokensPerSecond), tps(row.llamaCpp.textsPerSecond), tps(row.llamaCpp.tokensPerSecond), ratio(row.ratio),
                tps(row.single.textsPerSecond), tps(row.single.tokensPerSecond), `×${fixed(row.batchingGain, 2)}`,
            ]),
            ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
        )];
        const bullets = (r.rows ?? []).map((row) =>
            `${row.threads} thread${row.threads === 1 ? '' : 's'}: ours ${fixed(row.ours.ms, 0)} ms for all texts; llama-embedding ${fixed(row.llamaCpp.ms, 0)} ms, of which its decodes ${fixed(row.llamaCpp.promptEvalMs, 0)} ms ` +
                `(${row.llamaCpp.decodes} llama_decode calls), its whole process ${fixed(row.llamaCpp.processMs, 0)} ms with the model load; one embed() per text ${fixed(row.single.ms, 0)} ms.`);
        if (bullets.length > 0) out.push(bullets.map((b) => `- ${b}`).join('\n'));
        return out;
    },
};

/** `npm run bench:rpc`: a model split across two loopback RPC servers against the CPU alone, and what crosses the network. */
const rpc = {
    headline(r) {
        const k = r.llamaKv;
        const b = r.llamaBench;
        const g = r.perGeneratedToken;
        return `RPC / CPU: pp ${ratio(k.rpc.pp / k.cpu.pp)}, tg ${ratio(k.rpc.tg / k.cpu.tg)}` +
            (b ? `; ours / llama-bench over RPC: pp ${ratio(k.rpc.pp / b.rpc.pp)}, tg ${ratio(k.rpc.tg / b.rpc.tg)}` : '') +
            `; per generated token ${fixed(g.bytesToServer / 1000, 1)} KB out, ${fixed(g.bytesToClient / 1000, 1)} KB back, ${fixed(g.roundTrips, 2)} round trips`;
    },
    details(r) {
        const pp = `pp${r.promptTokens}`;
        const tg = `tg${r.generatedTokens}`;
        const rows = [['llama-kv', r.llamaKv]];
        if (r.llamaBench) rows.push(['llama-bench', r.llamaBench]);
        const g = r.perGeneratedToken;
        const p = r.perPromptToken;
        return [
            table(
                ['client', `${pp} CPU t/s`, `${pp} RPC t/s`, 'RPC / CPU', `${tg} CPU t/s`, `${tg} RPC t/s`, 'RPC / CPU'],
                rows.map(([name, x]) => [name, tps(x.cpu.pp), tps(x.rpc.pp), ratio(x.rpc.pp / x.cpu.pp), tps(x.cpu.tg), tps(x.rpc.tg), ratio(x.rpc.tg / x.cpu.tg)]),
                ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
            ),
            [
                `- Per generated token: ${fixed(g.bytesToServer, 0)} bytes to the servers, ${fixed(g.bytesToClient, 0)} back, ${fixed(g.roundTrips, 2)} round trips.`,
                `- Per prompt token (${pp}): ${fixed(p.bytesToServer, 0)} bytes to the servers, ${fixed(p.bytesToClient, 0)} back, ${fixed(p.roundTrips, 3)} round trips.`,
                `- Load: ${fixed(r.loadBytesToServers / 2 ** 20, 1)} MiB to the servers; a context's creation: ${fixed(r.contextCreation.bytesToServers / 1024, 1)} KiB, ${r.contextCreation.roundTrips} round trips.`,
            ].join('\n'),
        ];
    },
};

const RENDERERS = { bench, 'bench:addons': addons, 'bench:repack': repack, 'bench:parallel': parallel, 'bench:state': state, 'bench:embed': embed, 'bench:rpc': rpc };

function settingsText(r) {
    const s = r.settings ?? {};
    const parts = [];
    for (const [key, value] of Object.entries(s)) parts.push(`${key}: ${Array.isArray(value) ? value.join(',') : value}`);
    return parts.join('; ');
}

function renderRun(file, r) {
    const renderer = RENDERERS[r.benchmark];
    const cpu = [r.cpu.model, r.cpu.flags, r.cpu.vcpus ? `${r.cpu.vcpus} vCPUs` : null, r.cpu.virtualization].filter(Boolean).join('; ');
    const machine = r.machine ? Object.entries(r.machine).map(([k, v]) => `${k} ${v}`).join(', ') : null;
    const models = r.model ? [r.model] : r.models ?? [];
    const facts = [
        `Command: \`${r.command}\`${r.duration ? ` (${r.duration})` : ''}.`,
        `CPU: ${cpu}.`,
        machine ? `Machine: ${machine}.` : null,
        r.build ? `Build: ${r.build}.` : null,
        models.some((m) => m.description) ? `Model: ${models.map((m) => (m.description ? `${m.name}, ${m.description}` : m.name)).join('; ')}.` : null,
        r.settings ? `Settings: ${settingsText(r)}.` : null,
        r.conditions ? `Conditions: ${r.conditions}.` : null,
        [r.llamaCppCommit ? `llama.cpp ${r.llamaCppCommit}` : null, r.recordedInCommit ? `recorded in llama-kv commit ${r.recordedInCommit}` : null, r.dateSource ? `date: ${r.dateSource}` : null]
            .filter(Boolean)
            .join('; ') || null,
    ].filter(Boolean).map((fact) => (fact.endsWith('.') ? fact : `${fact}.`));
    const notes = (r.notes ?? []).map((n) => `- ${n}`).join('\n');
    return [
        `<details><summary>${r.date}${r.time ? ` ${r.time}` : ''}: ${r.title}</summary>`,
        '',
        `Source: [bench-results/${file}](../bench-results/${file}). ${facts.join(' ')}`,
        '',
        ...renderer.details(r).flatMap((block) => [block, '']),
        ...(notes ? [notes, ''] : []),
        '</details>',
    ].join('\n');
}

/** The markdown between the markers, from the results files. */
export function render(resultsDir) {
    const files = readdirSync(resultsDir).filter((f) => FILE_NAME.test(f));
    const runs = files.map((file) => {
        let parsed;
        try {
            parsed = JSON.parse(readFileSync(join(resultsDir, file), 'utf8'));
        } catch (error) {
            throw new BadInput(`${file}: ${error.message}`);
        }
        validate(file, parsed);
        return { file, r: parsed };
    });
    // By file name, which starts with the date: the same order on every machine.
    runs.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
    const summary = table(
        ['date', 'CPU', 'command', 'model', 'result'],
        runs.map(({ r }) => [r.date + (r.time ? ` ${r.time}` : ''), cpuText(r.cpu), `\`${r.command}\``, modelNames(r), RENDERERS[r.benchmark].headline(r)]),
    );
    return [
        `<!-- generated by scripts/bench-table.mjs from bench-results/*.json (${runs.length} files): edit those, then run it -->`,
        '',
        summary,
        '',
        ...runs.flatMap(({ file, r }) => [renderRun(file, r), '']),
    ].join('\n');
}

function main(argv) {
    const check = argv.includes('--check');
    const doc = resolve(root, option(argv, '--doc', join('docs', 'performance.md')));
    const resultsDir = resolve(root, option(argv, '--results', 'bench-results'));
    const text = readFileSync(doc, 'utf8');
    const start = text.indexOf(START);
    const end = text.indexOf(END);
    if (start < 0 || end < start) throw new BadInput(`${relative(root, doc)} has no ${START} ... ${END} region`);
    const updated = `${text.slice(0, start + START.length)}\n${render(resultsDir)}${text.slice(end)}`;
    if (updated === text) {
        if (check) process.stdout.write(`${relative(root, doc)}: the bench table is up to date\n`);
        return 0;
    }
    if (check) {
        process.stderr.write(`${relative(root, doc)}: the bench table differs from what ${relative(root, resultsDir)}/*.json gives; run node scripts/bench-table.mjs\n`);
        return 1;
    }
    writeFileSync(doc, updated);
    process.stdout.write(`${relative(root, doc)}: bench table written\n`);
    return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    try {
        process.exitCode = main(process.argv.slice(2));
    } catch (error) {
        if (!(error instanceof BadInput) && error?.code !== 'ENOENT') throw error;
        process.stderr.write(`bench-table: ${error.message}\n`);
        process.exitCode = 2;
    }
}
