/** @module Writes accuracy curves as RFC 4180 CSV and as a standalone, dependency-free SVG line chart. */
import { writeFileSync } from 'node:fs';

/** One line on the chart. */
export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

/** Labels and layout for {@link lineChartSvg}. */
export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Fixed y-axis bounds (e.g. 0 and 1 for accuracy); otherwise rounded out from the data. */
  yMin?: number;
  yMax?: number;
  /** Size in px (defaults 720 × 440). */
  width?: number;
  height?: number;
  /** A dashed horizontal reference line, e.g. the centralized baseline's accuracy. */
  target?: { y: number; label: string };
  /** The x axis counts whole things (rounds, versions, updates): ticks at whole numbers only. */
  xIntegers?: boolean;
}

/** Quotes a CSV field only when RFC 4180 requires it (comma, quote, CR or LF), doubling inner quotes. */
export function csvField(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * RFC 4180 CSV: a header row of every key in order of first appearance across `rows`, then one
 * record per row (a missing key gives an empty field). Records end with CRLF, as the RFC says.
 */
export function toCsv(rows: Record<string, string | number>[]): string {
  const columns: string[] = [];
  const seen = new Set<string>();
  for (const row of rows)
    for (const key of Object.keys(row))
      if (!seen.has(key)) {
        seen.add(key);
        columns.push(key);
      }
  if (columns.length === 0) return '';
  const lines = [columns.map(csvField).join(',')];
  for (const row of rows) lines.push(columns.map((c) => (Object.hasOwn(row, c) ? csvField(row[c] as string | number) : '')).join(','));
  return lines.map((l) => `${l}\r\n`).join('');
}

/**
 * Wide table of series for {@link toCsv}: one row per distinct x (ascending), a column `xName`
 * plus one column per series name; a series without a point at that x leaves its cell empty.
 */
export function seriesToRows(series: Series[], xName = 'x'): Record<string, string | number>[] {
  const byX = new Map<number, Record<string, string | number>>();
  for (const s of series) {
    for (const p of s.points) {
      let row = byX.get(p.x);
      if (!row) {
        row = { [xName]: p.x };
        byX.set(p.x, row);
      }
      row[s.name] = p.y;
    }
  }
  return [...byX.entries()].sort(([a], [b]) => a - b).map(([, row]) => row);
}

/**
 * About `count` evenly spaced "nice" tick values (steps of 1, 2 or 5 × 10^k) covering [min, max]
 * (Heckbert, Graphics Gems 1990). The first tick is ≤ min and the last ≥ max.
 */
export function niceTicks(min: number, max: number, count = 6, integers = false): number[] {
  if (!(max > min)) return [min];
  const rough = niceStep((max - min) / Math.max(1, count - 1));
  const step = integers ? Math.max(1, rough) : rough;
  const first = Math.floor(min / step + 1e-9) * step;
  const last = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  // Multiply rather than accumulate so 0.1-steps do not drift (0.30000000000000004).
  for (let i = 0; first + i * step <= last + step * 1e-9; i++) ticks.push(roundTo(first + i * step, step));
  return ticks;
}

function niceStep(rough: number): number {
  const exponent = Math.floor(Math.log10(rough));
  const fraction = rough / 10 ** exponent;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * 10 ** exponent;
}

/** Rounds to the step's decimal places, removing binary-float noise and negative zero. */
function roundTo(value: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(value.toFixed(decimals)) + 0;
}

/** Tick label text with just enough decimals for the step. */
function tickLabel(value: number, step: number): string {
  const decimals = step > 0 ? Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) : 0;
  return (Number(value.toFixed(decimals)) + 0).toFixed(decimals);
}

/** Colour-blind-safe Okabe–Ito palette (yellow last: weakest on white); further series get golden-angle hues. */
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

/** The stroke colour of the `i`-th series; all distinct for the first 250 series (hues are whole degrees). */
export function seriesColor(i: number): string {
  return PALETTE[i] ?? `hsl(${Math.round((i * 137.508) % 360)}, 65%, 42%)`;
}

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch] as string);
}

/** Coordinates with two decimals: sub-pixel precision is invisible and keeps the file small. */
function px(value: number): string {
  return String(Math.round(value * 100) / 100);
}

const FONT = 'font-family="Helvetica, Arial, sans-serif"';
/** Rough average glyph width of 12px sans-serif text, for sizing the legend without a font engine. */
const CHAR_WIDTH = 7;

/** [lo, hi] rounded out to nice ticks; a flat or empty range is widened so the scale stays finite. */
function domain(values: number[], fixedMin?: number, fixedMax?: number, integers = false): { lo: number; hi: number; ticks: number[] } {
  let lo = fixedMin ?? (values.length ? Math.min(...values) : 0);
  let hi = fixedMax ?? (values.length ? Math.max(...values) : 1);
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    if (fixedMin === undefined) lo -= pad;
    if (fixedMax === undefined || !(hi > lo)) hi = lo + 2 * pad;
  }
  const ticks = niceTicks(lo, hi, 6, integers);
  if (fixedMin === undefined) lo = Math.min(lo, ticks[0] as number);
  if (fixedMax === undefined) hi = Math.max(hi, ticks[ticks.length - 1] as number);
  return { lo, hi, ticks: ticks.filter((t) => t >= lo - 1e-9 && t <= hi + 1e-9) };
}

/** Positions (text baseline) of legend entries flowing left to right from y = 52, wrapping at `right`. */
function legendLayout(names: string[], left: number, right: number): { items: { x: number; y: number }[]; height: number } {
  const items: { x: number; y: number }[] = [];
  let x = left;
  let row = 0;
  for (const name of names) {
    const w = 28 + CHAR_WIDTH * name.length + 18;
    if (x > left && x + w > right) {
      x = left;
      row++;
    }
    items.push({ x, y: 52 + row * 18 });
    x += w;
  }
  return { items, height: items.length ? (row + 1) * 18 + 6 : 0 };
}

/**
 * A standalone SVG line chart: title, axes with ticks and gridlines, axis labels, one polyline
 * (plus point markers when sparse) per series in distinct colours, a legend under the title and an
 * optional dashed target line. Non-finite points (e.g. a NaN loss) are skipped; lines are clipped
 * to the plot area when fixed bounds cut them.
 */
export function lineChartSvg(series: Series[], opts: ChartOptions): string {
  const width = opts.width ?? 720;
  const height = opts.height ?? 440;
  if (!(width > 0 && height > 0)) throw new RangeError(`chart size must be positive, got ${width}×${height}`);
  const clean = series.map((s) => ({ name: s.name, points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)) }));
  const xs = clean.flatMap((s) => s.points.map((p) => p.x));
  const ys = clean.flatMap((s) => s.points.map((p) => p.y));
  if (opts.target && Number.isFinite(opts.target.y)) ys.push(opts.target.y);
  const xd = domain(xs, undefined, undefined, opts.xIntegers);
  const yd = domain(ys, opts.yMin, opts.yMax);

  // Legend as wrapped rows between title and plot, so long series names never narrow the plot.
  const legend = legendLayout(
    clean.map((s) => s.name),
    70,
    width - 24,
  );
  const m = { top: 48 + legend.height, right: 24, bottom: 56, left: 70 };
  const plotW = Math.max(40, width - m.left - m.right);
  const plotH = Math.max(40, height - m.top - m.bottom);
  const sx = (x: number) => m.left + ((x - xd.lo) / (xd.hi - xd.lo)) * plotW;
  const sy = (y: number) => m.top + plotH - ((y - yd.lo) / (yd.hi - yd.lo)) * plotH;
  const xStep = (xd.ticks[1] ?? xd.hi) - (xd.ticks[0] ?? xd.lo);
  const yStep = (yd.ticks[1] ?? yd.hi) - (yd.ticks[0] ?? yd.lo);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`);
  out.push(`<title>${escapeXml(opts.title)}</title>`);
  // Opaque background: viewers and PNG converters otherwise show a transparent (often black) canvas.
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<defs><clipPath id="plot-area"><rect x="${m.left}" y="${m.top}" width="${px(plotW)}" height="${px(plotH)}"/></clipPath></defs>`);
  out.push(`<text x="${px(width / 2)}" y="26" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(opts.title)}</text>`);

  // Gridlines and tick labels.
  out.push('<g class="grid" stroke="#e3e3e3" stroke-width="1">');
  for (const t of yd.ticks) out.push(`<line x1="${m.left}" x2="${px(m.left + plotW)}" y1="${px(sy(t))}" y2="${px(sy(t))}"/>`);
  for (const t of xd.ticks) out.push(`<line x1="${px(sx(t))}" x2="${px(sx(t))}" y1="${m.top}" y2="${px(m.top + plotH)}"/>`);
  out.push('</g>');
  out.push('<g class="ticks" fill="#333333">');
  for (const t of yd.ticks) out.push(`<text x="${m.left - 8}" y="${px(sy(t) + 4)}" text-anchor="end">${tickLabel(t, yStep)}</text>`);
  for (const t of xd.ticks) out.push(`<text x="${px(sx(t))}" y="${px(m.top + plotH + 18)}" text-anchor="middle">${tickLabel(t, xStep)}</text>`);
  out.push('</g>');

  // Axes and their labels.
  out.push(`<path class="axes" d="M${m.left},${m.top} V${px(m.top + plotH)} H${px(m.left + plotW)}" fill="none" stroke="#333333" stroke-width="1"/>`);
  out.push(`<text x="${px(m.left + plotW / 2)}" y="${height - 14}" text-anchor="middle" font-size="13">${escapeXml(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${px(m.top + plotH / 2)}) rotate(-90)" text-anchor="middle" font-size="13">${escapeXml(opts.yLabel)}</text>`);

  // Target line under the data so curves stay readable where they cross it.
  const targetY = opts.target && Number.isFinite(opts.target.y) ? sy(opts.target.y) : undefined;
  if (targetY !== undefined) {
    out.push(
      `<line class="target" clip-path="url(#plot-area)" x1="${m.left}" x2="${px(m.left + plotW)}" y1="${px(targetY)}" y2="${px(targetY)}" stroke="#777777" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
  }

  out.push('<g class="series" clip-path="url(#plot-area)">');
  clean.forEach((s, i) => {
    const color = seriesColor(i);
    const points = s.points.map((p) => `${px(sx(p.x))},${px(sy(p.y))}`).join(' ');
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round" points="${points}"/>`);
    // Markers only when sparse: they show where the measurements are without cluttering long runs.
    if (s.points.length <= 60) out.push(...s.points.map((p) => `<circle cx="${px(sx(p.x))}" cy="${px(sy(p.y))}" r="2.5" fill="${color}"/>`));
  });
  out.push('</g>');

  // Target label on top of the curves with a white halo; at the left end, where rising accuracy
  // curves are still far below the target line.
  if (opts.target && targetY !== undefined && targetY >= m.top && targetY <= m.top + plotH) {
    out.push(
      `<text class="target-label" x="${m.left + 6}" y="${px(targetY - 5)}" fill="#555555" stroke="#ffffff" stroke-width="4" stroke-linejoin="round" paint-order="stroke">${escapeXml(opts.target.label)}</text>`,
    );
  }

  if (legend.items.length) {
    out.push('<g class="legend">');
    legend.items.forEach(({ x, y }, i) => {
      out.push(`<line x1="${px(x)}" x2="${px(x + 22)}" y1="${y - 4}" y2="${y - 4}" stroke="${seriesColor(i)}" stroke-width="3"/>`);
      out.push(`<text x="${px(x + 28)}" y="${y}">${escapeXml(clean[i]?.name ?? '')}</text>`);
    });
    out.push('</g>');
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Writes `${basePath}.csv` (wide table, x column named after the x label) and `${basePath}.svg`; returns both paths. */
export function writeChart(basePath: string, series: Series[], opts: ChartOptions): { csvPath: string; svgPath: string } {
  const csvPath = `${basePath}.csv`;
  const svgPath = `${basePath}.svg`;
  writeFileSync(csvPath, toCsv(seriesToRows(series, opts.xLabel)));
  writeFileSync(svgPath, lineChartSvg(series, opts));
  return { csvPath, svgPath };
}
