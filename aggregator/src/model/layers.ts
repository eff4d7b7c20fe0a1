/**
 * @module The layer classes the topology check understands: for each, the output shapes and the
 * weights (names relative to the layer, shapes) it builds from its config and input shapes, as
 * tfjs-layers computes them; and the config readers, each throwing a TopologyError naming its field.
 */

export type Dim = number | null;
/** A tensor shape with its batch dimension first (null: unknown). */
export type Shape = Dim[];
export type Config = Record<string, unknown>;
export type LayerFn = (cfg: Config, inputs: Shape[]) => { outputs: Shape[]; weights: { name: string; shape: Dim[] }[] };

/** Why a topology cannot be built; its message names the layer and field. */
export class TopologyError extends Error {}

// ---------------------------------------------------------------------------------------------
// Config readers: each throws a TopologyError naming the field.

export function object(v: unknown, what: string): Config {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TopologyError(`${what} must be a JSON object`);
  return v as Config;
}

export function isPositive(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

function int(cfg: Config, key: string, dflt?: number, min = 1): number {
  const v = cfg[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
    throw new TopologyError(`${key} must be an integer ≥ ${min}, got ${JSON.stringify(cfg[key] ?? null)}`);
  return v;
}

/** An int or a tuple of `rank` ints (Keras accepts both for kernel sizes, strides, pools). */
function ints(cfg: Config, key: string, rank: number, dflt?: number | number[], min = 1): number[] {
  const v = cfg[key] ?? dflt;
  const list = typeof v === 'number' ? Array(rank).fill(v) : v;
  if (!Array.isArray(list) || list.length !== rank || !list.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min)) {
    throw new TopologyError(`${key} must be an integer ≥ ${min} or a list of ${rank}, got ${JSON.stringify(cfg[key] ?? null)}`);
  }
  return list as number[];
}

function bool(cfg: Config, key: string, dflt: boolean): boolean {
  const v = cfg[key] ?? dflt;
  if (typeof v !== 'boolean') throw new TopologyError(`${key} must be true or false`);
  return v;
}

function oneOf<T extends string>(cfg: Config, key: string, options: readonly T[], dflt: T): T {
  const v = cfg[key] ?? dflt;
  if (!options.includes(v as T)) throw new TopologyError(`${key} must be one of ${options.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function one(inputs: Shape[]): Shape {
  if (inputs.length !== 1) throw new TopologyError(`takes one input, got ${inputs.length}`);
  return inputs[0]!;
}

function rankOf(shape: Shape, rank: number, what: string): void {
  if (shape.length !== rank) throw new TopologyError(`needs a ${rank - 1}-D input per example (${what}), got shape [${shape.join(',')}]`);
}

/** tfjs-layers `convOutputLength` (also used for pooling). */
function convLength(n: Dim, kernel: number, padding: string, stride: number, dilation = 1): Dim {
  if (n === null) return null;
  const k = kernel + (kernel - 1) * (dilation - 1);
  const length = padding === 'valid' ? n - k + 1 : n;
  return Math.floor((length + stride - 1) / stride);
}

/** tfjs-layers `deconvLength`. */
function deconvLength(n: Dim, stride: number, kernel: number, padding: string): Dim {
  if (n === null) return null;
  return padding === 'valid' ? n * stride + Math.max(kernel - stride, 0) : n * stride;
}

function channelsFirst(cfg: Config): boolean {
  return oneOf(cfg, 'data_format', ['channels_last', 'channels_first'], 'channels_last') === 'channels_first';
}

/** Splits a [batch, ...spatial, channels] (or channels-first) shape. */
function spatial(shape: Shape, rank: number, first: boolean): { dims: Dim[]; channels: Dim } {
  rankOf(shape, rank + 2, first ? `[channels, ${rank} spatial]` : `[${rank} spatial, channels]`);
  return first ? { dims: shape.slice(2), channels: shape[1]! } : { dims: shape.slice(1, rank + 1), channels: shape[rank + 1]! };
}

function join(batch: Dim, dims: Dim[], channels: Dim, first: boolean): Shape {
  return first ? [batch, channels, ...dims] : [batch, ...dims, channels];
}

function bias(cfg: Config, size: Dim): { name: string; shape: Dim[] }[] {
  return bool(cfg, 'use_bias', true) ? [{ name: 'bias', shape: [size] }] : [];
}

// ---------------------------------------------------------------------------------------------
// Layers: output shapes and weights, as tfjs-layers computes them.

const identity: LayerFn = (_cfg, inputs) => ({ outputs: [one(inputs)], weights: [] });

function conv(rank: number, transposed = false): LayerFn {
  return (cfg, inputs) => {
    const x = one(inputs);
    const first = channelsFirst(cfg);
    const { dims, channels } = spatial(x, rank, first);
    const filters = int(cfg, 'filters');
    const kernel = ints(cfg, 'kernel_size', rank);
    const strides = ints(cfg, 'strides', rank, 1);
    const dilation = ints(cfg, 'dilation_rate', rank, 1);
    const padding = oneOf(cfg, 'padding', rank === 1 && !transposed ? ['valid', 'same', 'causal'] : ['valid', 'same'], 'valid');
    const out = dims.map((n, i) =>
      transposed ? deconvLength(n, strides[i]!, kernel[i]!, padding) : convLength(n, kernel[i]!, padding, strides[i]!, dilation[i]!),
    );
    const kernelShape = transposed ? [...kernel, filters, channels] : [...kernel, channels, filters];
    return { outputs: [join(x[0]!, out, filters, first)], weights: [{ name: 'kernel', shape: kernelShape }, ...bias(cfg, filters)] };
  };
}

function depthwise(separable: boolean): LayerFn {
  return (cfg, inputs) => {
    const x = one(inputs);
    const first = channelsFirst(cfg);
    const { dims, channels } = spatial(x, 2, first);
    const kernel = ints(cfg, 'kernel_size', 2);
    const strides = ints(cfg, 'strides', 2, 1);
    const dilation = ints(cfg, 'dilation_rate', 2, 1);
    const padding = oneOf(cfg, 'padding', ['valid', 'same'], 'valid');
    const multiplier = int(cfg, 'depth_multiplier', 1);
    const out = dims.map((n, i) => convLength(n, kernel[i]!, padding, strides[i]!, dilation[i]!));
    const depthOut = channels === null ? null : channels * multiplier;
    const weights = [{ name: 'depthwise_kernel', shape: [...kernel, channels, multiplier] }];
    if (!separable) return { outputs: [join(x[0]!, out, depthOut, first)], weights: [...weights, ...bias(cfg, depthOut)] };
    const filters = int(cfg, 'filters');
    weights.push({ name: 'pointwise_kernel', shape: [1, 1, depthOut, filters] });
    return { outputs: [join(x[0]!, out, filters, first)], weights: [...weights, ...bias(cfg, filters)] };
  };
}

function pool(rank: number): LayerFn {
  return (cfg, inputs) => {
    const x = one(inputs);
    const first = channelsFirst(cfg);
    const { dims, channels } = spatial(x, rank, first);
    const size = ints(cfg, 'pool_size', rank, 2);
    const strides = cfg.strides === null || cfg.strides === undefined ? size : ints(cfg, 'strides', rank);
    const padding = oneOf(cfg, 'padding', ['valid', 'same'], 'valid');
    return {
      outputs: [
        join(
          x[0]!,
          dims.map((n, i) => convLength(n, size[i]!, padding, strides[i]!)),
          channels,
          first,
        ),
      ],
      weights: [],
    };
  };
}

function globalPool(rank: number): LayerFn {
  return (cfg, inputs) => {
    const x = one(inputs);
    const first = channelsFirst(cfg);
    const { channels } = spatial(x, rank, first);
    return { outputs: [[x[0]!, channels]], weights: [] };
  };
}

function recurrent(gates: number, states: number): LayerFn {
  return (cfg, inputs) => {
    const x = one(inputs);
    rankOf(x, 3, '[timesteps, features]');
    const units = int(cfg, 'units');
    const output: Shape = bool(cfg, 'return_sequences', false) ? [x[0]!, x[1]!, units] : [x[0]!, units];
    const outputs = bool(cfg, 'return_state', false) ? [output, ...Array.from({ length: states }, (): Shape => [x[0]!, units])] : [output];
    return {
      outputs,
      weights: [{ name: 'kernel', shape: [x[2]!, units * gates] }, { name: 'recurrent_kernel', shape: [units, units * gates] }, ...bias(cfg, units * gates)],
    };
  };
}

/** Broadcast shapes right-aligned, as tfjs's elementwise merge layers do. */
const elementwise: LayerFn = (_cfg, inputs) => {
  if (inputs.length < 2) throw new TopologyError(`needs at least 2 inputs, got ${inputs.length}`);
  const rank = Math.max(...inputs.map((s) => s.length));
  const out: Shape = [];
  for (let i = 1; i <= rank; i++) {
    const dims = inputs.map((s): Dim => (s.length - i >= 0 ? (s[s.length - i] as Dim) : 1));
    const known = [...new Set(dims.filter((d) => d !== null && d !== 1))];
    if (known.length > 1) throw new TopologyError(`input shapes [${inputs.map((x) => x.join(',')).join('] and [')}] cannot be combined`);
    out.unshift(known[0] ?? (dims.includes(null) ? null : 1));
  }
  return { outputs: [out], weights: [] };
};

export const LAYERS: Record<string, LayerFn> = Object.assign(Object.create(null) as Record<string, LayerFn>, {
  Dense: (cfg, inputs) => {
    const x = one(inputs);
    const units = int(cfg, 'units');
    if (x.length < 2) throw new TopologyError('needs an input of rank ≥ 2');
    return { outputs: [[...x.slice(0, -1), units]], weights: [{ name: 'kernel', shape: [x[x.length - 1]!, units] }, ...bias(cfg, units)] };
  },
  Conv1D: conv(1),
  Conv2D: conv(2),
  Conv3D: conv(3),
  Conv2DTranspose: conv(2, true),
  Conv3DTranspose: conv(3, true),
  DepthwiseConv2D: depthwise(false),
  SeparableConv2D: depthwise(true),
  MaxPooling1D: pool(1),
  MaxPooling2D: pool(2),
  MaxPooling3D: pool(3),
  AveragePooling1D: pool(1),
  AveragePooling2D: pool(2),
  AveragePooling3D: pool(3),
  GlobalMaxPooling1D: globalPool(1),
  GlobalMaxPooling2D: globalPool(2),
  GlobalAveragePooling1D: globalPool(1),
  GlobalAveragePooling2D: globalPool(2),
  Flatten: (_cfg, inputs) => {
    const x = one(inputs);
    const rest = x.slice(1);
    if (rest.some((d) => d === null)) throw new TopologyError(`needs a fully defined input shape, got [${x.join(',')}]`);
    return { outputs: [[x[0]!, (rest as number[]).reduce((a, b) => a * b, 1)]], weights: [] };
  },
  Reshape: (cfg, inputs) => {
    const x = one(inputs);
    // tfjs writes the free dimension as null, Keras as -1.
    const target = Array.isArray(cfg.target_shape) ? cfg.target_shape.map((d) => (d === null ? -1 : d)) : null;
    if (!target || target.length === 0 || !target.every((d) => d === -1 || isPositive(d)) || target.filter((d) => d === -1).length > 1) {
      throw new TopologyError('target_shape must be a list of positive integers with at most one free dimension (-1 or null)');
    }
    const rest = x.slice(1);
    const known = (target as number[]).filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    if (rest.some((d) => d === null)) return { outputs: [[x[0]!, ...(target as number[]).map((d) => (d === -1 ? null : d))]], weights: [] };
    const total = (rest as number[]).reduce((a, b) => a * b, 1);
    const free = total / known;
    if (!Number.isInteger(free) || (!target.includes(-1) && total !== known))
      throw new TopologyError(`cannot reshape [${rest.join(',')}] to [${target.join(',')}]`);
    return { outputs: [[x[0]!, ...(target as number[]).map((d) => (d === -1 ? free : d))]], weights: [] };
  },
  Permute: (cfg, inputs) => {
    const x = one(inputs);
    const dims = cfg.dims;
    const n = x.length - 1;
    if (!Array.isArray(dims) || dims.length !== n || [...dims].sort((a, b) => a - b).some((d, i) => d !== i + 1))
      throw new TopologyError(`dims must be a permutation of 1..${n}`);
    return { outputs: [[x[0]!, ...(dims as number[]).map((d) => x[d]!)]], weights: [] };
  },
  RepeatVector: (cfg, inputs) => {
    const x = one(inputs);
    rankOf(x, 2, '[features]');
    return { outputs: [[x[0]!, int(cfg, 'n'), x[1]!]], weights: [] };
  },
  ZeroPadding2D: (cfg, inputs) => {
    const x = one(inputs);
    const first = channelsFirst(cfg);
    const { dims, channels } = spatial(x, 2, first);
    const [[t, b], [l, r]] = pairs(cfg, 'padding', 1);
    return { outputs: [join(x[0]!, [add(dims[0]!, t + b), add(dims[1]!, l + r)], channels, first)], weights: [] };
  },
  Cropping2D: (cfg, inputs) => {
    const x = one(inputs);
    const first = channelsFirst(cfg);
    const { dims, channels } = spatial(x, 2, first);
    const [[t, b], [l, r]] = pairs(cfg, 'cropping', 0);
    return { outputs: [join(x[0]!, [add(dims[0]!, -(t + b)), add(dims[1]!, -(l + r))], channels, first)], weights: [] };
  },
  UpSampling2D: (cfg, inputs) => {
    const x = one(inputs);
    const first = channelsFirst(cfg);
    const { dims, channels } = spatial(x, 2, first);
    const size = ints(cfg, 'size', 2, 2);
    return {
      outputs: [
        join(
          x[0]!,
          dims.map((d, i) => (d === null ? null : d * size[i]!)),
          channels,
          first,
        ),
      ],
      weights: [],
    };
  },
  Embedding: (cfg, inputs) => {
    const x = one(inputs);
    return { outputs: [[...x, int(cfg, 'output_dim')]], weights: [{ name: 'embeddings', shape: [int(cfg, 'input_dim'), int(cfg, 'output_dim')] }] };
  },
  SimpleRNN: recurrent(1, 1),
  GRU: recurrent(3, 1),
  LSTM: recurrent(4, 2),
  BatchNormalization: (cfg, inputs) => {
    const x = one(inputs);
    const d = x[axisOf(cfg, x)]!;
    const w = [];
    if (bool(cfg, 'scale', true)) w.push({ name: 'gamma', shape: [d] });
    if (bool(cfg, 'center', true)) w.push({ name: 'beta', shape: [d] });
    w.push({ name: 'moving_mean', shape: [d] }, { name: 'moving_variance', shape: [d] });
    return { outputs: [x], weights: w };
  },
  LayerNormalization: (cfg, inputs) => {
    const x = one(inputs);
    const axes = Array.isArray(cfg.axis) ? (cfg.axis as unknown[]) : [cfg.axis ?? -1];
    const shape = axes.map((a) => x[axisOf({ axis: a }, x)]!);
    const w = [];
    if (bool(cfg, 'scale', true)) w.push({ name: 'gamma', shape });
    if (bool(cfg, 'center', true)) w.push({ name: 'beta', shape });
    return { outputs: [x], weights: w };
  },
  PReLU: (cfg, inputs) => {
    const x = one(inputs);
    const shape = x.slice(1);
    const shared = cfg.shared_axes;
    for (const a of shared === null || shared === undefined ? [] : Array.isArray(shared) ? shared : [shared]) {
      if (!isPositive(a) || a >= x.length) throw new TopologyError(`shared_axes must name axes 1..${x.length - 1}`);
      shape[a - 1] = 1;
    }
    return { outputs: [x], weights: [{ name: 'alpha', shape }] };
  },
  Concatenate: (cfg, inputs) => {
    if (inputs.length < 2) throw new TopologyError(`needs at least 2 inputs, got ${inputs.length}`);
    const rank = inputs[0]!.length;
    if (inputs.some((s) => s.length !== rank)) throw new TopologyError('inputs must have the same rank');
    const axis = axisOf(cfg, inputs[0]!);
    const out = inputs[0]!.slice();
    for (const s of inputs.slice(1)) {
      for (let i = 1; i < rank; i++) {
        if (i === axis) out[i] = out[i] === null || s[i] === null ? null : out[i]! + s[i]!;
        else if (out[i] !== null && s[i] !== null && out[i] !== s[i]) throw new TopologyError(`inputs differ in axis ${i}: ${out[i]} and ${s[i]}`);
      }
    }
    return { outputs: [out], weights: [] };
  },
  Add: elementwise,
  Multiply: elementwise,
  Average: elementwise,
  Maximum: elementwise,
  Minimum: elementwise,
  Activation: identity,
  ReLU: identity,
  LeakyReLU: identity,
  ELU: identity,
  ThresholdedReLU: identity,
  Softmax: identity,
  Dropout: identity,
  SpatialDropout1D: identity,
  AlphaDropout: identity,
  GaussianDropout: identity,
  GaussianNoise: identity,
  Masking: identity,
  Rescaling: identity,
} satisfies Record<string, LayerFn>);

/** Layer classes the checker understands (InputLayer besides). */
export const SUPPORTED_LAYERS: readonly string[] = Object.keys(LAYERS).sort();

function axisOf(cfg: Config, x: Shape): number {
  const a = cfg.axis ?? -1;
  if (typeof a !== 'number' || !Number.isSafeInteger(a)) throw new TopologyError('axis must be an integer');
  const axis = a < 0 ? x.length + a : a;
  if (axis < 1 || axis >= x.length) throw new TopologyError(`axis ${a} is out of range for an input of rank ${x.length}`);
  return axis;
}

/** Keras padding/cropping: an int, [h, w], or [[top, bottom], [left, right]]. */
function pairs(cfg: Config, key: string, dflt: number): [[number, number], [number, number]] {
  const v = cfg[key] ?? dflt;
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (ok(v))
    return [
      [v, v],
      [v, v],
    ];
  if (Array.isArray(v) && v.length === 2 && v.every(ok)) {
    const [h, w] = v as [number, number];
    return [
      [h, h],
      [w, w],
    ];
  }
  if (Array.isArray(v) && v.length === 2 && v.every((p) => Array.isArray(p) && p.length === 2 && p.every(ok))) return v as [[number, number], [number, number]];
  throw new TopologyError(`${key} must be an integer, [h, w] or [[top, bottom], [left, right]]`);
}

function add(d: Dim, n: number): Dim {
  return d === null ? null : d + n;
}
