/**
 * @module Differential-privacy primitives shared by the client SDK and the aggregator: the L2 norm
 * both sides measure, clipping that provably stays within the bound, and the Gaussian noise
 * sampler.
 *
 * **Norm.** `l2Norm` sums squares in float64 in index order, then takes the square root. The SDK
 * clips with it and the server checks client-clipped updates with it, so both see the same number.
 *
 * **Clipping.** `clipToNorm` scales by S/‖Δ‖ and rounds each coordinate to float32; that rounding
 * can leave the norm a few ulps above S, so it shrinks again by one part in 2²² until `l2Norm`
 * reads ≤ S. The sensitivity bound then holds for the float32 values that are really summed.
 *
 * **Noise.** `SecureGaussian` draws standard normals by the Box–Muller transform in float64 from
 * 53-bit uniforms, taken from `crypto.getRandomValues` (never `Math.random`). What it does not
 * resist: Mironov's floating-point attack ("On Significance of the Least Significant Bits for
 * Differential Privacy", CCS 2012) targets exactly this construction, a textbook sampler over
 * floating point; its outputs are not spread evenly over the doubles, so which low-order bits a
 * noised value can have depends on the value that was noised, and in principle that leaks it. The
 * noised aggregate is rounded to float32 before anyone sees it (dropping 29 low bits, which blunts
 * the attack but does not prove it away). A snapping mechanism or a discrete Gaussian over an
 * integer grid (Canonne, Kamath, Steinke 2020) would close the gap; neither is implemented here.
 * The uniform's 53 bits cut the normal's tail at √(2·53·ln 2) ≈ 8.57 σ: each draw differs from an
 * exact normal by at most 2⁻⁵³ in total variation, far below any δ the platform accepts.
 */

/**
 * ‖v‖₂ in float64, summed in index order: the norm both the SDK and the server measure.
 *
 * @example
 * l2Norm(Float32Array.of(3, 4)); // 5
 */
export function l2Norm(v: ArrayLike<number>): number {
  let sq = 0;
  for (let i = 0; i < v.length; i++) sq += v[i]! * v[i]!;
  return Math.sqrt(sq);
}

/** One float32 ulp step down: scaling by this always lowers a normal float32's magnitude. */
const SHRINK = 1 - 2 ** -22;

/**
 * Scales `delta` in place so that `l2Norm(delta) ≤ bound` holds exactly for the float32 values it
 * holds afterwards. Returns the norm before clipping and whether it was above the bound.
 *
 * @example
 * const { norm, clipped } = clipToNorm(delta, 1.0); // l2Norm(delta) ≤ 1 now
 */
export function clipToNorm(delta: Float32Array, bound: number): { norm: number; clipped: boolean } {
  if (!(bound > 0) || !Number.isFinite(bound)) throw new RangeError(`clip norm must be a positive finite number, got ${bound}`);
  const norm = l2Norm(delta);
  if (norm <= bound) return { norm, clipped: false };
  let scale = bound / norm;
  for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! * scale;
  // float32 rounding may leave the norm a hair above the bound: shrink until it is not.
  for (let guard = 0; l2Norm(delta) > bound; guard++) {
    if (guard > 64) throw new Error('clipping did not converge (non-finite values?)');
    scale = SHRINK;
    for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! * scale;
  }
  return { norm, clipped: true };
}

/** A uniform double in [0, 1) from 53 bits of two random 32-bit words. */
export function uniformFromWords(a: number, b: number): number {
  return ((a >>> 5) * 67_108_864 + (b >>> 6)) / 9_007_199_254_740_992; // ((a >>> 5)·2²⁶ + (b >>> 6)) / 2⁵³
}

/** A source of uniform doubles in [0, 1) with 53 random bits. */
export interface UniformSource {
  next(): number;
}

/** Uniforms from `crypto.getRandomValues`, drawn 64 KiB at a time. */
export class CryptoUniform implements UniformSource {
  private readonly words = new Uint32Array(16_384); // getRandomValues fills at most 65,536 bytes a call
  private pos = this.words.length;

  next(): number {
    if (this.pos + 2 > this.words.length) {
      crypto.getRandomValues(this.words);
      this.pos = 0;
    }
    const a = this.words[this.pos++]!;
    return uniformFromWords(a, this.words[this.pos++]!);
  }
}

/**
 * Standard normal draws by Box–Muller over a secure uniform source (see the module note for what
 * it does and does not resist).
 *
 * @example
 * const noise = new SecureGaussian();
 * noise.addTo(sum, 1.1 * clipNorm); // sum[i] += N(0, (z·S)²), in float64
 */
export class SecureGaussian {
  private readonly uniform: UniformSource;
  private spare: number | null = null;

  /** `uniform` is for tests (a seeded source); production code uses the default. */
  constructor(uniform: UniformSource = new CryptoUniform()) {
    this.uniform = uniform;
  }

  /** One N(0, 1) draw. */
  standard(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = 1 - this.uniform.next(); // (0, 1]: ln u1 is finite
    const u2 = this.uniform.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** target[i] += N(0, σ²) for every i (float64 targets keep the noise unrounded). */
  addTo(target: Float64Array | Float32Array, sigma: number): void {
    if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new RangeError(`noise standard deviation must be finite and ≥ 0, got ${sigma}`);
    if (sigma === 0) return;
    for (let i = 0; i < target.length; i++) target[i] = target[i]! + sigma * this.standard();
  }
}
