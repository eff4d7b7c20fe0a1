/**
 * Browser example: one participation in a fedge task from a web page.
 *
 * Bundle and serve it (from the repository root), with `npm start` running:
 *
 *   npx esbuild client-sdk/examples/browser.ts --bundle --format=esm --outdir=client-sdk/examples/dist \
 *     --servedir=client-sdk/examples --serve=127.0.0.1:8000
 *
 * then open http://127.0.0.1:8000/browser.html?task=<taskId>&token=<clientToken> (the Node example
 * prints such a URL). The aggregator answers CORS for any origin, so the page may live anywhere;
 * it must be a secure context (https, or http on localhost/127.0.0.1) for `crypto.subtle`.
 */
import * as tf from '@tensorflow/tfjs';
import { APIError, FedgeClient, FedgeError } from '../src/index.ts';

const form = document.getElementById('config') as HTMLFormElement;
const runButton = document.getElementById('run') as HTMLButtonElement;
const cancelButton = document.getElementById('cancel') as HTMLButtonElement;
const statusEl = document.getElementById('status')!;
const logEl = document.getElementById('log')!;

const log = (line: string) => {
  logEl.textContent += `${line}\n`;
};
const setStatus = (status: 'idle' | 'running' | 'accepted' | 'late' | 'error', text: string = status) => {
  statusEl.dataset.status = status;
  statusEl.textContent = text;
};

// Fill the form from the URL (?server=…&task=…&token=…).
const params = new URLSearchParams(location.search);
for (const name of ['server', 'task', 'token'] as const) {
  const value = params.get(name);
  if (value) (form.elements.namedItem(name) as HTMLInputElement).value = value;
}

/**
 * The app's own data. Here: 200 made-up examples of 4 features whose class (of 3) is the argmax
 * of the first three. In a real app this is what the user produced on this device, and it never
 * leaves it: only the model update is sent.
 */
function localData(n = 200): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const raw = Float32Array.from({ length: n * 4 }, () => Math.random());
  const labels = Array.from({ length: n }, (_, i) => [0, 1, 2].reduce((best, k) => (raw[i * 4 + k]! > raw[i * 4 + best]! ? k : best), 0));
  return tf.tidy(() => ({ xs: tf.tensor2d(raw, [n, 4]), ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 3) as tf.Tensor2D }));
}

/** Accuracy of a model on the local data (runs on the device, nothing is sent). */
function accuracy(model: tf.LayersModel, xs: tf.Tensor2D, ys: tf.Tensor2D): number {
  return tf.tidy(() => {
    const predicted = (model.predict(xs) as tf.Tensor).argMax(-1);
    return predicted.equal(ys.argMax(-1)).mean().dataSync()[0]!;
  });
}

let controller: AbortController | null = null;

async function participate(server: string, taskId: string, token: string): Promise<void> {
  controller = new AbortController();
  const { signal } = controller;
  await tf.ready();
  log(`TensorFlow.js ${tf.version.tfjs}, backend ${tf.getBackend()}`);
  const client = new FedgeClient({
    baseUrl: server,
    taskId,
    token,
    maxRetries: 3,
    logger: { warn: (message) => log(`warning: ${message}`) },
  });
  const { xs, ys } = localData();
  try {
    const result = await client.participate(
      { xs, ys },
      {
        signal,
        onStep: (step, detail) => {
          if (step === 'waiting') log(`the server asks to come back in ${detail?.seconds} s (${detail?.reason})`);
          else log(`${step}${detail ? ` ${JSON.stringify(detail)}` : ''}`);
        },
        onEpochEnd: ({ epoch, epochs, logs }) => log(`  epoch ${epoch + 1}/${epochs}: loss ${logs.loss?.toFixed(4)}`),
      },
    );
    if (result.status === 'accepted') {
      const { ack } = result;
      log(`accepted: round ${ack.round}, #${ack.seq} in the round, ${ack.numExamples} examples, local metrics ${JSON.stringify(result.train.metrics)}`);
      setStatus('accepted', `accepted in round ${ack.round}`);
    } else {
      log(`round ${result.assignment.round} closed before the update arrived; nothing was counted, try again`);
      setStatus('late', 'late: the round closed first');
    }
    // The latest published model, for use in the app (predictions stay on the device too).
    const model = await client.downloadModel('current', { signal });
    try {
      log(`accuracy of the latest published model on this device's data: ${(accuracy(model, xs, ys) * 100).toFixed(1)}%`);
    } finally {
      model.dispose();
    }
  } finally {
    tf.dispose([xs, ys]);
    log(`tensors in memory: ${tf.memory().numTensors}`);
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(form);
  runButton.disabled = true;
  cancelButton.disabled = false;
  setStatus('running');
  participate(String(data.get('server')), String(data.get('task')), String(data.get('token')))
    .catch((e: unknown) => {
      if (controller?.signal.aborted) {
        log('cancelled');
        setStatus('idle', 'cancelled');
      } else if (e instanceof FedgeError) {
        // e.g. "PermissionDeniedError: 403 forbidden: invalid token"; APIError subclasses carry the server's `code`.
        log(`${e.name}: ${e.message}`);
        setStatus('error', e instanceof APIError ? e.code : e.name);
      } else {
        log(String(e));
        setStatus('error');
      }
    })
    .finally(() => {
      runButton.disabled = false;
      cancelButton.disabled = true;
    });
});

cancelButton.addEventListener('click', () => controller?.abort());
