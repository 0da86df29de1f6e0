/** A self-explanatory SVG line chart of KV cache size against context length. */

export interface ChartSeries {
    name: string;
    /** [context length, bytes] */
    points: [number, number][];
}

export interface KvChartOptions {
    title: string;
    subtitle?: string;
    series: ChartSeries[];
    /** A horizontal line, e.g. the KV budget. */
    budget?: { bytes: number; label: string };
}

export const COLORS = ['#1b7837', '#2166ac', '#e08214', '#b2182b', '#762a83', '#4d4d4d'];
export const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round, readable axis ticks. */
export function ticks(max: number, count: number): number[] {
    const raw = max / count;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= raw) ?? raw;
    return Array.from({ length: Math.floor(max / step) + 1 }, (_, i) => i * step);
}

export function byteUnit(max: number): [number, string] {
    return max >= 2 ** 30 ? [2 ** 30, 'GiB'] : max >= 2 ** 20 ? [2 ** 20, 'MiB'] : [2 ** 10, 'KiB'];
}

export function byteTicks(max: number): number[] {
    const [unit] = byteUnit(max);
    return ticks(max / unit, 6).map((t) => t * unit);
}

/** A tick label in one unit for the whole axis, without needless decimals: "0.25 GiB", "1 GiB". */
export function tickLabel(bytes: number, axisMax: number): string {
    const [unit, name] = byteUnit(axisMax);
    return `${Number((bytes / unit).toFixed(2))} ${name}`;
}

/** The opening of a chart: the <svg> element, a white background, the title and the subtitle at `x`. */
export function svgOpening(width: number, height: number, x: number, title: string, subtitle?: string): string[] {
    const out = [
        `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="13">`,
        `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
        `<text x="${x}" y="28" font-size="18" font-weight="bold">${escape(title)}</text>`,
    ];
    if (subtitle) out.push(`<text x="${x}" y="50" fill="#555">${escape(subtitle)}</text>`);
    return out;
}

export function kvChartSvg(options: KvChartOptions): string {
    const width = 860;
    const height = 520;
    const m = { left: 100, right: 200, top: 70, bottom: 60 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const xMax = Math.max(...options.series.flatMap((s) => s.points.map(([x]) => x)));
    const yData = Math.max(...options.series.flatMap((s) => s.points.map(([, y]) => y)), options.budget?.bytes ?? 0);
    const yTicks = byteTicks(yData * 1.05);
    const yMax = Math.max(yTicks.at(-1)!, yData);
    const x = (v: number) => m.left + (v / xMax) * plotW;
    const y = (v: number) => m.top + plotH - (v / yMax) * plotH;
    const out = svgOpening(width, height, m.left, options.title, options.subtitle);
    for (const t of yTicks) {
        out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`);
        out.push(`<text x="${m.left - 8}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${escape(tickLabel(t, yMax))}</text>`);
    }
    for (const t of ticks(xMax, 8)) {
        out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${m.top}" y2="${m.top + plotH}" stroke="#f0f0f0"/>`);
        out.push(`<text x="${x(t).toFixed(1)}" y="${m.top + plotH + 20}" text-anchor="middle">${t.toLocaleString('en-US')}</text>`);
    }
    out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}" stroke="#333"/>`);
    out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${m.top + plotH}" y2="${m.top + plotH}" stroke="#333"/>`);
    out.push(`<text x="${m.left + plotW / 2}" y="${height - 15}" text-anchor="middle">context length (tokens)</text>`);
    out.push(`<text transform="translate(18 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">KV cache size</text>`);
    if (options.budget) {
        const by = y(options.budget.bytes).toFixed(1);
        out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${by}" y2="${by}" stroke="#000" stroke-width="2" stroke-dasharray="8 5"/>`);
        out.push(`<text x="${m.left + plotW - 4}" y="${(y(options.budget.bytes) - 6).toFixed(1)}" text-anchor="end" font-weight="bold">${escape(options.budget.label)}</text>`);
    }
    options.series.forEach((s, i) => {
        const color = COLORS[i % COLORS.length];
        const path = s.points.map(([px, py], j) => `${j === 0 ? 'M' : 'L'}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
        out.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2.5"/>`);
        const ly = m.top + 10 + i * 22;
        out.push(`<line x1="${m.left + plotW + 18}" x2="${m.left + plotW + 42}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
        out.push(`<text x="${m.left + plotW + 48}" y="${ly + 4}">${escape(s.name)}</text>`);
    });
    out.push('</svg>');
    return out.join('\n') + '\n';
}
