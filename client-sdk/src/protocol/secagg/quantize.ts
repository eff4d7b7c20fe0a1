/**
 * @module Updates as integers modulo 2³², the ring secure aggregation sums in.
 *
 * Each coordinate is clipped to [−c, c] (`clipRange`), multiplied by the client's normalized
 * example weight w/W ∈ (0, 1] (W the task's cap on example counts), scaled by 2^f and rounded to
 * the nearest integer; the weight w/W itself is appended as one more coordinate, quantized the same
 * way. The unmasked sum then holds Σ (wᵢ/W)·Δᵢ and Σ wᵢ/W, and their ratio is FedAvg's weighted
 * mean. The sum of n clients stays below 2³¹ in magnitude, so it decodes as a signed integer,
 * when n · c · 2^f < 2³¹: `fractionBits(n, c)` picks the largest such f (the aggregator refuses,
 * at task creation, an n and c that leave fewer than 12 fraction bits).
 * The aggregator adds the vectors with `addMask(sum, y, 1)` (prg.ts).
 *
 * Error bound: each client's rounding is at most 2^−(f+1) per coordinate (and on its weight), so
 * both quantized sums are within ε = n · 2^−(f+1) of the exact ones, and each coordinate of the
 * decoded mean within ε · (1 + |mean|) / (Σ wᵢ/W − ε) of the exact weighted mean (`meanErrorBound`).
 */

const TWO_31 = 2 ** 31;

/** A word of the ring read as a signed integer in [−2³¹, 2³¹) (the sums stay below 2³¹ in magnitude). */
export function signedWord(u: number): number {
  return u >= TWO_31 ? u - 2 * TWO_31 : u;
}

/** The largest f with n · c · 2^f < 2³¹ (at most 24: float32 has 24 bits of mantissa). */
export function fractionBits(maxClients: number, clipRange: number): number {
  const f = Math.floor(Math.log2((TWO_31 - 1) / (maxClients * clipRange)));
  return Math.min(24, f);
}

export interface Quantization {
  /** c: coordinates are clipped to [−c, c]. */
  clipRange: number;
  /** f: values are scaled by 2^f. */
  fractionBits: number;
}

/**
 * Δ as d + 1 words: round(clip(Δᵢ) · v · 2^f) mod 2³², then round(w · 2^f), with w ∈ (0, 1] the
 * normalized example weight and v the weight Δ is scaled by: w itself for FedAvg's weighted mean,
 * 1 under central DP (DP-FedAvg sums clipped updates with equal weights, and the last word then
 * sums the example counts only).
 *
 * @example
 * const words = quantize(delta, numExamples / maxExamples, { clipRange: 1, fractionBits: 20 });
 */
export function quantize(delta: ArrayLike<number>, weight: number, q: Quantization, deltaWeight = weight): Uint32Array {
  if (!(weight > 0 && weight <= 1)) throw new RangeError(`the normalized weight must be in (0, 1], got ${weight}`);
  if (!(deltaWeight > 0 && deltaWeight <= 1)) throw new RangeError(`the weight of Δ must be in (0, 1], got ${deltaWeight}`);
  const scale = 2 ** q.fractionBits;
  const out = new Uint32Array(delta.length + 1);
  for (let i = 0; i < delta.length; i++) {
    const x = Math.min(q.clipRange, Math.max(-q.clipRange, delta[i]!));
    out[i] = Math.round(x * deltaWeight * scale) >>> 0;
  }
  out[delta.length] = Math.round(weight * scale) >>> 0;
  return out;
}

/** The weighted mean from an unmasked sum of quantized vectors: (Σ wᵢΔᵢ) / (Σ wᵢ), as float64. */
export function dequantizeMean(sum: Uint32Array): Float64Array {
  const total = signedWord(sum[sum.length - 1]!);
  if (total <= 0) throw new RangeError('the sum holds no weight');
  const out = new Float64Array(sum.length - 1);
  for (let i = 0; i < out.length; i++) out[i] = signedWord(sum[i]!) / total;
  return out;
}

/**
 * The largest error of one coordinate of `dequantizeMean` against the exact weighted mean, for n
 * clients of total normalized weight `totalWeight` and a mean of magnitude at most `meanAbs`.
 *
 * @example
 * meanErrorBound(10, 24, 5, 1); // ≈ 1.2e-7
 */
export function meanErrorBound(n: number, fractionBits: number, totalWeight: number, meanAbs: number): number {
  const e = n * 2 ** -(fractionBits + 1);
  return (e * (1 + meanAbs)) / (totalWeight - e);
}

/** Σ Δᵢ from an unmasked sum of vectors quantized with Δ's weight 1 (central DP), as float64, and Σ wᵢ. */
export function dequantizeSum(sum: Uint32Array, fractionBits: number): { sum: Float64Array; weight: number } {
  const scale = 2 ** -fractionBits;
  const out = new Float64Array(sum.length - 1);
  for (let i = 0; i < out.length; i++) out[i] = signedWord(sum[i]!) * scale;
  return { sum: out, weight: signedWord(sum[sum.length - 1]!) * scale };
}

/**
 * Under central DP, the L2 norm a client clips to before quantizing, so that its quantized update
 * still has norm ≤ S: rounding moves each of the d coordinates by at most 2^−(f+1), so the
 * quantized vector is within √d · 2^−(f+1) of the clipped one. Throws when nothing is left.
 */
export function quantizedClipNorm(clipNorm: number, length: number, fractionBits: number): number {
  const margin = Math.sqrt(length) * 2 ** -(fractionBits + 1);
  if (!(clipNorm > margin)) throw new RangeError(`clip norm ${clipNorm} is within the quantization margin √d · 2^−(f+1) = ${margin}`);
  return clipNorm - margin;
}
