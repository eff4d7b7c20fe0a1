/** @module Seeded, reproducible partitions of example indices across simulated clients (IID, Dirichlet label skew, pathological shards). */

import { rng } from '../shared/random.ts';

/** Shuffles `items` in place (Fisher–Yates) using `random`; returns the same array. */
export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}

/** A uniformly random permutation of 0..n-1. */
export function permutation(n: number, random: () => number): number[] {
  return shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    random,
  );
}

/** Standard normal draw (Box–Muller); `1 - u` keeps the log argument in (0, 1]. */
function normal(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Natural log of a Gamma(shape, 1) draw, by Marsaglia & Tsang (2000). Shapes below 1 use the boost
 * Gamma(a) = Gamma(a + 1) · U^(1/a); working in logs keeps tiny alphas (say 0.01, where U^(1/a)
 * underflows to 0) usable for Dirichlet proportions.
 */
export function logGamma(shape: number, random: () => number): number {
  if (!(shape > 0) || !Number.isFinite(shape)) throw new RangeError(`gamma shape must be a positive finite number, got ${shape}`);
  if (shape < 1) return logGamma(shape + 1, random) + Math.log(1 - random()) / shape;
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - random();
    // Squeeze test first (cheap, accepts ~98%), then the exact log test.
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return Math.log(d * v);
  }
}

/** A draw from the symmetric Dirichlet(alpha, …, alpha) over `k` outcomes; sums to 1. */
export function dirichletDraw(k: number, alpha: number, random: () => number): number[] {
  const logs = Array.from({ length: k }, () => logGamma(alpha, random));
  // Normalise in log space (log-sum-exp) so the result is finite even when every gamma underflows.
  const max = Math.max(...logs);
  const weights = logs.map((l) => Math.exp(l - max));
  const sum = weights.reduce((s, w) => s + w, 0);
  return weights.map((w) => w / sum);
}

/** Per-class counts of `labels` (restricted to `indices` if given); length `classes` (default: max label + 1). */
export function labelCounts(labels: ArrayLike<number>, indices?: ArrayLike<number>, classes?: number): number[] {
  const k = classes ?? numClasses(labels);
  const counts = new Array<number>(k).fill(0);
  const n = indices ? indices.length : labels.length;
  for (let i = 0; i < n; i++) {
    const label = labels[indices ? (indices[i] as number) : i] as number;
    counts[label] = (counts[label] as number) + 1;
  }
  return counts;
}

/** Number of classes = max label + 1, after checking every label is a non-negative integer. */
function numClasses(labels: ArrayLike<number>): number {
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] as number;
    if (!Number.isInteger(label) || label < 0) throw new RangeError(`label ${i} is ${label}; labels must be non-negative integers`);
    if (label > max) max = label;
  }
  return max + 1;
}

function checkClients(clients: number, n: number, perClient = 1): void {
  if (!Number.isInteger(clients) || clients < 1) throw new RangeError(`clients must be a positive integer, got ${clients}`);
  if (clients * perClient > n) throw new RangeError(`cannot give ${clients} clients ${perClient} example(s) each from ${n} examples`);
}

/** Sorts in place, ascending: every partition returns each client's indices in dataset order, and the lists together cover each index exactly once. */
function ascending(indices: number[]): number[] {
  return indices.sort((a, b) => a - b);
}

/** Splits `items` into `parts` contiguous runs whose sizes differ by at most one (earlier runs get the extra). */
function splitEven<T>(items: T[], parts: number): T[][] {
  return Array.from({ length: parts }, (_, p) => items.slice(Math.floor((p * items.length) / parts), Math.floor(((p + 1) * items.length) / parts)));
}

/**
 * IID partition: shuffle all indices, then split into `clients` parts of equal size (±1).
 * Each client's label distribution matches the global one up to sampling noise.
 */
export function iid(labels: ArrayLike<number>, clients: number, seed: number): number[][] {
  checkClients(clients, labels.length);
  return splitEven(permutation(labels.length, rng(seed)), clients).map(ascending);
}

/** Options for {@link dirichlet}. */
export interface DirichletOptions {
  /** Re-draw until every client has at least this many examples (default 10). */
  minPerClient?: number;
  /** Give up (and throw) after this many draws (default 1000). */
  maxAttempts?: number;
}

/**
 * Label-skewed partition (Hsu et al. 2019; Yurochkin et al. 2019): for each class, draw the
 * clients' shares from Dirichlet(alpha) and split that class's (shuffled) indices accordingly.
 * Small alpha (0.1–0.5) gives each client a few dominant classes; alpha → ∞ approaches IID.
 * The whole draw is repeated while some client ends up with fewer than `minPerClient` examples,
 * since an empty client cannot train; throws if `maxAttempts` draws all fail.
 */
export function dirichlet(labels: ArrayLike<number>, clients: number, alpha: number, seed: number, options: DirichletOptions = {}): number[][] {
  const { minPerClient = 10, maxAttempts = 1000 } = options;
  checkClients(clients, labels.length, Math.max(minPerClient, 0));
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`alpha must be a positive finite number, got ${alpha}`);
  const byClass: number[][] = Array.from({ length: numClasses(labels) }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i] as number]?.push(i);
  const random = rng(seed);
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const parts: number[][] = Array.from({ length: clients }, () => []);
    for (const members of byClass) {
      const shuffled = shuffleInPlace(members.slice(), random);
      const shares = dirichletDraw(clients, alpha, random);
      // Cut points from the rounded cumulative shares: sizes sum exactly to the class size.
      let cumulative = 0;
      let start = 0;
      shares.forEach((share, c) => {
        cumulative += share;
        const end = c === clients - 1 ? shuffled.length : Math.min(shuffled.length, Math.round(cumulative * shuffled.length));
        for (let i = start; i < end; i++) parts[c]?.push(shuffled[i] as number);
        start = Math.max(start, end);
      });
    }
    if (parts.every((p) => p.length >= minPerClient)) return parts.map(ascending);
  }
  throw new Error(
    `dirichlet: no draw in ${maxAttempts} attempts gave every one of ${clients} clients at least ${minPerClient} examples (alpha ${alpha}); lower minPerClient or raise alpha`,
  );
}

/**
 * Pathological non-IID partition (McMahan et al. 2017): sort indices by label, cut them into
 * `clients × shardsPerClient` contiguous shards of equal size (±1), and deal each client
 * `shardsPerClient` random shards. A shard can straddle a class boundary, so with 2 shards a
 * client sees at most 4 classes (2 when every class is larger than a shard and boundaries align).
 */
export function pathological(labels: ArrayLike<number>, clients: number, shardsPerClient = 2, seed: number): number[][] {
  if (!Number.isInteger(shardsPerClient) || shardsPerClient < 1) throw new RangeError(`shardsPerClient must be a positive integer, got ${shardsPerClient}`);
  checkClients(clients, labels.length, shardsPerClient);
  numClasses(labels); // validates labels
  // Ties broken by index so the sort (and hence the shards) never depends on engine sort stability.
  const sorted = Array.from({ length: labels.length }, (_, i) => i).sort((a, b) => (labels[a] as number) - (labels[b] as number) || a - b);
  const shards = splitEven(sorted, clients * shardsPerClient);
  const order = permutation(shards.length, rng(seed));
  return Array.from({ length: clients }, (_, c) =>
    ascending(order.slice(c * shardsPerClient, (c + 1) * shardsPerClient).flatMap((s) => shards[s] as number[])),
  );
}
