/**
 * @module Accuracy and loss per model version, as uPlot line charts: the clients' federated
 * evaluation, the operator's server metrics and the participants' training metrics, each metric a
 * series, the x axis whole versions. Each chart carries its data as a table too (for screen
 * readers, and for anyone who wants the numbers).
 */
import uPlot from 'uplot';
import type { Version } from './api.ts';
import { h, metric, table } from './dom.ts';

export interface Series {
  label: string;
  /** One value per version of `x` (null: not reported for that version). */
  values: (number | null)[];
}
export interface ChartData {
  id: 'accuracy' | 'loss' | 'epsilon';
  title: string;
  x: number[];
  series: Series[];
}

const FAMILIES = [
  { id: 'accuracy', title: 'Accuracy', test: (name: string) => /acc/i.test(name) },
  { id: 'loss', title: 'Loss', test: (name: string) => /loss/i.test(name) },
] as const;

const SOURCES: { label: string; of: (v: Version) => Record<string, number> | null | undefined }[] = [
  { label: 'federated evaluation', of: (v) => v.federatedEvaluation?.metrics },
  { label: 'server', of: (v) => v.serverMetrics },
  { label: 'training', of: (v) => v.metrics },
];

/** The charts the versions have data for, versions ascending; a series per (source, metric name) reported at least once. */
export function metricCharts(versions: Version[]): ChartData[] {
  const sorted = [...versions].sort((a, b) => a.version - b.version);
  const x = sorted.map((v) => v.version);
  const charts: ChartData[] = [];
  for (const family of FAMILIES) {
    const series: Series[] = [];
    for (const source of SOURCES) {
      const names = [...new Set(sorted.flatMap((v) => Object.keys(source.of(v) ?? {})))].filter(family.test).sort();
      for (const name of names) series.push({ label: `${source.label} · ${name}`, values: sorted.map((v) => source.of(v)?.[name] ?? null) });
    }
    if (series.length > 0) charts.push({ id: family.id, title: family.title, x, series });
  }
  // Differential privacy: ε as spent up to each version (the accountant's figure on its manifest).
  const delta = sorted.find((v) => v.privacy)?.privacy?.delta;
  if (delta !== undefined)
    charts.push({
      id: 'epsilon',
      title: 'Privacy spent (ε)',
      x,
      series: [{ label: `ε at δ = ${delta}`, values: sorted.map((v) => v.privacy?.epsilon ?? null) }],
    });
  return charts;
}

/** Axis ticks on whole versions only. */
export const WHOLE_INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000];

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

/** A chart figure: the uPlot canvas (resized with its container) and its data table. Returns it and a disposer. */
export function chartFigure(data: ChartData): { el: HTMLElement; dispose: () => void } {
  const plot = h('div', { class: 'plot' });
  const el = h(
    'figure',
    { class: 'chart', 'data-chart': data.id },
    h('figcaption', {}, `${data.title} per version`),
    plot,
    h(
      'details',
      {},
      h('summary', {}, `${data.title}: the numbers`),
      table(
        `${data.title} per version`,
        ['version', ...data.series.map((s) => s.label)],
        data.x.map((v, i) => [String(v), ...data.series.map((s) => metric(s.values[i] ?? undefined))]),
        { 'data-chart-table': data.id },
      ),
    ),
  );
  const u = new uPlot(
    {
      width: 600,
      height: 220,
      legend: { live: false },
      scales: {
        x: { time: false, range: (_u, min, max) => [Math.floor(min), Math.max(Math.ceil(max), Math.floor(min) + 1)] },
      },
      axes: [
        { label: 'version', incrs: WHOLE_INCREMENTS, values: (_u, splits) => splits.map((s) => (Number.isInteger(s) ? String(s) : '')) },
        { label: data.title.toLowerCase(), size: 60 },
      ],
      series: [
        { label: 'version' },
        ...data.series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length]!, width: 2, spanGaps: true, points: { show: true, size: 6 } })),
      ],
    },
    [data.x, ...data.series.map((s) => s.values)],
    plot,
  );
  const resize = new ResizeObserver(() => {
    const width = Math.max(240, Math.floor(plot.clientWidth));
    if (width !== u.width) u.setSize({ width, height: 220 });
  });
  resize.observe(plot);
  return {
    el,
    dispose: () => {
      resize.disconnect();
      u.destroy();
    },
  };
}
