/**
 * @module Server-side evaluation of published versions: each is rebuilt from its stored weights
 * and evaluated on the held-out set (here, because the aggregator never loads tfjs), and the result
 * recorded as the version's server metrics.
 */
import * as tf from '@tensorflow/tfjs';
import type { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import type { FedgeClient } from '../../client-sdk/src/client.ts';
import { buildModel } from '../../client-sdk/src/training.ts';

/**
 * Evaluates `version` on the held-out set and records the result as the version's server metrics
 * (shown beside federated evaluation); NaN, and nothing recorded, without a held-out set.
 */
export async function evaluateAndRecord(
  admin: FedgeAdmin,
  evaluator: FedgeClient,
  taskId: string,
  version: number,
  testData: { xs: tf.Tensor; ys: tf.Tensor } | undefined,
): Promise<{ accuracy: number; loss: number }> {
  const result = testData ? await evaluateVersion(evaluator, version, testData) : { accuracy: NaN, loss: NaN };
  const measured = Object.fromEntries(Object.entries(result).filter(([, v]) => Number.isFinite(v)));
  if (Object.keys(measured).length > 0) await admin.setServerMetrics(taskId, version, measured);
  return result;
}

/** Waits for a published version, rebuilds it from its stored weights, and evaluates it with the task's loss. */
export async function evaluateVersion(
  client: FedgeClient,
  version: number,
  test: { xs: tf.Tensor; ys: tf.Tensor },
): Promise<{ accuracy: number; loss: number }> {
  for (let i = 0; ; i++) {
    const current = await client.getManifest('current');
    if (current.version >= version) break;
    if (i > 400) throw new Error(`version ${version} was not published`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const [task, weights] = await Promise.all([client.getTaskModel(), client.getWeights(version)]);
  const model = await buildModel(task.modelTopology, weights.manifest.tensors, weights.flat);
  try {
    // The task's own loss; accuracy where it means something (a cross-entropy loss: classes).
    const classes = /crossentropy/i.test(task.plan.loss);
    model.compile({ optimizer: 'sgd', loss: task.plan.loss, metrics: classes ? ['accuracy'] : [] });
    const [loss, acc] = [model.evaluate(test.xs, test.ys, { batchSize: 500 })].flat() as tf.Scalar[];
    const out = { loss: (await loss!.data())[0]!, accuracy: acc ? (await acc.data())[0]! : NaN };
    tf.dispose(acc ? [loss!, acc] : [loss!]);
    return out;
  } finally {
    model.dispose();
  }
}
