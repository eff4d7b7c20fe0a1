/**
 * @module What a TensorFlow.js Layers topology builds: its layers' weights, by name and shape.
 *
 * A task's `modelTopology` is what `tf.models.modelFromJSON` gets on every client. Rather than
 * bundle tfjs into the Worker (1–2 MB, and its wasm backend does not start in workerd), this is a
 * small pure checker: it walks the Keras-format JSON that `model.toJSON()` / `model.save()` write,
 * infers each layer's input and output shapes the way tfjs-layers does (same output-length rules
 * for convolutions and pooling), and lists the weights each layer creates, named
 * `<layer name>/<weight>` as tfjs names them (`LayerVariable.originalName`). A test builds models
 * with real tfjs and checks this list against `model.weights` for every supported layer class.
 *
 * Supported: Sequential and functional (`Model`/`Functional`) models of the layer classes in
 * {@link SUPPORTED_LAYERS}. A layer class tfjs knows but this checker does not (wrappers such as
 * Bidirectional and TimeDistributed, ConvLSTM2D, nested models, preprocessing layers) is refused
 * with a message naming it, rather than accepted unchecked.
 */

import { type Config, isPositive, LAYERS, type LayerFn, object, type Shape, SUPPORTED_LAYERS, TopologyError } from './layers.ts';

export interface TopologyWeight {
  /** `<layer name>/<weight name>`, e.g. `dense_1/kernel`. */
  name: string;
  shape: number[];
}

export type TopologyResult = { ok: true; weights: TopologyWeight[] } | { ok: false; message: string };

/** Layer classes tfjs-layers 4 registers (from `tf.serialization.SerializationMap`). */
const TFJS_LAYERS = new Set(
  (
    'Activation Add AlphaDropout Average AveragePooling1D AveragePooling2D AveragePooling3D BatchNormalization Bidirectional CategoryEncoding CenterCrop ' +
    'Concatenate Conv1D Conv2D Conv2DTranspose Conv3D Conv3DTranspose ConvLSTM2D Cropping2D Dense DepthwiseConv2D Dot Dropout ELU Embedding Flatten ' +
    'GRU GaussianDropout GaussianNoise GlobalAveragePooling1D GlobalAveragePooling2D GlobalMaxPooling1D GlobalMaxPooling2D InputLayer LSTM ' +
    'LayerNormalization LeakyReLU Masking MaxPooling1D MaxPooling2D MaxPooling3D Maximum Minimum Multiply PReLU Permute RNN RandomWidth ReLU ' +
    'RepeatVector Rescaling Reshape Resizing SeparableConv2D SimpleRNN Softmax SpatialDropout1D ThresholdedReLU TimeDistributed UpSampling2D ' +
    'ZeroPadding2D Sequential Model Functional'
  ).split(' '),
);

const MAX_LAYERS = 2_000;

export { SUPPORTED_LAYERS } from './layers.ts';

/**
 * The weights a topology builds, or why a client could not build it.
 *
 * @example
 * const r = topologyWeights(modelJson.modelTopology);
 * if (!r.ok) throw new Error(r.message); // e.g. 'layer "d1" (Dense): units must be a positive integer'
 */
export function topologyWeights(topology: unknown): TopologyResult {
  try {
    return { ok: true, weights: modelWeights(topology) };
  } catch (e) {
    if (e instanceof TopologyError) return { ok: false, message: e.message };
    throw e;
  }
}

/**
 * The first difference between the weights a topology builds and the tensors given for it, or
 * null when they hold the same names with the same shapes (in any order: clients match by name).
 */
export function firstWeightDifference(built: readonly TopologyWeight[], given: readonly { name: string; shape: readonly number[] }[]): string | null {
  const byName = new Map(built.map((w) => [w.name, w]));
  for (const t of given) {
    const w = byName.get(t.name);
    if (!w) return `initialWeights has tensor "${t.name}", which the topology does not create (it creates ${listNames(built)})`;
    if (!sameShape(w.shape, t.shape)) return `tensor "${t.name}" has shape [${t.shape.join(',')}]; the topology creates it with shape [${w.shape.join(',')}]`;
  }
  const givenNames = new Set(given.map((t) => t.name));
  const missing = built.find((w) => !givenNames.has(w.name));
  return missing ? `the topology creates weight "${missing.name}" [${missing.shape.join(',')}], which initialWeights lacks` : null;
}

function listNames(ws: readonly TopologyWeight[]): string {
  if (ws.length === 0) return 'no weights';
  const shown = ws.slice(0, 5).map((w) => `"${w.name}"`);
  return ws.length > 5 ? `${shown.join(', ')} and ${ws.length - 5} more` : shown.join(', ');
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function modelWeights(topology: unknown): TopologyWeight[] {
  const top = object(topology, 'modelTopology');
  const className = top.class_name;
  if (className === 'Sequential') return sequentialWeights(top.config);
  if (className === 'Model' || className === 'Functional') return functionalWeights(object(top.config, 'modelTopology.config'));
  throw new TopologyError(
    `modelTopology.class_name must be "Sequential", "Model" or "Functional" (a tfjs Layers model), got ${JSON.stringify(className ?? null)}`,
  );
}

function sequentialWeights(config: unknown): TopologyWeight[] {
  // Keras writes `{ name, layers }`; old files write the layer list itself.
  const layers = Array.isArray(config) ? config : object(config, 'modelTopology.config').layers;
  if (!Array.isArray(layers) || layers.length === 0) throw new TopologyError('a Sequential model needs a non-empty config.layers list');
  if (layers.length > MAX_LAYERS) throw new TopologyError(`the model has ${layers.length} layers; at most ${MAX_LAYERS} are accepted`);
  const weights: TopologyWeight[] = [];
  const names = new Set<string>();
  let shape: Shape | null = null;
  layers.forEach((raw, i) => {
    const { className, cfg, name } = layerOf(raw, `layer ${i}`, names);
    if (shape === null) {
      shape = batchInputShape(cfg);
      if (shape === null)
        throw new TopologyError(`layer "${name}" is the first of a Sequential model and needs batch_input_shape, or clients cannot build its weights`);
      if (className === 'InputLayer') return;
    } else if (className === 'InputLayer') {
      throw new TopologyError(`layer "${name}": an InputLayer may only come first`);
    }
    const built = applyLayer(className, name, cfg, [shape]);
    if (built.outputs.length !== 1)
      throw new TopologyError(`layer "${name}" (${className}) has ${built.outputs.length} outputs; a Sequential model needs one per layer`);
    shape = built.outputs[0]!;
    weights.push(...built.weights);
  });
  return weights;
}

interface NodeRef {
  layer: string;
  node: number;
  tensor: number;
}

function functionalWeights(config: Config): TopologyWeight[] {
  const layers = config.layers;
  if (!Array.isArray(layers) || layers.length === 0) throw new TopologyError('a functional model needs a non-empty config.layers list');
  if (layers.length > MAX_LAYERS) throw new TopologyError(`the model has ${layers.length} layers; at most ${MAX_LAYERS} are accepted`);
  const names = new Set<string>();
  const entries = layers.map((raw, i) => {
    const { className, cfg, name } = layerOf(raw, `layer ${i}`, names);
    const inbound = (raw as Config).inbound_nodes;
    if (!Array.isArray(inbound)) throw new TopologyError(`layer "${name}" needs an inbound_nodes list`);
    const nodes = inbound.map((node, k) => {
      if (!Array.isArray(node) || node.length === 0)
        throw new TopologyError(`layer "${name}": inbound node ${k} is not a non-empty list of [layer, node, tensor] references`);
      return node.map((ref) => nodeRef(ref, `layer "${name}" inbound node ${k}`));
    });
    if (className === 'InputLayer' ? nodes.length !== 0 : nodes.length === 0) {
      throw new TopologyError(
        className === 'InputLayer' ? `input layer "${name}" must have no inbound nodes` : `layer "${name}" (${className}) is never called (no inbound nodes)`,
      );
    }
    return { className, cfg, name, nodes, outputs: [] as (Shape[] | undefined)[] };
  });
  const byName = new Map(entries.map((e) => [e.name, e]));
  const weights: TopologyWeight[] = [];
  const resolve = (ref: NodeRef): Shape | undefined => {
    const src = byName.get(ref.layer);
    if (!src) throw new TopologyError(`a reference names layer "${ref.layer}", which the model does not have`);
    const out = src.outputs[ref.node];
    if (out === undefined) return undefined;
    const shape = out[ref.tensor];
    if (!shape) throw new TopologyError(`a reference names output ${ref.tensor} of layer "${ref.layer}", which has ${out.length}`);
    return shape;
  };
  for (const e of entries) {
    if (e.className !== 'InputLayer') continue;
    const shape = batchInputShape(e.cfg);
    if (shape === null) throw new TopologyError(`input layer "${e.name}" needs batch_input_shape`);
    e.outputs[0] = [shape];
  }
  // Layers are usually listed in topological order; a few passes settle any other order.
  for (let progress = true; progress; ) {
    progress = false;
    for (const e of entries) {
      for (let k = 0; k < e.nodes.length; k++) {
        if (e.outputs[k] !== undefined) continue;
        const inputs = e.nodes[k]!.map(resolve);
        if (inputs.some((s) => s === undefined)) continue;
        const built = applyLayer(e.className, e.name, e.cfg, inputs as Shape[]);
        if (k === 0) weights.push(...built.weights); // a shared layer's later calls reuse its weights
        e.outputs[k] = built.outputs;
        progress = true;
      }
    }
  }
  const stuck = entries.find((e) => e.outputs.length < e.nodes.length || e.outputs.some((o) => o === undefined));
  if (stuck) throw new TopologyError(`the inputs of layer "${stuck.name}" cannot be resolved (a cycle, or a reference to a node that does not exist)`);
  for (const key of ['input_layers', 'output_layers'] as const) {
    const refs = config[key];
    if (!Array.isArray(refs) || refs.length === 0) throw new TopologyError(`a functional model needs a non-empty config.${key} list`);
    for (const ref of refs) {
      const shape = resolve(nodeRef(ref, `config.${key}`));
      if (!shape) throw new TopologyError(`config.${key} names a node that does not exist`);
    }
  }
  return weights;
}

function nodeRef(raw: unknown, where: string): NodeRef {
  if (!Array.isArray(raw) || raw.length < 3 || typeof raw[0] !== 'string' || !isIndex(raw[1]) || !isIndex(raw[2])) {
    throw new TopologyError(`${where}: a reference must be [layer name, node index, tensor index]`);
  }
  return { layer: raw[0], node: raw[1], tensor: raw[2] };
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function layerOf(raw: unknown, where: string, names: Set<string>): { className: string; cfg: Config; name: string } {
  const layer = object(raw, where);
  const className = layer.class_name;
  if (typeof className !== 'string') throw new TopologyError(`${where} has no class_name`);
  const cfg = object(layer.config, `${where} (${className}) config`);
  const name = cfg.name;
  if (typeof name !== 'string' || name.length === 0) throw new TopologyError(`${where} (${className}) has no name: clients name its weights after it`);
  if (names.has(name)) throw new TopologyError(`two layers are named "${name}"`);
  names.add(name);
  if (!TFJS_LAYERS.has(className)) throw new TopologyError(`layer "${name}": TensorFlow.js has no layer class "${className}"`);
  if (!Object.hasOwn(LAYERS, className) && className !== 'InputLayer') {
    throw new TopologyError(`layer "${name}": layer class ${className} is not supported by fedge's topology check (supported: ${SUPPORTED_LAYERS.join(', ')})`);
  }
  if (cfg.dtype !== undefined && cfg.dtype !== null && cfg.dtype !== 'float32')
    throw new TopologyError(`layer "${name}" has dtype ${JSON.stringify(cfg.dtype)}; fedge moves float32 weights only`);
  return { className, cfg, name };
}

function batchInputShape(cfg: Config): Shape | null {
  const raw = cfg.batch_input_shape ?? cfg.batch_shape;
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw) || raw.length < 2 || raw.length > 8 || !raw.every((d) => d === null || isPositive(d))) {
    throw new TopologyError(`layer "${String(cfg.name)}": batch_input_shape must be [null, ...dimensions] (positive integers or null)`);
  }
  return raw as Shape;
}

function applyLayer(className: string, name: string, cfg: Config, inputs: Shape[]): { outputs: Shape[]; weights: TopologyWeight[] } {
  const fn = LAYERS[className]!;
  let built: ReturnType<LayerFn>;
  try {
    built = fn(cfg, inputs);
  } catch (e) {
    if (e instanceof TopologyError) throw new TopologyError(`layer "${name}" (${className}): ${e.message}`);
    throw e;
  }
  for (const out of built.outputs) {
    if (out.some((d) => d !== null && (!Number.isSafeInteger(d) || d <= 0)))
      throw new TopologyError(`layer "${name}" (${className}) would output shape [${out.join(',')}]`);
  }
  return {
    outputs: built.outputs,
    weights: built.weights.map((w) => {
      if (!w.shape.every(isPositive))
        throw new TopologyError(`layer "${name}" (${className}): weight "${w.name}" needs known input dimensions, got [${w.shape.join(',')}]`);
      return { name: `${name}/${w.name}`, shape: w.shape as number[] };
    }),
  };
}
