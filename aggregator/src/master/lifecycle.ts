/**
 * @module A task's lifecycle (pure). Pausing: check-ins are told to come back later and the open
 * round's deadline clock stops, so the round neither closes nor is abandoned at its deadline and
 * nothing accepted is lost; clients already assigned may still submit, and a round that reaches its
 * goal still publishes. Resuming restarts the clock with the time that was left. Stopping, for
 * good: no new assignments (check-ins get `task_stopped`); the open round ends by its rules (its
 * goal, or its deadline: closed or abandoned) with the clients already assigned, and no round
 * after it is ever assigned. A stopped task cannot be paused or resumed.
 */
import type { CheckInResponse } from '#protocol/messages.ts';
import type { TaskState } from './task-spec.ts';
import { type Failure, fail } from './uploads.ts';

export type LifecycleAction = 'pause' | 'resume' | 'stop';

/** How long a paused task tells a checking-in client to wait, ms. */
export const PAUSED_RETRY_MS = 30_000;

export function isStopped(task: TaskState): boolean {
  return task.stoppedAt != null;
}

/** The task after `action` (idempotent), or why it cannot be done. */
export function apply(task: TaskState, action: LifecycleAction, now: number): TaskState | Failure {
  if (isStopped(task)) return action === 'stop' ? task : stoppedFailure();
  if (action === 'pause') return pause(task, now);
  if (action === 'resume') return resume(task, now);
  // Stopping a paused task restarts its deadline clock: the round must be able to end.
  return { ...resume(task, now), stoppedAt: now };
}

/** Why the task cannot be deleted yet (not stopped, or its last round still running), or null. */
export function deletable(task: TaskState): Failure | null {
  if (!isStopped(task)) return fail('task_not_stopped', 'stop the task first (POST /v1/tasks/{taskId}/stop): a running task cannot be deleted');
  const s = task.state;
  if (s.status === 'closing' || s.status === 'abandoned' || (s.status === 'open' && s.assigned > 0))
    return fail('task_not_stopped', `the task is stopped but its last round (${s.round}) is still running: it ends at its goal or deadline`);
  return null;
}

export function stoppedFailure(): Failure {
  return fail('task_stopped', 'the task was stopped: it assigns no new clients and opens no new rounds');
}

export function isPaused(task: TaskState): boolean {
  return task.pausedAt != null;
}

/** The task paused from `now` (unchanged if it already is). */
export function pause(task: TaskState, now: number): TaskState {
  return isPaused(task) ? task : { ...task, pausedAt: now };
}

/** The task running again: the open round's deadline moved on by the time spent paused. */
export function resume(task: TaskState, now: number): TaskState {
  if (!isPaused(task)) return task;
  const { pausedAt, ...running } = task;
  const s = task.state;
  const deadlineAt = s.status === 'open' && s.deadlineAt !== null ? s.deadlineAt + Math.max(0, now - pausedAt!) : s.deadlineAt;
  return { ...running, state: { ...s, deadlineAt } };
}

/** Whether the deadline may act now: not while paused with the round still open. */
export function deadlineRuns(task: TaskState): boolean {
  return !(isPaused(task) && task.state.status === 'open');
}

export function pausedAnswer(task: TaskState): CheckInResponse {
  return { status: 'retry_later', taskId: task.spec.taskId, retryAfterSeconds: PAUSED_RETRY_MS / 1000, reason: 'task_paused' };
}
