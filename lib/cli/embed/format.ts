/** How `embed` prints vectors on a terminal: a line per text (or per token), then llama-embedding's cosine similarity matrix. */

/** A text on one line of at most `max` characters: line breaks and tabs as spaces, cut with an ellipsis. */
export function abbreviate(text: string, max = 48): string {
    // eslint-disable-next-line no-control-regex
    const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
    return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** One value as llama-embedding prints it: %9.6f, or %6.0f for normalization 0 (the int16 range). */
function value(x: number, normalize: number): string {
    return normalize === 0 ? x.toFixed(0).padStart(6) : x.toFixed(6).padStart(9);
}

/** The first three and last three values of a vector (all of it when it has at most six). */
export function formatVector(v: ArrayLike<number>, normalize: number): string {
    const all = Array.from(v, (x) => value(x, normalize));
    return all.length <= 6 ? all.join(' ') : `${all.slice(0, 3).join(' ')} … ${all.slice(-3).join(' ')}`;
}

/** The euclidean norm. */
export function l2Norm(v: ArrayLike<number>): number {
    let sum = 0;
    for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
    return Math.sqrt(sum);
}

/** Cosine similarity, as llama.cpp's common_embd_similarity_cos (1 for two zero vectors, 0 for one). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < a.length; i++) {
        ab += a[i] * b[i];
        aa += a[i] * a[i];
        bb += b[i] * b[i];
    }
    if (aa === 0 || bb === 0) return aa === 0 && bb === 0 ? 1 : 0;
    return ab / Math.sqrt(aa * bb);
}

/** One embedded text: its index, its token count and its vector (one per token with pooling none). */
export interface EmbeddedText {
    text: string;
    tokens: number;
    embedding: Float32Array | Float32Array[];
}

/**
 * One line per text: index, tokens, the first and last values, the norm and the text; with
 * pooling none, a line per text and one per token under it (`pieces`: each token's text).
 */
export function formatEmbeddings(items: readonly EmbeddedText[], normalize: number, pieces?: (index: number) => string[]): string {
    const width = String(items.length - 1).length;
    const lines: string[] = [];
    items.forEach((item, i) => {
        const index = String(i).padStart(width);
        if (Array.isArray(item.embedding)) {
            lines.push(`${index}  ${item.tokens} tokens  ${abbreviate(item.text)}`);
            const names = pieces?.(i) ?? [];
            const tokenWidth = String(item.embedding.length - 1).length;
            item.embedding.forEach((v, t) => {
                lines.push(`${' '.repeat(width)}  ${String(t).padStart(tokenWidth)}  [${formatVector(v, normalize)}]  norm ${l2Norm(v).toFixed(4)}  ${JSON.stringify(names[t] ?? '')}`);
            });
        } else {
            lines.push(`${index}  [${formatVector(item.embedding, normalize)}]  norm ${l2Norm(item.embedding).toFixed(4)}  ${String(item.tokens).padStart(4)} tokens  ${abbreviate(item.text)}`);
        }
    });
    return lines.join('\n') + '\n';
}

/** The most texts whose cosine similarity matrix is printed (llama-embedding prints it for any number). */
export const MAX_MATRIX_TEXTS = 16;

/** The cosine similarity matrix of pooled vectors, as llama-embedding prints it: a row per text, ending with the text's start. */
export function formatCosineMatrix(items: readonly EmbeddedText[]): string {
    const vectors = items.map((item) => item.embedding as Float32Array);
    const header = vectors.map((_, j) => String(j).padStart(6)).join(' ');
    const rows = vectors.map((a, i) => `${String(i).padStart(3)}  ${vectors.map((b) => cosine(a, b).toFixed(2).padStart(6)).join(' ')}  ${abbreviate(items[i].text, 10)}`);
    return `cosine similarity matrix:\n     ${header}\n${rows.join('\n')}\n`;
}
