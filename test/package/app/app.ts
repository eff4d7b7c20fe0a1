/**
 * A device of a fedge task, as an app writes it against the installed package (`@fedge/client`).
 * The same module runs in Node, in a browser bundle and in a React Native-like runtime: it uses
 * the SDK's public API and tfjs only.
 */

import { FedgeClient, FedgeError, type ModelManifest, type ParticipationResult } from '@fedge/client';
import * as tf from '@tensorflow/tfjs';

export interface RoundConfig {
  baseUrl: string;
  taskId: string;
  token: string;
  numExamples: number;
  seed: number;
}

export type RoundOutcome =
  | { status: 'accepted'; round: number; seq: number; numExamples: number; published: { version: number; contentHash: string }; tensorsLeft: number }
  | { status: 'late' | 'abandoned' }
  | { status: 'error'; name: string; code: string; message: string };

/** The device's own data: 4 features, the label is the argmax of the first 3 (one-hot). */
function localData(n: number, seed: number): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const x = new Float32Array(n * 4);
  const y = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 4; j++) x[i * 4 + j] = next();
    let best = 0;
    for (let j = 1; j < 3; j++) if (x[i * 4 + j]! > x[i * 4 + best]!) best = j;
    y[i * 3 + best] = 1;
  }
  return { xs: tf.tensor2d(x, [n, 4]), ys: tf.tensor2d(y, [n, 3]) };
}

async function nextVersion(client: FedgeClient, after: number): Promise<ModelManifest> {
  for (let i = 0; i < 200; i++) {
    const m = await client.getManifest('current');
    if (m.version > after) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no version after ${after}`);
}

/** One whole participation: check in, download, train, submit; then the version it produced. */
export async function runRound(config: RoundConfig): Promise<RoundOutcome> {
  await tf.setBackend('cpu');
  await tf.ready();
  const before = tf.memory().numTensors;
  const { xs, ys } = localData(config.numExamples, config.seed);
  const client = new FedgeClient({ baseUrl: config.baseUrl, taskId: config.taskId, token: config.token, timeoutMs: 30_000 });
  try {
    const result: ParticipationResult = await client.participate({ xs, ys });
    if (result.status !== 'accepted') return { status: result.status };
    const published = await nextVersion(client, result.assignment.baseVersion);
    return {
      status: 'accepted',
      round: result.ack.round,
      seq: result.ack.seq,
      numExamples: result.ack.numExamples,
      published: { version: published.version, contentHash: published.contentHash },
      tensorsLeft: tf.memory().numTensors - before - 2,
    };
  } catch (e) {
    if (e instanceof FedgeError) return { status: 'error', name: e.name, code: e.code, message: e.message };
    throw e;
  } finally {
    xs.dispose();
    ys.dispose();
  }
}
