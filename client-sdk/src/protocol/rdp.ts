/**
 * @module Rényi-DP accounting for the sampled Gaussian mechanism, shared by the aggregator
 * (central DP-FedAvg) and the SDK (local DP).
 *
 * - RDP of one step: Mironov, Talwar, Zhang, "Rényi Differential Privacy of the Sampled Gaussian
 *   Mechanism" (2019), §3.3: for an integer order α, the binomial expansion of
 *   A_α = E_{z∼μ0}[(μ(z)/μ0(z))^α] (their Theorem 5, eq. 3); for a fractional α, the two convergent
 *   series of their §3.3 (eq. for A_α with the erfc tails, "Computing A_α for fractional α"). The
 *   step's RDP is log(A_α)/(α − 1). Sampling is Poisson with rate q (each client independently):
 *   that is what this analysis assumes, and what the platform must do.
 * - Composition: RDP adds up over steps (Mironov 2017, Proposition 1).
 * - To (ε, δ): the improved conversion of Balle, Barthe, Gaboardi, Hsu, Sato, "Hypothesis testing
 *   interpretations and Rényi differential privacy" (AISTATS 2020), Theorem 21:
 *   ε = rdp + log((α − 1)/α) − (log δ + log α)/(α − 1), minimised over the orders; ε = 0 when
 *   δ² > 1 − e^(−rdp) (δ alone already covers the mechanism).
 *
 * The same formulas as Google's dp-accounting `rdp_privacy_accountant` (its `_compute_log_a_int`,
 * `_compute_log_a_frac`, `compute_epsilon`), written here from the papers.
 */

/** Orders used when none are given: fine steps below 11 (where small ε is found), then integers and a few large ones (dp-accounting's default grid). */
export const DEFAULT_RDP_ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 53 }, (_, x) => 11 + x),
  128,
  256,
  512,
];

/** log(e^a + e^b), exact for −∞ operands. */
function logAdd(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const m = Math.max(a, b);
  return m + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/** log(e^a − e^b) for a ≥ b. */
function logSub(a: number, b: number): number {
  if (b === -Infinity) return a;
  if (a < b) throw new RangeError('logSub: the result would be negative');
  if (a === b) return -Infinity;
  return a + Math.log(-Math.expm1(b - a));
}

/**
 * log(erfc(x)), erfc to about 1e-14 absolute (1e-11 relative), without underflow for large x. The fractional-order series sums
 * terms of alternating sign whose total is 1 + O(ε), so erfc must be far more exact than a
 * single-precision fit: below 2.5, erfc = 1 − erf by the Taylor series of erf (its largest term
 * is below 20 there, so fewer than 2 digits are lost); from 2.5, Laplace's continued fraction
 * erfc(x) = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + (3/2)/(x + …)))), taken in log space (evaluated
 * backwards from 120 terms, converged to double precision for x ≥ 2.5); erfc(−x) = 2 − erfc(x).
 */
export function logErfc(x: number): number {
  if (x < 0) return Math.log(2 - Math.exp(logErfc(-x)));
  if (x < 2.5) {
    // erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.log1p(-(2 / Math.sqrt(Math.PI)) * sum);
  }
  let f = x;
  for (let k = 120; k >= 1; k--) f = x + k / 2 / f;
  return -x * x - 0.5 * Math.log(Math.PI) - Math.log(f);
}

/** log|binom(α, i)| and its sign, for real α and integer i ≥ 0 (product form). */
function logBinom(alpha: number, i: number): { log: number; sign: number } {
  let log = 0;
  let sign = 1;
  for (let k = 0; k < i; k++) {
    const f = (alpha - k) / (k + 1);
    if (f === 0) return { log: -Infinity, sign: 0 };
    if (f < 0) sign = -sign;
    log += Math.log(Math.abs(f));
  }
  return { log, sign };
}

/** log A_α for an integer α ≥ 2 (Mironov et al. 2019, the binomial expansion). */
function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  for (let i = 0; i <= alpha; i++) {
    const coef = logBinom(alpha, i).log + i * Math.log(q) + (alpha - i) * Math.log1p(-q);
    logA = logAdd(logA, coef + (i * i - i) / (2 * sigma * sigma));
  }
  return logA;
}

/** log A_α for a fractional α > 1 (Mironov et al. 2019 §3.3: two series with erfc tails, summed until their terms fall below e^−30). */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  for (let i = 0; ; i++) {
    const { log: logCoef, sign } = logBinom(alpha, i);
    const j = alpha - i;
    const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (sign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else if (sign < 0) {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30 || i > 10_000) break;
  }
  return logAdd(logA0, logA1);
}

/**
 * RDP at `order` of `steps` compositions of the sampled Gaussian mechanism: Poisson sampling rate
 * `q`, noise multiplier `z` (noise standard deviation ÷ L2 sensitivity).
 */
export function sampledGaussianRdp(q: number, z: number, steps: number, order: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate q must be in [0, 1], got ${q}`);
  if (!(z > 0)) throw new RangeError(`noise multiplier must be positive, got ${z}`);
  if (!(order > 1)) throw new RangeError(`RDP order must be > 1, got ${order}`);
  if (!(Number.isInteger(steps) && steps >= 0)) throw new RangeError(`steps must be a whole number ≥ 0, got ${steps}`);
  if (q === 0 || steps === 0) return 0;
  if (q === 1) return (steps * order) / (2 * z * z);
  if (order === Infinity) return Infinity;
  const logA = Number.isInteger(order) ? logAInt(q, z, order) : logAFrac(q, z, order);
  return (steps * logA) / (order - 1);
}

/**
 * The smallest ε for which the RDP curve `rdp` (at `orders`) gives (ε, δ)-DP, with the order that
 * gives it (Balle et al. 2020, Theorem 21).
 */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`δ must be in (0, 1), got ${delta}`);
  if (orders.length !== rdp.length || orders.length === 0) throw new RangeError('one RDP value per order, at least one');
  let best = { epsilon: Infinity, order: NaN };
  for (const [k, a] of orders.entries()) {
    const r = rdp[k]!;
    if (!(a >= 1)) throw new RangeError(`RDP order must be ≥ 1, got ${a}`);
    if (!(r >= 0)) throw new RangeError(`RDP must be ≥ 0, got ${r}`);
    let eps: number;
    if (delta * delta + Math.expm1(-r) > 0) eps = 0;
    else if (a > 1.01) eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    else eps = Infinity;
    if (eps < best.epsilon) best = { epsilon: eps, order: a };
  }
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

/**
 * ε at `delta` after `steps` rounds of the sampled Gaussian mechanism (q, z), over `orders`.
 *
 * @example
 * sampledGaussianEpsilon(0.01, 1.1, 1000, 1e-5).epsilon; // q = 1%, z = 1.1, 1,000 rounds
 */
export function sampledGaussianEpsilon(
  q: number,
  z: number,
  steps: number,
  delta: number,
  orders: readonly number[] = DEFAULT_RDP_ORDERS,
): { epsilon: number; order: number } {
  return epsilonFromRdp(
    orders,
    orders.map((a) => sampledGaussianRdp(q, z, steps, a)),
    delta,
  );
}
