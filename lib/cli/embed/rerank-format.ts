/** How `rerank` prints its result on a terminal: one line per document, most relevant first. */
import type { RankedDocument } from '../../embedding/ranking-context.js';
import { abbreviate } from './format.js';

/** rank, score, index, document: a line each, under a header. */
export function formatRanked(ranked: readonly RankedDocument[]): string {
    const scores = ranked.map((r) => r.score.toFixed(3));
    const rankWidth = Math.max(4, String(ranked.length).length);
    const scoreWidth = Math.max(5, ...scores.map((s) => s.length));
    const indexWidth = Math.max(5, ...ranked.map((r) => String(r.index).length));
    const header = `${'rank'.padStart(rankWidth)}  ${'score'.padStart(scoreWidth)}  ${'index'.padStart(indexWidth)}  document`;
    const lines = ranked.map((r, i) => `${String(i + 1).padStart(rankWidth)}  ${scores[i].padStart(scoreWidth)}  ${String(r.index).padStart(indexWidth)}  ${abbreviate(r.document, 72)}`);
    return [header, ...lines].join('\n') + '\n';
}
