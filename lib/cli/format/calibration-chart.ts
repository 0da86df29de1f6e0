/** The SVG chart of `llama-kv calibrate --chart`: quality loss against KV cache bytes, one labelled point per configuration. */
import type { CalibrationReport } from '../../calibrate/index.js';
import { byteUnit, COLORS, escape, svgOpening, tickLabel, ticks } from './chart.js';

/** Round ticks from 0 up to the first one at or above `max` (which may be 0: the reference alone). */
function coveringTicks(max: number, count: number): number[] {
    const t = ticks(max > 0 ? max : 1e-3, count);
    const step = t.length > 1 ? t[1] - t[0] : max > 0 ? max : 1e-3;
    while (t.at(-1)! < max) t.push(t.length * step);
    return t;
}

const klLabel = (v: number) => (v === 0 ? '0' : v < 1e-4 ? v.toExponential(2) : Number(v.toPrecision(3)).toString());

export function calibrationChartSvg(report: CalibrationReport): string {
    const width = 860;
    const height = 520;
    const m = { left: 100, right: 40, top: 80, bottom: 60 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const points = report.results.map((r) => ({ label: `${r.cacheTypeK}/${r.cacheTypeV}`, x: r.kvBytes, y: r.kl.mean, top1: r.top1Agreement }));
    const [unit] = byteUnit(Math.max(1, ...points.map((p) => p.x)));
    const xTicks = coveringTicks((Math.max(1, ...points.map((p) => p.x)) * 1.1) / unit, 6).map((t) => t * unit);
    const xMax = xTicks.at(-1)!;
    const yTicks = coveringTicks(Math.max(0, ...points.map((p) => p.y)) * 1.2, 6);
    const yMax = yTicks.at(-1)!;
    const x = (v: number) => m.left + (v / xMax) * plotW;
    const y = (v: number) => m.top + plotH - (v / yMax) * plotH;
    const model = report.modelName || report.model.replace(/^.*[\\/]/, '');
    const out = svgOpening(
        width,
        height,
        m.left,
        `KV cache quality loss against size: ${model}`,
        `mean KL divergence from ${report.reference.cacheTypeK}/${report.reference.cacheTypeV} over ${report.positions.toLocaleString('en-US')} positions of ${report.prompts.length} prompts; context ${report.contextSize}; lower left is better`,
    );
    for (const t of yTicks) {
        out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`);
        out.push(`<text x="${m.left - 8}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${escape(klLabel(t))}</text>`);
    }
    for (const t of xTicks) {
        out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${m.top}" y2="${m.top + plotH}" stroke="#f0f0f0"/>`);
        out.push(`<text x="${x(t).toFixed(1)}" y="${m.top + plotH + 20}" text-anchor="middle">${escape(tickLabel(t, xMax))}</text>`);
    }
    out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}" stroke="#333"/>`);
    out.push(`<line x1="${m.left}" x2="${m.left + plotW}" y1="${m.top + plotH}" y2="${m.top + plotH}" stroke="#333"/>`);
    out.push(`<text x="${m.left + plotW / 2}" y="${height - 15}" text-anchor="middle">KV cache size (K + V)</text>`);
    out.push(`<text transform="translate(22 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">mean KL divergence (nats)</text>`);
    // Two label lines above each point (left of it in the right third, so that they stay
    // inside the plot), lifted while they would overlap a label already placed.
    const placed: { x0: number; x1: number; y0: number; y1: number }[] = [];
    points.forEach((p, i) => {
        const color = COLORS[i % COLORS.length];
        const px = x(p.x);
        const py = y(p.y);
        const detail = `KL ${klLabel(p.y)}, top-1 ${(p.top1 * 100).toFixed(1)}%`;
        const textW = Math.max(p.label.length, detail.length) * 7;
        const anchor = px > m.left + (plotW * 2) / 3 ? 'end' : 'start';
        const lx = anchor === 'end' ? px - 8 : px + 8;
        const box = { x0: anchor === 'end' ? lx - textW : lx, x1: anchor === 'end' ? lx : lx + textW, y0: py - 38, y1: py - 4 };
        while (placed.some((b) => b.x0 < box.x1 && box.x0 < b.x1 && b.y0 < box.y1 && box.y0 < b.y1)) {
            box.y0 -= 34;
            box.y1 -= 34;
        }
        placed.push(box);
        out.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="6" fill="${color}"/>`);
        if (box.y1 < py - 4) out.push(`<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${(py - 6).toFixed(1)}" y2="${(box.y1 + 2).toFixed(1)}" stroke="${color}" stroke-dasharray="2 3"/>`);
        out.push(`<text x="${lx.toFixed(1)}" y="${(box.y1 - 20).toFixed(1)}" text-anchor="${anchor}" font-weight="bold">${escape(p.label)}</text>`);
        out.push(`<text x="${lx.toFixed(1)}" y="${(box.y1 - 5).toFixed(1)}" text-anchor="${anchor}" fill="#555">${escape(detail)}</text>`);
    });
    out.push('</svg>');
    return out.join('\n') + '\n';
}
