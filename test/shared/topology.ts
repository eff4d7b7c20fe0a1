/**
 * @module Model topologies for tests and benchmarks, written the way tfjs `model.toJSON()` writes
 * them, so the aggregator's topology check accepts the weights the tests send.
 */

export interface DenseLayer {
  name: string;
  units: number;
  activation?: string;
}

/**
 * A Sequential stack of Dense layers on `inputs` features: its weights are `<name>/kernel`
 * [in, units] and `<name>/bias` [units] per layer.
 *
 * @example
 * denseTopology(4, [{ name: 'dense', units: 3, activation: 'softmax' }]); // dense/kernel [4,3], dense/bias [3]
 */
export function denseTopology(inputs: number, layers: readonly DenseLayer[]) {
  return {
    class_name: 'Sequential',
    config: {
      name: 'model',
      layers: layers.map((l, i) => ({
        class_name: 'Dense',
        config: {
          units: l.units,
          activation: l.activation ?? 'linear',
          use_bias: true,
          name: l.name,
          trainable: true,
          ...(i === 0 ? { batch_input_shape: [null, inputs] } : {}),
          dtype: 'float32',
        },
      })),
    },
    keras_version: 'tfjs-layers 4.22.0',
    backend: 'tensor_flow.js',
  };
}
