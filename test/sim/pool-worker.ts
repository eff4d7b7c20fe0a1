/**
 * @module A training thread of pool.ts: builds the same virtual clients as the main thread (their
 * data from the same seeded source, their tokens), says `ready`, then runs each job it is sent and
 * answers with its result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { dataOf, type Job, runJob, virtualClient } from './clients.ts';
import type { WorkerInit } from './pool.ts';
import { useWasmBackend } from './tf-backend.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const fail = (e: unknown) => port.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) });

try {
  await useWasmBackend();
  const data = await dataOf(init.source);
  data.test?.xs.dispose();
  data.test?.ys.dispose();
  const counts = data.clients.map((c) => c.n);
  if (JSON.stringify(counts) !== JSON.stringify(init.examples))
    throw new Error('the data differs in a training thread: a --data module must return the same clients for the same { clients, seed }');
  const clients = data.clients.map((d, k) => virtualClient(k, init.baseUrl, init.taskId, init.tokens[k]!, d, init.malicious[k]!));
  port.on('message', (job: Job) => {
    runJob(clients[job.k]!, job).then((result) => port.postMessage({ type: 'done', result }), fail);
  });
  port.postMessage({ type: 'ready' });
} catch (e) {
  fail(e);
}
