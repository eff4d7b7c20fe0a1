/**
 * @module The master's side of a client-sharded round (shards.ts): answering a shard's sync, and
 * the close: seal every shard, wait for one that cannot answer up to a grace period, merge the
 * partial sums in shard order, publish (or abandon below the minimum), then tell the shards.
 *
 * The close is idempotent like the unsharded one: sealing a shard twice answers the same, its
 * partial sum stays until it learns the next round, and `publish` redoes only what is missing.
 */
import { createRunningSum, type RunningSum } from '../kernels/running-sum.ts';
import { accumulateWasm } from '../kernels/wasm-worker.ts';
import type { LedgerRow } from './ledger.ts';
import { isPaused, isStopped } from './lifecycle.ts';
import { abandon, type CloseHost, publish } from './publish.ts';
import * as machine from './round-machine.ts';
import { bookFor, type SealResult, type ShardView, SUM_PAGE, syncBook, total } from './shards.ts';
import type { TaskState } from './task-spec.ts';

/** What the master calls on a shard (RoundShard's RPC methods). */
export interface ShardCalls {
  seal(round: number): Promise<SealResult>;
  partialSum(round: number, start: number, end: number): Promise<Float64Array>;
  advance(view: ShardView): Promise<void>;
}

/** The close host of a sharded master: its shards, and where the close puts what they hand in. */
export interface ShardedHost extends CloseHost {
  shard(index: number): ShardCalls;
  /** The sealed shards' ledger rows and rejections, which publish and abandon record (null: the master's own). */
  setCollected(collected: Collected | null): void;
  /** The merged partial sums, which publish aggregates (null: the master's own running sum). */
  setMerged(sum: RunningSum | null): void;
}

export interface Collected {
  rows: LedgerRow[];
  rejectedByCode: Record<string, number>;
  unclipped: number;
}

/** What a shard sends at a sync: its accepted count in `round`, the slots it keeps (its assignments), whether it wants more. */
export interface ShardSync {
  round: number;
  accepted: number;
  holding: number;
  wantsSlots: boolean;
}

/** The master's answer to one shard's sync: the round, and the slots it gets. */
export function syncShard(task: TaskState, index: number, sync: ShardSync, now: number): { task: TaskState; view: ShardView } {
  const { spec } = task;
  let { state } = task;
  const book0 = bookFor(task.shards, state.round, spec.shards ?? 1);
  const assigning = state.status === 'open' && !isStopped(task) && !isPaused(task);
  const sampled = spec.privacy?.mode === 'central';
  const { book, granted } = syncBook(book0, index, { ...sync, wantsSlots: sync.wantsSlots && assigning }, machine.assignmentCapacity(spec.rules), !sampled);
  if (granted > 0) state = { ...state, deadlineAt: state.deadlineAt ?? now + spec.rules.deadlineSeconds * 1000 };
  if (state.status === 'open') {
    // While the round runs, the master's `assigned` is the slots out on the shards (the close counts
    // the shards' own), and it knows the round's count only from the reports: it closes at the goal they add up to.
    const reported = total(book.accepted);
    state = { ...state, assigned: total(book.granted), accepted: reported };
    // Under central DP the round takes every sampled client's update until its deadline (as unsharded).
    if (!sampled && reported >= spec.rules.clientsPerRound) state = { ...state, status: 'closing', closeReason: 'goal_reached' };
  }
  const next = { ...task, state, shards: book };
  return { task: next, view: viewOf(next, granted) };
}

export function viewOf(task: TaskState, granted: number): ShardView {
  const { round, status, baseVersion, openedAt, deadlineAt } = task.state;
  const ended = task.lastEnded ?? null;
  const privacy = task.privacy ?? null;
  return { round, status, baseVersion, openedAt, deadlineAt, pausedAt: task.pausedAt ?? null, stoppedAt: task.stoppedAt ?? null, granted, ended, privacy };
}

/**
 * The alarm of a sharded master: applies the deadline, and closes a closing round. Returns when to
 * try again (a shard did not answer and the grace period runs), or null.
 */
export async function closeSharded(host: ShardedHost, now: number, graceMs: number): Promise<number | null> {
  let task = host.state()!;
  const { spec } = task;
  const shards = spec.shards ?? 1;
  if (task.state.status === 'open') {
    // The reports may lag the shards: the minimum is checked against what the seals say, not here.
    if (task.state.deadlineAt === null || now < task.state.deadlineAt) return null;
    task = { ...task, state: { ...task.state, status: 'closing', closeReason: 'deadline' } };
    host.setState(task);
    host.commits.commit();
  }
  if (task.state.status === 'abandoned') {
    await abandon(host); // a close that crashed after deciding to abandon
    await advanceShards(host, true, []);
    return null;
  }
  if (task.state.status !== 'closing') return null;
  const { round } = task.state;
  let book = bookFor(task.shards, round, shards);
  if (book.sealingSince === null) {
    book = { ...book, sealingSince: now };
    task = { ...task, shards: book };
    host.setState(task);
    host.commits.commit();
  }
  const seals = await eachShard(shards, (i) =>
    host
      .shard(i)
      .seal(round)
      .catch(() => null),
  );
  const missing = seals.flatMap((s, i) => (s === null ? [i] : []));
  if (missing.length > 0 && now < book.sealingSince! + graceMs) return Math.min(now + 1_000, book.sealingSince! + graceMs);

  // Closing without the shards that did not answer: their updates are late, and the round's
  // rejections count the ones they had reported as `shard_unreachable`.
  const sealed = seals.flatMap((s, i) => (s === null ? [] : [{ index: i, seal: s }]));
  const rejectedByCode: Record<string, number> = {};
  for (const { seal } of sealed) for (const [code, n] of Object.entries(seal.rejectedByCode)) rejectedByCode[code] = (rejectedByCode[code] ?? 0) + n;
  const lost = total(missing.map((i) => book.accepted[i] ?? 0));
  if (missing.length > 0) rejectedByCode.shard_unreachable = lost;
  host.setCollected({ rows: sealed.flatMap(({ seal }) => seal.rows), rejectedByCode, unclipped: total(sealed.map(({ seal }) => seal.unclipped)) });
  const accepted = total(sealed.map(({ seal }) => seal.accepted));
  const assigned = total(sealed.map(({ seal }) => seal.assigned));
  const current = host.state()!;
  const counted = { ...current.state, accepted, assigned };
  try {
    if (accepted < Math.max(1, spec.rules.minClients)) {
      host.setState({ ...current, state: { ...counted, status: 'abandoned', closeReason: 'below_minimum', closedAt: now } });
      host.commits.commit();
      await abandon(host);
      await advanceShards(host, true, missing);
      return null;
    }
    host.setState({ ...current, state: counted });
    host.setMerged(await mergeShards(host, sealed, spec.numParams));
    await publish(host);
  } finally {
    host.setCollected(null);
    host.setMerged(null);
  }
  await advanceShards(host, false, missing);
  return null;
}

/** The sealed shards' partial sums added up, in shard order, fetched a page at a time. */
async function mergeShards(host: ShardedHost, sealed: { index: number; seal: SealResult }[], numParams: number): Promise<RunningSum> {
  const merged = createRunningSum(numParams, { wasm: accumulateWasm });
  const piece = new Float64Array(numParams);
  for (const { index, seal } of sealed) {
    if (seal.count === 0) continue;
    for (let start = 0; start < numParams; start += SUM_PAGE) {
      const end = Math.min(numParams, start + SUM_PAGE);
      piece.set(await host.shard(index).partialSum(seal.round, start, end), start);
    }
    merged.merge({ sum: piece, totalWeight: seal.totalWeight, count: seal.count });
  }
  return merged;
}

/** Records how the round ended and tells every shard the next one. */
async function advanceShards(host: ShardedHost, abandoned: boolean, missing: number[]): Promise<void> {
  const task = host.state()!;
  host.setState({ ...task, lastEnded: { round: task.state.round - 1, abandoned, missing } });
  host.commits.commit();
  await tellShards(host);
}

/** Pushes the live round and the lifecycle to every shard (best effort: a shard that misses it learns at its next sync). */
export async function tellShards(host: Pick<ShardedHost, 'state' | 'shard'>): Promise<void> {
  const task = host.state()!;
  const view = viewOf(task, 0);
  await eachShard(task.spec.shards ?? 1, (i) =>
    host
      .shard(i)
      .advance(view)
      .catch(() => {}),
  );
}

/** `call` for every shard index of a task with `shards` shards, in parallel, its answers in shard order. */
export function eachShard<T>(shards: number, call: (index: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: shards }, (_, i) => call(i)));
}
