/**
 * @module SecAgg+'s communication graph (Bell et al., CCS 2020, §3): instead of every pair of
 * clients, each client masks and shares with k neighbours only, on a random k-regular graph, a
 * Harary graph H(k, n) over a random ordering of the clients, so key exchange and share traffic
 * are O(k) = O(log n) per client instead of O(n).
 *
 * Parameters (`secAggParams`): k = min(n − 1, 2⌈log₂ n⌉ + 2), kept even. The paper proves
 * k = O(log n) suffices; these constants are fedge's choice, not derived from its bounds, and a task
 * may override them. The threshold is a majority of a neighbourhood, t = ⌊k/2⌋ + 1: a client's
 * secrets are recovered only if more than half of its neighbours survive, and no minority of them
 * (nor the server with them) recovers anything.
 */

export interface SecAggParams {
  /** Neighbours per client (even, ≤ n − 1). */
  k: number;
  /** Shares needed to reconstruct a secret. */
  t: number;
}

/**
 * k and t for n clients: k = min(n − 1, 2⌈log₂ n⌉ + 2) made even, t = ⌊k/2⌋ + 1; `override` replaces either (validated).
 *
 * @example
 * secAggParams(100); // { k: 16, t: 9 }
 */
export function secAggParams(n: number, override: Partial<SecAggParams> = {}): SecAggParams {
  if (!(Number.isInteger(n) && n >= 3)) throw new RangeError(`secure aggregation needs at least 3 clients, got ${n}`);
  let k = override.k ?? Math.min(n - 1, 2 * Math.ceil(Math.log2(n)) + 2);
  if (k % 2 === 1) k = k === n - 1 ? k : k - 1; // H(k, n) for odd k needs even n: keep k even unless it is every peer
  const t = override.t ?? Math.floor(k / 2) + 1;
  if (!(k >= 2 && k <= n - 1)) throw new RangeError(`k must be in [2, n − 1 = ${n - 1}], got ${k}`);
  if (!(t >= 2 && t <= k)) throw new RangeError(`t must be in [2, k = ${k}], got ${t}`);
  return { k, t };
}

/**
 * Each client's neighbours: the clients within k/2 places of it (cyclically) in `order`, a random
 * permutation of the ids the server draws for the round and publishes (k = n − 1: everyone).
 */
export function neighbours(order: readonly string[], k: number): Map<string, string[]> {
  const n = order.length;
  const out = new Map<string, string[]>();
  const half = Math.floor(k / 2);
  for (let i = 0; i < n; i++) {
    const ns = new Set<string>();
    if (k >= n - 1) for (let j = 0; j < n; j++) if (j !== i) ns.add(order[j]!);
    for (let d = 1; d <= half && k < n - 1; d++) {
      ns.add(order[(i + d) % n]!);
      ns.add(order[(i - d + n) % n]!);
    }
    out.set(order[i]!, [...ns]);
  }
  return out;
}
