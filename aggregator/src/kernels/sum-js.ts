/**
 * @module The plain-JS running sum: typed-array loops with the same blocking and the same
 * IEEE-754 operations, in the same order, as the Wasm kernels (so the two give the same bits).
 */
import { type EncodedView, halfTable, INT8_BLOCK } from '#protocol/encoding.ts';
import {
  checkBatch,
  checkStagingLength,
  checkUpdate,
  checkWeight,
  disposed,
  FOLD,
  invWeight,
  PAGE,
  type RunningSum,
  SLICE,
  SumBookkeeping,
  sumWeights,
} from './sum-base.ts';

// ---------------------------------------------------------------------------------------------
// Plain-JS hot loops (small top-level functions so the JIT optimizes each on its own)

/** x*0 is ±0 for finite x and NaN for NaN/±Inf; a block sum of those is nonzero iff one is bad. */
export function jsFirstNonFinite(a: Float32Array): number {
  const n = a.length;
  const end8 = n - (n % 8);
  let i = 0;
  for (; i < end8; i += 8) {
    const z = a[i]! * 0 + a[i + 1]! * 0 + a[i + 2]! * 0 + a[i + 3]! * 0 + a[i + 4]! * 0 + a[i + 5]! * 0 + a[i + 6]! * 0 + a[i + 7]! * 0;
    if (z !== 0) break;
  }
  for (; i < n; i++) {
    const x = a[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}

function jsAcc1(s: Float64Array, u0: Float32Array, w0: number, b: number, e: number): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]!;
}

function jsAcc2(s: Float64Array, u0: Float32Array, u1: Float32Array, w0: number, w1: number, b: number, e: number): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]! + w1 * u1[i]!;
}

function jsAcc3(s: Float64Array, u0: Float32Array, u1: Float32Array, u2: Float32Array, w0: number, w1: number, w2: number, b: number, e: number): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]! + w1 * u1[i]! + w2 * u2[i]!;
}

function jsAcc4(
  s: Float64Array,
  u0: Float32Array,
  u1: Float32Array,
  u2: Float32Array,
  u3: Float32Array,
  w0: number,
  w1: number,
  w2: number,
  w3: number,
  b: number,
  e: number,
): void {
  for (let i = b; i < e; i++) s[i] = s[i]! + w0 * u0[i]! + w1 * u1[i]! + w2 * u2[i]! + w3 * u3[i]!;
}

/** Blocked batch: sum slices outer (each stays in cache), groups of four updates inner. */
function jsAddBatch(s: Float64Array, us: readonly Float32Array[], ws: readonly number[]): void {
  const n = s.length;
  const m = us.length;
  for (let b = 0; b < n; b += SLICE) {
    const e = Math.min(b + SLICE, n);
    let g = 0;
    for (; g + FOLD <= m; g += FOLD) jsAcc4(s, us[g]!, us[g + 1]!, us[g + 2]!, us[g + 3]!, ws[g]!, ws[g + 1]!, ws[g + 2]!, ws[g + 3]!, b, e);
    const r = m - g;
    if (r === 3) jsAcc3(s, us[g]!, us[g + 1]!, us[g + 2]!, ws[g]!, ws[g + 1]!, ws[g + 2]!, b, e);
    else if (r === 2) jsAcc2(s, us[g]!, us[g + 1]!, ws[g]!, ws[g + 1]!, b, e);
    else if (r === 1) jsAcc1(s, us[g]!, ws[g]!, b, e);
  }
}

function jsAccF16(s: Float64Array, h: Uint16Array, table: Float32Array, w: number): void {
  for (let i = 0; i < s.length; i++) s[i] = s[i]! + w * table[h[i]!]!;
}

function jsAccI8(s: Float64Array, q: Int8Array, scales: Float32Array, w: number): void {
  const n = s.length;
  for (let b = 0; b < scales.length; b++) {
    const scale = scales[b]!;
    const e = Math.min(n, (b + 1) * INT8_BLOCK);
    for (let i = b * INT8_BLOCK; i < e; i++) s[i] = s[i]! + w * Math.fround(q[i]! * scale);
  }
}

/** sum += w · decoded(u) in plain JS: the float16 table, or int8 × its block's scale rounded to float32. */
export function jsAddEncoded(s: Float64Array, u: EncodedView, w: number): void {
  if (u.encoding === 'float32') jsAcc1(s, u.data, w, 0, s.length);
  else if (u.encoding === 'float16') jsAccF16(s, u.data, halfTable(), w);
  else jsAccI8(s, u.data, u.scales, w);
}

function jsFinalize(s: Float64Array, base: Float32Array, out: Float32Array, invW: number): void {
  const n = s.length;
  for (let i = 0; i < n; i++) out[i] = base[i]! + s[i]! * invW;
}

export class JsRunningSum extends SumBookkeeping implements RunningSum {
  readonly implementation = 'js' as const;
  private stage = new Uint8Array(0);

  constructor(length: number) {
    super(length, new Float64Array(length));
  }

  add(update: Float32Array, weight: number): void {
    checkUpdate(update, this.length);
    checkWeight(weight);
    jsAcc1(this.s, update, weight, 0, this.length);
    this.totalWeight += weight;
    this.count += 1;
  }

  addBatch(updates: readonly Float32Array[], weights: readonly number[]): void {
    checkBatch(updates, weights, this.length);
    jsAddBatch(this.s, updates, weights);
    this.totalWeight = sumWeights(this.totalWeight, weights);
    this.count += updates.length;
  }

  addEncoded(update: EncodedView, weight: number): void {
    checkUpdate(update, this.length);
    checkWeight(weight);
    jsAddEncoded(this.s, update, weight);
    this.totalWeight += weight;
    this.count += 1;
  }

  finalizeInto(base: Float32Array, out: Float32Array): void {
    checkUpdate(base, this.length);
    checkUpdate(out, this.length);
    jsFinalize(this.s, base, out, invWeight(this.totalWeight));
  }

  /** Plain memory gains nothing from a slot: the caller reads into its own buffer. */
  stagingSlot(): null {
    return null;
  }

  readonly inPlaceAdds = 0;

  staging(byteLength: number): Uint8Array {
    checkStagingLength(byteLength);
    if (this.stage.length < byteLength) this.stage = new Uint8Array(Math.ceil(byteLength / PAGE) * PAGE);
    return this.stage.subarray(0, byteLength);
  }

  dispose(): void {
    this.s = new Float64Array(0);
    this.stage = new Uint8Array(0);
    disposed(this);
  }
}
