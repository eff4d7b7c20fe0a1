/** Accuracy-curve output: RFC 4180 CSV, nice axis ticks and the standalone SVG line chart (well-formed, one polyline per series). */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { csvField, escapeXml, lineChartSvg, niceTicks, type Series, seriesColor, seriesToRows, toCsv, writeChart } from '../sim/chart.ts';

/**
 * Minimal XML well-formedness check: one root element, properly nested and closed tags, quoted
 * attributes, and no raw `<` or stray `&` in text. Returns the element names in document order.
 */
function checkWellFormed(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  const token = /<!--[\s\S]*?-->|<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const match of xml.matchAll(token)) {
    const [whole, closing, name, attrs, selfClosing, text, strayLt] = match;
    if (whole.startsWith('<!--')) continue;
    if (strayLt) throw new Error(`malformed tag at offset ${match.index}: ${xml.slice(match.index, match.index + 40)}`);
    if (text !== undefined) {
      if (stack.length === 0 && text.trim()) throw new Error(`text outside the root element: ${text.trim().slice(0, 40)}`);
      const badAmp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.exec(text);
      if (badAmp) throw new Error(`unescaped & in text: ${text.slice(0, 40)}`);
      continue;
    }
    if (/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(attrs ?? '')) throw new Error(`unescaped & in attributes of <${name}>`);
    if (closing) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
      continue;
    }
    if (stack.length === 0) roots++;
    names.push(name as string);
    if (!selfClosing) stack.push(name as string);
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(' > ')}`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return names;
}

/** Attribute value of every `<tag …>` occurrence. */
function attrs(svg: string, tag: string, attr: string): string[] {
  return [...svg.matchAll(new RegExp(`<${tag}\\b[^>]*?\\s${attr}="([^"]*)"`, 'g'))].map((m) => m[1] as string);
}

function curve(name: string, n: number, f: (i: number) => number): Series {
  return { name, points: Array.from({ length: n }, (_, i) => ({ x: i + 1, y: f(i + 1) })) };
}

const ACCURACY: Series[] = [
  curve('FedAvg IID', 30, (r) => 0.97 - 0.87 * Math.exp(-r / 4)),
  curve('FedAvg Dirichlet(0.5)', 30, (r) => 0.94 - 0.84 * Math.exp(-r / 8)),
  curve('FedAvg pathological', 20, (r) => 0.9 - 0.8 * Math.exp(-r / 12)),
];
const OPTS = { title: 'MNIST: test accuracy per round', xLabel: 'round', yLabel: 'test accuracy', yMin: 0, yMax: 1 };

describe('toCsv', () => {
  it('quotes only fields that need it, doubling inner quotes (RFC 4180)', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField(0.25)).toBe('0.25');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\rhere')).toBe('"cr\rhere"');
    expect(csvField(' spaced ')).toBe(' spaced ');
  });

  it('writes a header of all keys in first-seen order, CRLF records, empty fields for missing keys', () => {
    const csv = toCsv([
      { round: 1, accuracy: 0.5 },
      { round: 2, accuracy: 0.75, note: 'partition "dirichlet", alpha=0.5' },
      { round: 3, note: 'line\nbreak' },
    ]);
    expect(csv).toBe('round,accuracy,note\r\n1,0.5,\r\n2,0.75,"partition ""dirichlet"", alpha=0.5"\r\n3,,"line\nbreak"\r\n');
  });

  it('quotes header names too, and gives an empty string for no rows', () => {
    expect(toCsv([{ 'acc, %': 97 }])).toBe('"acc, %"\r\n97\r\n');
    expect(toCsv([])).toBe('');
  });

  it('seriesToRows makes a wide table keyed by x, blank where a series has no point', () => {
    const rows = seriesToRows(
      [
        {
          name: 'a',
          points: [
            { x: 2, y: 0.2 },
            { x: 1, y: 0.1 },
          ],
        },
        { name: 'b', points: [{ x: 1, y: 0.5 }] },
      ],
      'round',
    );
    expect(rows).toEqual([
      { round: 1, a: 0.1, b: 0.5 },
      { round: 2, a: 0.2 },
    ]);
    expect(toCsv(rows)).toBe('round,a,b\r\n1,0.1,0.5\r\n2,0.2,\r\n');
  });
});

describe('niceTicks', () => {
  it('steps by 1, 2 or 5 × 10^k and covers the range without float noise', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(1, 50)).toEqual([0, 10, 20, 30, 40, 50]);
    expect(niceTicks(0.31, 0.97)).toEqual([0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0.61, 0.97)).toEqual([0.6, 0.7, 0.8, 0.9, 1]);
    expect(niceTicks(-0.02, 0.98)).toEqual([-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 1_000_000)).toEqual([0, 200_000, 400_000, 600_000, 800_000, 1_000_000]);
    expect(niceTicks(5, 5)).toEqual([5]);
  });

  it('keeps whole-number axes (rounds, versions) on whole numbers', () => {
    expect(niceTicks(1, 3)).toEqual([1, 1.5, 2, 2.5, 3]);
    expect(niceTicks(1, 3, 6, true)).toEqual([1, 2, 3]);
    expect(niceTicks(0, 40, 6, true)).toEqual([0, 10, 20, 30, 40]);
    const points = [1, 2, 3].map((x) => ({ x, y: x / 4 }));
    const labels = (svg: string) => [...svg.matchAll(/<text[^>]*text-anchor="middle"[^>]*>([\d.]+)<\/text>/g)].map((m) => m[1]);
    expect(labels(lineChartSvg([{ name: 'a', points }], { ...OPTS, xIntegers: true }))).toEqual(['1', '2', '3']);
    expect(labels(lineChartSvg([{ name: 'a', points }], OPTS))).toContain('1.5');
  });
});

describe('lineChartSvg', () => {
  const svg = lineChartSvg(ACCURACY, { ...OPTS, target: { y: 0.95, label: 'target 95 %' } });

  it('is a well-formed standalone SVG document', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    const names = checkWellFormed(svg);
    expect(names[0]).toBe('svg');
    expect(svg).toContain('width="720" height="440" viewBox="0 0 720 440"');
  });

  it('draws one polyline per series with one coordinate pair per point, in distinct colours', () => {
    const polylines = attrs(svg, 'polyline', 'points');
    expect(polylines.map((p) => p.split(' ').length)).toEqual([30, 30, 20]);
    for (const p of polylines) for (const pair of p.split(' ')) expect(pair).toMatch(/^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/);
    const strokes = attrs(svg, 'polyline', 'stroke');
    expect(new Set(strokes).size).toBe(3);
    expect(new Set(Array.from({ length: 30 }, (_, i) => seriesColor(i))).size).toBe(30);
  });

  it('maps data into the plot area: x grows rightwards, higher accuracy is higher up', () => {
    const first = (attrs(svg, 'polyline', 'points')[0] as string).split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    for (let i = 1; i < first.length; i++) {
      expect(first[i]![0]).toBeGreaterThan(first[i - 1]![0]);
      expect(first[i]![1]).toBeLessThan(first[i - 1]![1]); // the curve rises, SVG y points down
    }
    for (const [x, y] of first) {
      expect(x).toBeGreaterThanOrEqual(70);
      expect(x).toBeLessThanOrEqual(720 - 24);
      expect(y).toBeGreaterThan(0);
      expect(y).toBeLessThan(440 - 56);
    }
  });

  it('has a title, axis labels, tick labels on both axes and a legend naming each series', () => {
    expect(svg).toContain('>MNIST: test accuracy per round</text>');
    expect(svg).toContain('>round</text>');
    expect(svg).toContain('>test accuracy</text>');
    for (const tick of ['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']) expect(svg).toContain(`>${tick}</text>`);
    for (const tick of ['0', '10', '20', '30']) expect(svg).toContain(`>${tick}</text>`);
    const legend = svg.slice(svg.indexOf('<g class="legend">'));
    for (const s of ACCURACY) expect(legend).toContain(`>${s.name}</text>`);
  });

  it('draws the dashed target line at its y with its label', () => {
    expect(svg).toMatch(/<line class="target"[^>]*stroke-dasharray/);
    expect(svg).toContain('>target 95 %</text>');
    // 0.95 on a 0..1 axis is 5 % of the plot height below its top.
    const y1 = Number(/<line class="target"[^>]*\sy1="([^"]+)"/.exec(svg)?.[1]);
    const top = 48 + 24; // title band plus one legend row
    const bottom = 440 - 56;
    expect(y1).toBeCloseTo(top + 0.05 * (bottom - top), 1);
  });

  it('escapes markup in names and labels', () => {
    const tricky = lineChartSvg([curve('FedProx <μ=0.01> & "friends"', 3, (r) => r / 4)], {
      ...OPTS,
      title: 'a < b & c',
      target: { y: 0.5, label: "it's > half" },
    });
    checkWellFormed(tricky);
    expect(tricky).toContain('FedProx &lt;μ=0.01&gt; &amp; &quot;friends&quot;');
    expect(tricky).toContain('a &lt; b &amp; c');
    expect(tricky).toContain('it&apos;s &gt; half');
    expect(escapeXml(`<&>"'`)).toBe('&lt;&amp;&gt;&quot;&apos;');
  });

  it('skips non-finite points, and copes with no series, one point and a flat series', () => {
    const gappy = lineChartSvg(
      [
        {
          name: 'loss',
          points: [
            { x: 1, y: 2 },
            { x: 2, y: Number.NaN },
            { x: 3, y: 1 },
          ],
        },
      ],
      { title: 't', xLabel: 'x', yLabel: 'y' },
    );
    expect(attrs(gappy, 'polyline', 'points')[0]?.split(' ')).toHaveLength(2);
    for (const chart of [
      lineChartSvg([], { title: 'empty', xLabel: 'x', yLabel: 'y' }),
      lineChartSvg([{ name: 'one', points: [{ x: 3, y: 0.5 }] }], { title: 'one point', xLabel: 'x', yLabel: 'y' }),
      lineChartSvg([curve('flat', 5, () => 0.9)], { title: 'flat', xLabel: 'x', yLabel: 'y', width: 400, height: 300 }),
    ]) {
      checkWellFormed(chart);
      expect(chart).not.toMatch(/NaN|Infinity/);
    }
    expect(() => lineChartSvg(ACCURACY, { ...OPTS, width: 0 })).toThrow(/chart size must be positive/);
  });

  it('wraps a long legend into rows instead of narrowing the plot', () => {
    const many = Array.from({ length: 12 }, (_, k) => curve(`client ${k}`, 10, (r) => r / 10));
    const chart = lineChartSvg(many, OPTS);
    checkWellFormed(chart);
    expect(attrs(chart, 'polyline', 'points')).toHaveLength(12);
    const rows = new Set(attrs(chart.slice(chart.indexOf('<g class="legend">')), 'text', 'y'));
    expect(rows.size).toBeGreaterThan(1);
    expect(chart).toMatch(/<clipPath id="plot-area"><rect x="70" y="\d+" width="626"/);
  });
});

describe('writeChart', () => {
  const hasRsvg = spawnSync('rsvg-convert', ['--version']).status === 0;

  it('writes the CSV and the SVG next to each other', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedge-chart-'));
    try {
      const { csvPath, svgPath } = writeChart(join(dir, 'accuracy'), ACCURACY, OPTS);
      expect([csvPath, svgPath]).toEqual([join(dir, 'accuracy.csv'), join(dir, 'accuracy.svg')]);
      const csv = readFileSync(csvPath, 'utf8').split('\r\n');
      expect(csv[0]).toBe('round,FedAvg IID,FedAvg Dirichlet(0.5),FedAvg pathological');
      expect(csv).toHaveLength(32); // header, 30 rounds, trailing empty string after the last CRLF
      expect(csv[30]?.endsWith(',')).toBe(true); // round 30: the 20-round series is blank
      checkWellFormed(readFileSync(svgPath, 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A real SVG renderer as a second opinion, where installed (apt-get install librsvg2-bin).
  it.skipIf(!hasRsvg)('renders to PNG with librsvg', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedge-chart-'));
    try {
      const { svgPath } = writeChart(join(dir, 'accuracy'), ACCURACY, { ...OPTS, target: { y: 0.95, label: 'target' } });
      execFileSync('rsvg-convert', ['-o', join(dir, 'accuracy.png'), svgPath]);
      expect(readFileSync(join(dir, 'accuracy.png')).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
