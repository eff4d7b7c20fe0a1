/**
 * @module Where the round's participations run: in this thread one after another
 * ({@link inProcessPool}), or spread over worker threads ({@link workerPool}), each holding every
 * client's data and taking the next job when it is free, so a round's training is bounded by the
 * machine's cores rather than by one thread. The aggregator folds updates in the order they
 * arrive, so with threads a run is reproducible up to that order (float64 sums in another order).
 */
import { Worker } from 'node:worker_threads';
import { type DataSource, type Job, type JobResult, runJob, type VirtualClient } from './clients.ts';

export interface Pool {
  /** Worker threads training (0: this thread). */
  readonly threads: number;
  /** Runs the jobs; results in the jobs' order; `onDone` as each finishes. */
  run(jobs: Job[], onDone?: (done: number) => void): Promise<JobResult[]>;
  close(): Promise<void>;
}

/** Jobs run here, one after another, on the clients of this thread. */
/**
 * The clients in this thread, one after another; `concurrent`: all of a round's at once (secure
 * aggregation: a round's phases need every client alive together).
 */
export function inProcessPool(clients: VirtualClient[], options: { concurrent?: boolean } = {}): Pool {
  return {
    threads: 0,
    async run(jobs, onDone) {
      const results: JobResult[] = [];
      if (options.concurrent) {
        return Promise.all(
          jobs.map(async (job) => {
            const r = await runJob(clients[job.k]!, job);
            results.push(r);
            onDone?.(results.length);
            return r;
          }),
        );
      }
      for (const job of jobs) {
        results.push(await runJob(clients[job.k]!, job));
        onDone?.(results.length);
      }
      return results;
    },
    close: async () => {},
  };
}

/** What a worker needs to build the same virtual clients: the task, the clients' tokens and roles, and where their data comes from. */
export interface WorkerInit {
  baseUrl: string;
  taskId: string;
  tokens: string[];
  malicious: boolean[];
  /** Each client's example count in the main thread: the worker's data must match it. */
  examples: number[];
  source: DataSource;
}

type Reply = { type: 'ready' } | { type: 'done'; result: JobResult } | { type: 'error'; message: string };

/** `threads` worker threads, each loading the clients' data (in parallel) before the pool is returned. */
export async function workerPool(threads: number, init: WorkerInit): Promise<Pool> {
  const workers = Array.from({ length: threads }, () => new Worker(new URL('./pool-worker.ts', import.meta.url), { workerData: init }));
  const next = (w: Worker) =>
    new Promise<Reply>((resolve, reject) => {
      const onMessage = (m: Reply) => {
        w.off('error', onError);
        resolve(m);
      };
      const onError = (e: Error) => {
        w.off('message', onMessage);
        reject(e);
      };
      w.once('message', onMessage);
      w.once('error', onError);
    });
  try {
    for (const reply of await Promise.all(workers.map(next)))
      if (reply.type === 'error') throw new Error(`a training thread could not start: ${reply.message}`);
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
  return {
    threads,
    async run(jobs, onDone) {
      const results: JobResult[] = new Array(jobs.length);
      let taken = 0;
      let done = 0;
      await Promise.all(
        workers.map(async (w) => {
          while (taken < jobs.length) {
            const i = taken++;
            const reply = next(w);
            w.postMessage(jobs[i]);
            const r = await reply;
            if (r.type === 'error') throw new Error(`client ${jobs[i]!.k}, round ${jobs[i]!.round}: ${r.message}`);
            if (r.type === 'done') results[i] = r.result;
            onDone?.(++done);
          }
        }),
      );
      return results;
    },
    close: async () => {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
