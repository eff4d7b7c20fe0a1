/**
 * @module The round state machine of one task: pure functions on plain data, no I/O.
 *
 * open ──(accepted reaches the goal; not in DP tasks)▶ closing ──(version published)──▶ closed
 *   │                                                  ▲
 *   └──(deadline, accepted ≥ minimum)──────────────────┘
 *   └──(deadline, accepted < minimum)──▶ abandoned (a new round opens on the same base version)
 *
 * The deadline clock starts at the round's first assignment (in DP tasks at its first Poisson draw),
 * so an idle task does not churn through empty rounds. Every transition is idempotent: applying a deadline twice, or after the
 * round left `open`, changes nothing (alarms fire at least once).
 */

export type RoundStatus = 'open' | 'closing' | 'closed' | 'abandoned';
export type CloseReason = 'goal_reached' | 'deadline' | 'below_minimum';

export interface RoundRules {
  /** Accepted updates that close the round at once (the goal count). */
  clientsPerRound: number;
  /** Fewest accepted updates with which the round may close at its deadline. */
  minClients: number;
  /** Seconds from the round's first assignment to its deadline. */
  deadlineSeconds: number;
  /** Assignments per round = ceil(clientsPerRound × overSelection), to absorb drop-outs. */
  overSelection: number;
  /** Cap on the example count one client may claim for one update. */
  maxExamplesPerClient: number;
}

export interface RoundState {
  round: number;
  status: RoundStatus;
  baseVersion: number;
  openedAt: number;
  /** Set at the first assignment; null while nobody has been assigned. */
  deadlineAt: number | null;
  assigned: number;
  accepted: number;
  closeReason: CloseReason | null;
  closedAt: number | null;
}

export type AssignDecision = { kind: 'assign'; state: RoundState } | { kind: 'wait'; retryAfterMs: number; reason: 'round_full' | 'round_closing' };

/** Seconds a client waits before checking in again while a round is being published. */
export const CLOSING_RETRY_MS = 2_000;
/** Upper bound of any retry-after the server hands out. */
export const MAX_RETRY_MS = 60_000;

export function openRound(round: number, baseVersion: number, now: number): RoundState {
  return { round, status: 'open', baseVersion, openedAt: now, deadlineAt: null, assigned: 0, accepted: 0, closeReason: null, closedAt: null };
}

export function assignmentCapacity(rules: RoundRules): number {
  return Math.ceil(rules.clientsPerRound * rules.overSelection);
}

/**
 * Decides whether one more client may join the round now. `sampled` (DP tasks): the client was
 * drawn by Poisson sampling, and every drawn client joins; a cap would make one client's presence
 * change who else is in the round, which the accountant does not allow for.
 */
export function assign(state: RoundState, rules: RoundRules, now: number, sampled = false): AssignDecision {
  if (state.status !== 'open') return { kind: 'wait', retryAfterMs: CLOSING_RETRY_MS, reason: 'round_closing' };
  if (!sampled && state.assigned >= assignmentCapacity(rules)) {
    const untilDeadline = state.deadlineAt === null ? MAX_RETRY_MS : state.deadlineAt - now;
    return { kind: 'wait', retryAfterMs: clamp(untilDeadline, 1_000, MAX_RETRY_MS), reason: 'round_full' };
  }
  const deadlineAt = state.deadlineAt ?? now + rules.deadlineSeconds * 1000;
  return { kind: 'assign', state: { ...state, assigned: state.assigned + 1, deadlineAt } };
}

/** The round with its deadline clock running (started now if it was not): DP tasks start it at the first Poisson draw. */
export function startClock(state: RoundState, rules: RoundRules, now: number): RoundState {
  if (state.status !== 'open' || state.deadlineAt !== null) return state;
  return { ...state, deadlineAt: now + rules.deadlineSeconds * 1000 };
}

/**
 * Asynchronous tasks (FedBuff): anyone may join the open buffer, without a cap or a deadline; the
 * buffer closes when its goal count of updates is accepted.
 */
export function assignAsync(state: RoundState): AssignDecision {
  if (state.status !== 'open') return { kind: 'wait', retryAfterMs: CLOSING_RETRY_MS, reason: 'round_closing' };
  return { kind: 'assign', state: { ...state, assigned: state.assigned + 1 } };
}

/**
 * Counts one accepted update; reaching the goal moves the round to `closing`. `sampled` (DP
 * tasks): no goal, the round takes every sampled client's update until its deadline (closing at a
 * count would cut the sample in arrival order).
 */
export function accept(state: RoundState, rules: RoundRules, sampled = false): RoundState {
  if (state.status !== 'open') throw new Error(`round ${state.round} is ${state.status}; it accepts no updates`);
  const accepted = state.accepted + 1;
  if (!sampled && accepted >= rules.clientsPerRound) return { ...state, accepted, status: 'closing', closeReason: 'goal_reached' };
  return { ...state, accepted };
}

/** Applies the deadline if it has passed; a no-op otherwise (safe to call on every alarm). */
export function applyDeadline(state: RoundState, rules: RoundRules, now: number): RoundState {
  if (state.status !== 'open' || state.deadlineAt === null || now < state.deadlineAt) return state;
  if (state.accepted >= rules.minClients && state.accepted > 0) return { ...state, status: 'closing', closeReason: 'deadline' };
  return { ...state, status: 'abandoned', closeReason: 'below_minimum', closedAt: now };
}

/** Marks a closing round as closed once its version is published. */
export function published(state: RoundState, now: number): RoundState {
  if (state.status === 'closed') return state;
  if (state.status !== 'closing') throw new Error(`round ${state.round} is ${state.status}; only a closing round can be published`);
  return { ...state, status: 'closed', closedAt: now };
}

/** When the Durable Object's alarm should next fire for this state, or null for none. */
export function nextAlarmAt(state: RoundState, now: number): number | null {
  if (state.status === 'closing' || state.status === 'abandoned') return now;
  if (state.status === 'open' && state.deadlineAt !== null) return state.deadlineAt;
  return null;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
