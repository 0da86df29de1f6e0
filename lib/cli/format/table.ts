/** Fixed-width text tables for the CLI's reports: text columns left-aligned, figures right-aligned. */

/**
 * `header` and `rows` as lines of padded cells; the first `left` columns are left-aligned.
 * With `markdown`, cells are separated by ` | ` under a Markdown rule (figures' columns
 * right-aligned with `:`); otherwise by two spaces.
 */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[], options: { left?: number; markdown?: boolean } = {}): string {
    const left = options.left ?? 1;
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const pad = (cells: readonly string[]) => cells.map((c, i) => (i < left ? c.padEnd(widths[i]) : c.padStart(widths[i])));
    if (!options.markdown) return [header, ...rows].map((cells) => pad(cells).join('  ')).join('\n');
    const line = (cells: readonly string[]) => `| ${pad(cells).join(' | ')} |`;
    const rule = `|${widths.map((w, i) => `${'-'.repeat(w + 1)}${i < left ? '-' : ':'}`).join('|')}|`;
    return [line(header), rule, ...rows.map(line)].join('\n');
}
