/**
 * @module Reading a task for the routes: its D1 row, its Durable Object.
 */
import type { TrainingPlan } from '#protocol/messages.ts';
import type { TaskRow } from '../db/schema.ts';
import { database, getTask } from '../db/store.ts';
import type { RoundRules } from '../master/round-machine.ts';
import { shardName, shardOf } from '../master/shards.ts';
import type { TensorSpec } from '../master/task-spec.ts';
import { ApiError } from './errors.ts';

export async function loadTask(env: Env, taskId: string): Promise<TaskRow> {
  const row = await getTask(database(env.DB), taskId);
  if (!row) throw new ApiError('task_not_found', `no task "${taskId}"`);
  return row;
}

export function aggregatorOf(env: Env, taskId: string) {
  return env.AGGREGATOR.get(env.AGGREGATOR.idFromName(taskId));
}

/** Shard counts of tasks this isolate has routed for (a task's count never changes), bounded. */
const shardCounts = new Map<string, number>();
const SHARD_COUNTS_KEPT = 10_000;

/**
 * The object that serves `clientId` of `taskId`: in a sharded task its shard (shards.ts), else the
 * master. The shard count is asked of the master once per isolate and task.
 */
export async function serverOf(env: Env, taskId: string, clientId: string) {
  let shards = shardCounts.get(taskId);
  if (shards === undefined) {
    shards = await aggregatorOf(env, taskId).shardCount();
    if (shards > 0) {
      if (shardCounts.size >= SHARD_COUNTS_KEPT) shardCounts.clear();
      shardCounts.set(taskId, shards);
    }
  }
  if (shards <= 1) return aggregatorOf(env, taskId);
  // A shard runs the master's code for everything a client calls (RoundShard extends TaskAggregator).
  return env.SHARDS.get(env.SHARDS.idFromName(shardName(taskId, shardOf(clientId, shards)))) as unknown as ReturnType<typeof aggregatorOf>;
}

export function rulesOf(row: TaskRow): RoundRules {
  return row.rules;
}

export function planOf(row: TaskRow): TrainingPlan {
  return row.plan;
}

export function tensorEntries(tensors: readonly TensorSpec[]) {
  return tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: 'float32' as const }));
}
