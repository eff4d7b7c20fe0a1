import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { firstWeightDifference, SUPPORTED_LAYERS, type TopologyWeight, topologyWeights } from './topology.ts';

/**
 * What a client builds: tfjs's `model.weights` (original names, shapes) of the model rebuilt from
 * the topology JSON, as the SDK rebuilds it, sorted by name. (Not the original model's: tfjs does
 * not always round-trip, e.g. SeparableConv2D drops depth_multiplier from its config.)
 */
async function tfjsWeights(model: tf.LayersModel): Promise<TopologyWeight[]> {
  const rebuilt = await tf.models.modelFromJSON({ modelTopology: model.toJSON(undefined, false) } as unknown as tf.io.ModelJSON);
  try {
    return rebuilt.weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })).sort((a, b) => a.name.localeCompare(b.name));
  } finally {
    rebuilt.dispose();
  }
}

function checked(model: tf.LayersModel): TopologyWeight[] {
  const r = topologyWeights(model.toJSON(undefined, false));
  if (!r.ok) throw new Error(r.message);
  return [...r.weights].sort((a, b) => a.name.localeCompare(b.name));
}

const L = tf.layers;
const seq = (layers: tf.layers.Layer[]) => tf.sequential({ layers });

/** Models covering every supported layer class, built by real tfjs. */
const MODELS: [string, () => tf.LayersModel][] = [
  [
    'dense stack with and without bias',
    () =>
      seq([
        L.dense({ name: 'd1', inputShape: [7], units: 5 }),
        L.dense({ name: 'd2', units: 3, useBias: false }),
        L.dense({ name: 'd3', units: 2, activation: 'softmax' }),
      ]),
  ],
  ['dense on a 3-D input', () => seq([L.dense({ name: 'd', inputShape: [4, 6], units: 2 })])],
  [
    'conv1d valid/same/causal, strides, dilation, pooling 1-D',
    () =>
      seq([
        L.conv1d({ name: 'c1', inputShape: [50, 3], filters: 4, kernelSize: 5 }),
        L.conv1d({ name: 'c2', filters: 6, kernelSize: 3, padding: 'same', strides: 2 }),
        L.conv1d({ name: 'c3', filters: 2, kernelSize: 3, padding: 'causal', dilationRate: 2 }),
        L.maxPooling1d({ name: 'p1', poolSize: 3 }),
        L.averagePooling1d({ name: 'p2', poolSize: 2, strides: 1, padding: 'same' }),
        L.globalMaxPooling1d({ name: 'gm' }),
        L.reshape({ name: 'back', targetShape: [2, 1] }),
        L.globalAveragePooling1d({ name: 'g' }),
        L.dense({ name: 'out', units: 3 }),
      ]),
  ],
  [
    'conv2d, pooling, padding, cropping, upsampling',
    () =>
      seq([
        L.conv2d({ name: 'c1', inputShape: [28, 28, 1], filters: 8, kernelSize: 5, activation: 'relu' }),
        L.maxPooling2d({ name: 'p1', poolSize: 2 }),
        L.conv2d({ name: 'c2', filters: 4, kernelSize: [3, 2], strides: [2, 1], padding: 'same', useBias: false }),
        L.zeroPadding2d({
          name: 'zp',
          padding: [
            [1, 2],
            [0, 3],
          ],
        }),
        L.cropping2D({ name: 'cr', cropping: [1, 1] }),
        L.upSampling2d({ name: 'up', size: [2, 3] }),
        L.averagePooling2d({ name: 'p2', poolSize: [2, 2], strides: [1, 2], padding: 'same' }),
        L.conv2dTranspose({ name: 'ct', filters: 3, kernelSize: 3, strides: 2 }),
        L.conv2dTranspose({ name: 'ct2', filters: 2, kernelSize: 2, strides: 2, padding: 'same' }),
        L.flatten({ name: 'f' }),
        L.dense({ name: 'out', units: 10 }),
      ]),
  ],
  [
    'depthwise and separable convolutions, global max pooling',
    () =>
      seq([
        L.depthwiseConv2d({ name: 'dw', inputShape: [16, 16, 3], kernelSize: 3, depthMultiplier: 2 }),
        L.separableConv2d({ name: 'sep', filters: 5, kernelSize: 3, depthMultiplier: 3, padding: 'same' }),
        L.globalMaxPooling2d({ name: 'g' }),
      ]),
  ],
  [
    'conv2d channels first',
    () =>
      seq([
        L.conv2d({ name: 'c', inputShape: [3, 12, 10], filters: 4, kernelSize: 3, dataFormat: 'channelsFirst' }),
        L.globalAveragePooling2d({ name: 'g', dataFormat: 'channelsFirst' }),
      ]),
  ],
  [
    'conv3d, transposed conv3d and 3-D pooling',
    () =>
      seq([
        L.conv3d({ name: 'c', inputShape: [8, 8, 8, 2], filters: 3, kernelSize: 3 }),
        L.maxPooling3d({ name: 'p', poolSize: 2 }),
        L.averagePooling3d({ name: 'a', poolSize: 1 }),
        L.conv3dTranspose({ name: 'ct', filters: 2, kernelSize: 2, strides: 2 }),
      ]),
  ],
  [
    'batch and layer normalization, activations, dropouts',
    () =>
      seq([
        L.dense({ name: 'd', inputShape: [6], units: 4 }),
        L.batchNormalization({ name: 'bn' }),
        L.batchNormalization({ name: 'bn2', center: false }),
        L.layerNormalization({ name: 'ln' }),
        L.layerNormalization({ name: 'ln2', scale: false }),
        L.activation({ name: 'act', activation: 'tanh' }),
        L.reLU({ name: 'relu' }),
        L.leakyReLU({ name: 'lrelu' }),
        L.elu({ name: 'elu' }),
        L.thresholdedReLU({ name: 'trelu' }),
        L.softmax({ name: 'sm' }),
        L.dropout({ name: 'drop', rate: 0.5 }),
        L.alphaDropout({ name: 'ad', rate: 0.1 }),
        L.gaussianDropout({ name: 'gd', rate: 0.1 }),
        L.gaussianNoise({ name: 'gn', stddev: 0.1 }),
        L.prelu({ name: 'prelu' }),
      ]),
  ],
  [
    'PReLU with shared axes',
    () => seq([L.conv2d({ name: 'c', inputShape: [6, 6, 2], filters: 3, kernelSize: 1 }), L.prelu({ name: 'p', sharedAxes: [1, 2] })]),
  ],
  [
    'embedding and recurrent layers',
    () =>
      seq([
        L.embedding({ name: 'emb', inputDim: 100, outputDim: 8, inputLength: 12 }),
        L.simpleRNN({ name: 'rnn', units: 5, returnSequences: true }),
        L.lstm({ name: 'lstm', units: 6, returnSequences: true }),
        L.spatialDropout1d({ name: 'sd', rate: 0.1 }),
        L.gru({ name: 'gru', units: 4, useBias: false }),
        L.repeatVector({ name: 'rep', n: 3 }),
        L.permute({ name: 'perm', dims: [2, 1] }),
        L.reshape({ name: 'resh', targetShape: [-1, 2] }),
        L.masking({ name: 'mask' }),
      ]),
  ],
  [
    'functional: shared layer, merges, concatenation, two inputs',
    () => {
      const a = tf.input({ shape: [8], name: 'a' });
      const b = tf.input({ shape: [8], name: 'b' });
      const shared = L.dense({ name: 'shared', units: 4 });
      const ha = shared.apply(a) as tf.SymbolicTensor;
      const hb = shared.apply(b) as tf.SymbolicTensor;
      const merged = [
        L.add({ name: 'add' }).apply([ha, hb]),
        L.multiply({ name: 'mul' }).apply([ha, hb]),
        L.average({ name: 'avg' }).apply([ha, hb]),
        L.maximum({ name: 'max' }).apply([ha, hb]),
        L.minimum({ name: 'min' }).apply([ha, hb]),
      ] as tf.SymbolicTensor[];
      const cat = L.concatenate({ name: 'cat' }).apply(merged) as tf.SymbolicTensor;
      const frozen = L.dense({ name: 'frozen', units: 3, trainable: false }).apply(cat) as tf.SymbolicTensor;
      const out = L.dense({ name: 'out', units: 2 }).apply(L.batchNormalization({ name: 'bn' }).apply(frozen)) as tf.SymbolicTensor;
      return tf.model({ inputs: [a, b], outputs: out, name: 'two_inputs' });
    },
  ],
  [
    'functional: convolutional branches with rescaling, and a sequence branch',
    () => {
      const img = tf.input({ shape: [10, 10, 3], name: 'img' });
      const x = L.rescaling({ name: 'scale', scale: 1 / 255 }).apply(img) as tf.SymbolicTensor;
      const c1 = L.conv2d({ name: 'b1', filters: 4, kernelSize: 3, padding: 'same' }).apply(x) as tf.SymbolicTensor;
      const c2 = L.conv2d({ name: 'b2', filters: 2, kernelSize: 1 }).apply(x) as tf.SymbolicTensor;
      const cat = L.concatenate({ name: 'cat', axis: -1 }).apply([c1, c2]) as tf.SymbolicTensor;
      const pooled = L.globalAveragePooling2d({ name: 'gap' }).apply(cat) as tf.SymbolicTensor;
      const seqIn = tf.input({ shape: [5, 3], name: 'seq' });
      const h = L.lstm({ name: 'lstm', units: 6 }).apply(seqIn) as tf.SymbolicTensor;
      const both = L.concatenate({ name: 'both' }).apply([pooled, h]) as tf.SymbolicTensor;
      return tf.model({ inputs: [img, seqIn], outputs: L.dense({ name: 'head', units: 3 }).apply(both) as tf.SymbolicTensor });
    },
  ],
];

describe('topology check against real tfjs', () => {
  it.each(MODELS)('%s: the weights it lists are the ones tfjs builds', async (_name, build) => {
    const model = build();
    try {
      const built = await tfjsWeights(model);
      expect(checked(model)).toEqual(built);
      expect(firstWeightDifference(checked(model), built)).toBeNull();
    } finally {
      model.dispose();
    }
  });

  it('covers every layer class it claims to support', () => {
    const seen = new Set<string>();
    for (const [, build] of MODELS) {
      const model = build();
      for (const layer of model.layers) seen.add(layer.getClassName());
      model.dispose();
    }
    expect(SUPPORTED_LAYERS.filter((c) => !seen.has(c))).toEqual([]);
  });
});

describe('topology check refuses what a client cannot build, naming why', () => {
  const dense = (name: string, extra: Record<string, unknown> = {}) => ({ class_name: 'Dense', config: { name, units: 3, ...extra } });
  const cases: [string, unknown, RegExp][] = [
    ['an empty object', {}, /class_name must be "Sequential", "Model" or "Functional"/],
    ['a list', [], /must be a JSON object/],
    ['no layers', { class_name: 'Sequential', config: { layers: [] } }, /non-empty config.layers/],
    [
      'no input shape',
      { class_name: 'Sequential', config: { layers: [dense('d')] } },
      /layer "d" is the first of a Sequential model and needs batch_input_shape/,
    ],
    [
      'an unknown class',
      { class_name: 'Sequential', config: { layers: [{ class_name: 'Densest', config: { name: 'x', batch_input_shape: [null, 2] } }] } },
      /TensorFlow.js has no layer class "Densest"/,
    ],
    [
      'a class the checker does not support',
      { class_name: 'Sequential', config: { layers: [{ class_name: 'TimeDistributed', config: { name: 'td', batch_input_shape: [null, 2, 2] } }] } },
      /layer class TimeDistributed is not supported by fedge's topology check/,
    ],
    [
      'a bad units value',
      { class_name: 'Sequential', config: { layers: [dense('d', { units: 0, batch_input_shape: [null, 4] })] } },
      /layer "d" \(Dense\): units must be an integer ≥ 1/,
    ],
    [
      'a layer without a name',
      { class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { units: 2, batch_input_shape: [null, 4] } }] } },
      /has no name/,
    ],
    [
      'two layers with one name',
      { class_name: 'Sequential', config: { layers: [dense('d', { batch_input_shape: [null, 4] }), dense('d')] } },
      /two layers are named "d"/,
    ],
    ['int32 weights', { class_name: 'Sequential', config: { layers: [dense('d', { batch_input_shape: [null, 4], dtype: 'int32' })] } }, /float32 weights only/],
    [
      'a convolution that shrinks below 1',
      {
        class_name: 'Sequential',
        config: { layers: [{ class_name: 'Conv2D', config: { name: 'c', filters: 2, kernel_size: 9, batch_input_shape: [null, 4, 4, 1] } }] },
      },
      /would output shape \[,-4,-4,2\]/,
    ],
    [
      'a functional model with a dangling reference',
      {
        class_name: 'Model',
        config: {
          layers: [
            { name: 'x', class_name: 'InputLayer', config: { name: 'x', batch_input_shape: [null, 3] }, inbound_nodes: [] },
            { ...dense('h'), inbound_nodes: [[['y', 0, 0, {}]]] },
          ],
          input_layers: [['x', 0, 0]],
          output_layers: [['h', 0, 0]],
        },
      },
      /names layer "y", which the model does not have/,
    ],
  ];
  it.each(cases)('%s', (_name, topology, message) => {
    const r = topologyWeights(topology);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });

  it('names the first difference between the weights and the topology', () => {
    const built = [
      { name: 'd/kernel', shape: [4, 3] },
      { name: 'd/bias', shape: [3] },
    ];
    expect(firstWeightDifference(built, [{ name: 'foo', shape: [4, 3] }])).toMatch(
      /tensor "foo", which the topology does not create \(it creates "d\/kernel", "d\/bias"\)/,
    );
    expect(
      firstWeightDifference(built, [
        { name: 'd/kernel', shape: [3, 4] },
        { name: 'd/bias', shape: [3] },
      ]),
    ).toMatch(/"d\/kernel" has shape \[3,4\]; the topology creates it with shape \[4,3\]/);
    expect(firstWeightDifference(built, [{ name: 'd/kernel', shape: [4, 3] }])).toMatch(/creates weight "d\/bias" \[3\], which initialWeights lacks/);
    expect(firstWeightDifference(built, [built[1]!, built[0]!])).toBeNull();
  });
});
