// `npm run lint:cycles`: the import graph of lib/ has no cycles, and no module imports
// from a higher layer (ARCHITECTURE.md: native and gguf at the bottom, then backends and
// options, then memory, model, context, and calibrate and cli on top). Every import
// counts, `import type` included: a type that points up is a design arrow that points up.
//
// Reads the sources with TypeScript's pre-processor (no build needed); exits 1 and lists
// each cycle and each upward import when there is one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lib = join(root, 'lib');

/** Layer of each folder of lib/ (and of each file directly in lib/); a module may import its own layer or lower. */
export const LAYERS = {
    'errors.ts': 0,
    'warnings.ts': 0,
    'weak-set.ts': 0,
    // The defaults import nothing of ours, so that every layer (gguf/ too) reads them from one file.
    'options/defaults.ts': 0,
    native: 1,
    gguf: 1,
    'logger.ts': 3,
    backends: 3,
    options: 3,
    demo: 3,
    // Models from the network: URIs, downloads, remote GGUF headers (memory/ reads them).
    download: 3,
    memory: 4,
    model: 5,
    context: 6,
    embedding: 6,
    calibrate: 7,
    chat: 7,
    cli: 8,
    'index.ts': 9,
    'inspect-model-child.ts': 9,
};

function walk(dir) {
    return readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? walk(path) : name.endsWith('.ts') ? [path] : [];
    });
}

/** lib-relative posix path of each module, and the lib-relative modules it imports. */
export function importGraph(files = walk(lib)) {
    const graph = new Map();
    for (const file of files) {
        const from = relative(lib, file).split('\\').join('/');
        const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
        const targets = new Set();
        for (const { fileName } of info.importedFiles) {
            if (!fileName.startsWith('.')) continue;
            targets.add(posix.normalize(posix.join(posix.dirname(from), fileName)).replace(/\.js$/, '.ts'));
        }
        graph.set(from, [...targets].sort());
    }
    return graph;
}

/** The strongly connected components with more than one module, or a module importing itself (Tarjan). */
export function cycles(graph) {
    let index = 0;
    const stack = [];
    const state = new Map();
    const found = [];
    const visit = (v) => {
        const s = { index, low: index, onStack: true };
        index++;
        state.set(v, s);
        stack.push(v);
        for (const w of graph.get(v) ?? []) {
            if (!graph.has(w)) continue;
            const t = state.get(w);
            if (!t) {
                visit(w);
                s.low = Math.min(s.low, state.get(w).low);
            } else if (t.onStack) {
                s.low = Math.min(s.low, t.index);
            }
        }
        if (s.low === s.index) {
            const component = [];
            let w;
            do {
                w = stack.pop();
                state.get(w).onStack = false;
                component.push(w);
            } while (w !== v);
            if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
        }
    };
    for (const v of graph.keys()) if (!state.has(v)) visit(v);
    return found;
}

/** The layer of a lib-relative module: its own entry's, else its top folder's (or its name's, for a file in lib/). */
export function layerOf(module) {
    return LAYERS[module] ?? LAYERS[module.split('/')[0]];
}

/** Imports that point from a lower layer to a higher one, and modules with no layer. */
export function layerViolations(graph) {
    const problems = [];
    for (const [from, targets] of graph) {
        const own = layerOf(from);
        if (own === undefined) {
            problems.push(`${from}: not in a known layer (add its folder to LAYERS in scripts/lint-cycles.mjs)`);
            continue;
        }
        for (const to of targets) {
            const theirs = layerOf(to);
            if (theirs !== undefined && theirs > own) problems.push(`${from} (layer ${own}) imports ${to} (layer ${theirs})`);
        }
    }
    return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
    const graph = importGraph();
    const found = cycles(graph);
    const upward = layerViolations(graph);
    for (const c of found) console.log(`cycle: ${c.join(' <-> ')}`);
    for (const p of upward) console.log(`layer: ${p}`);
    const edges = [...graph.values()].reduce((n, t) => n + t.length, 0);
    console.log(`${graph.size} modules, ${edges} imports: ${found.length} cycles, ${upward.length} upward imports`);
    process.exitCode = found.length > 0 || upward.length > 0 ? 1 : 0;
}
