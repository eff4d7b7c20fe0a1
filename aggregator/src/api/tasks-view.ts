/**
 * @module Reading a task for the routes: D1 row, its immutable layout cached per isolate, its Durable Object.
 */
import type { TrainingPlan } from '../../../client-sdk/src/protocol/messages.ts';
import { database, getTask } from '../db/store.ts';
import type { TaskRow } from '../db/schema.ts';
import type { RoundRules } from '../master/round-machine.ts';
import { maxUpdateBytes, type TensorSpec } from '../master/task-spec.ts';
import { ApiError } from './errors.ts';

export interface TaskLayout {
  numParams: number;
  tensors: TensorSpec[];
  maxUpdateBytes: number;
}

/** Layouts never change after creation, so each isolate caches them (bounded). */
const layouts = new Map<string, TaskLayout>();
const MAX_CACHED = 1000;

export async function loadTask(env: Env, taskId: string): Promise<TaskRow> {
  const row = await getTask(database(env.DB), taskId);
  if (!row) throw new ApiError('task_not_found', `no task "${taskId}"`);
  return row;
}

export async function taskLayout(env: Env, taskId: string): Promise<TaskLayout> {
  const hit = layouts.get(taskId);
  if (hit) return hit;
  const row = await loadTask(env, taskId);
  const tensors = row.weightSpecs as TensorSpec[];
  const layout = { numParams: row.numParams, tensors, maxUpdateBytes: maxUpdateBytes({ numParams: row.numParams, tensors }) };
  if (layouts.size >= MAX_CACHED) layouts.delete(layouts.keys().next().value!);
  layouts.set(taskId, layout);
  return layout;
}

export function aggregatorOf(env: Env, taskId: string) {
  return env.AGGREGATOR.get(env.AGGREGATOR.idFromName(taskId));
}

export function rulesOf(row: TaskRow): RoundRules {
  return row.rules as RoundRules;
}

export function planOf(row: TaskRow): TrainingPlan {
  return row.plan as TrainingPlan;
}

export function tensorEntries(tensors: readonly TensorSpec[]) {
  return tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: 'float32' as const }));
}
