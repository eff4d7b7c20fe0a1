/**
 * @module The browser test page's script (bundled by bundle.ts with the SDK and TensorFlow.js).
 * It defines `window.fedgeTest.run(config)`: one whole participation from inside the browser
 * (data generated here, tfjs cpu backend), against an aggregator on another origin, and returns
 * what the test asserts on; and `window.fedgeTest.maskKat()`, the secure-aggregation PRG's known answer.
 */
import * as tf from '@tensorflow/tfjs';
import { FedgeClient, type ModelManifest, type ParticipationResult } from '../../client-sdk/src/index.ts';
import { expandMask } from '../../client-sdk/src/protocol/secagg/prg.ts';
import { hex, KAT_SEED } from '../shared/secagg-kat.ts';
import { argmaxData } from '../sim/synthetic.ts';

export interface PageRunConfig {
  baseUrl: string;
  taskId: string;
  token: string;
  numExamples: number;
  seed: number;
}

export interface PageRunResult {
  backend: string;
  tfVersion: string;
  userAgent: string;
  isSecureContext: boolean;
  origin: string;
  tensorsBefore: number;
  tensorsAfter: number;
  steps: string[];
  result: ParticipationResult;
  /** The task's current version once it moved past the round's base (polled). */
  published: ModelManifest;
  bytesSent: number;
  bytesReceived: number;
}

declare global {
  interface Window {
    fedgeTest: { run(config: PageRunConfig): Promise<PageRunResult>; maskKat(): Promise<{ first64: string; sha256: string }> };
  }
}

const log = (line: string) => {
  document.getElementById('log')!.textContent += `${line}\n`;
};

function syntheticData(n: number, seed: number): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const { xs, ys } = argmaxData(n, seed);
  return { xs, ys };
}

async function run(config: PageRunConfig): Promise<PageRunResult> {
  await tf.setBackend('cpu');
  await tf.ready();
  let bytesSent = 0;
  let bytesReceived = 0;
  const client = new FedgeClient({
    baseUrl: config.baseUrl,
    taskId: config.taskId,
    token: config.token,
    onTraffic: (sent, received) => {
      bytesSent += sent;
      bytesReceived += received;
    },
  });
  const { xs, ys } = syntheticData(config.numExamples, config.seed);
  const steps: string[] = [];
  const tensorsBefore = tf.memory().numTensors;
  const result = await client.participate(
    { xs, ys },
    {
      onStep: (step) => {
        steps.push(step);
        log(step);
      },
      onEpochEnd: ({ epoch, logs }) => {
        steps.push(`epoch ${epoch}`);
        log(`epoch ${epoch}: loss ${logs.loss?.toFixed(4)}`);
      },
    },
  );
  const tensorsAfter = tf.memory().numTensors;
  tf.dispose([xs, ys]);
  log(`result: ${result.status}`);

  // The round's goal is reached by this update: the next version appears once the aggregator published it.
  let published = await client.getManifest('current');
  for (let i = 0; i < 200 && published.version <= result.assignment.baseVersion; i++) {
    await new Promise((r) => setTimeout(r, 50));
    published = await client.getManifest('current');
  }
  return {
    backend: tf.getBackend(),
    tfVersion: tf.version.tfjs,
    userAgent: navigator.userAgent,
    isSecureContext: globalThis.isSecureContext,
    origin: location.origin,
    tensorsBefore,
    tensorsAfter,
    steps,
    result,
    published,
    bytesSent,
    bytesReceived,
  };
}

/** The secure-aggregation mask PRG's known answer, as this browser's WebCrypto computes it. */
async function maskKat(): Promise<{ first64: string; sha256: string }> {
  const bytes = new Uint8Array((await expandMask(KAT_SEED, 1024)).buffer);
  return { first64: hex(bytes.subarray(0, 64)), sha256: hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))) };
}

window.fedgeTest = { run, maskKat };
document.body.dataset.ready = '1';
