/**
 * @module Reading a task for the routes: its D1 row, its Durable Object.
 */
import type { TrainingPlan } from '#protocol/messages.ts';
import type { TaskRow } from '../db/schema.ts';
import { database, getTask } from '../db/store.ts';
import type { RoundRules } from '../master/round-machine.ts';
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

export function rulesOf(row: TaskRow): RoundRules {
  return row.rules;
}

export function planOf(row: TaskRow): TrainingPlan {
  return row.plan;
}

export function tensorEntries(tensors: readonly TensorSpec[]) {
  return tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: 'float32' as const }));
}
