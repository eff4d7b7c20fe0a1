/**
 * @module The close of a round: publish the next version, or abandon the round.
 *
 * Publishing is idempotent, in three steps: the blob to R2 under its content hash (same bytes, same
 * key), then one D1 batch (version row, round row, participants, the task's current version; every
 * insert ignores an existing row), then one transaction of the object that opens the next round.
 * A crash between any two steps leaves no visible half-version (a version exists for clients only
 * once its D1 row does), and the alarm, retried by the runtime, redoes the remaining steps.
 */
import { concatTensors, decodeTensors } from '#protocol/safetensors.ts';
import { database, type NewParticipant, type NewRound, recordRound } from '../db/store.ts';
import type { RunningSum } from '../kernels/running-sum.ts';
import { putWeights, type StoredBlob } from '../storage/weights.ts';
import type { RoundInput, Strategy, StrategyState } from '../strategies/index.ts';
import type { Faults } from './faults.ts';
import type { GroupCommit } from './group-commit.ts';
import type { Ledger, LedgerRow } from './ledger.ts';
import { closeSeed, privateClose, SEED_KEY } from './privacy.ts';
import * as machine from './round-machine.ts';
import { type RoundStore, UPDATE_CHUNK_FLOATS } from './round-store.ts';
import { openSecAgg } from './secagg-round.ts';
import type { TaskState } from './task-spec.ts';

/** Keep ledger rows of this many past rounds, so a retry whose ack was lost still gets it. */
const LEDGER_ROUNDS_KEPT = 2;

/** What the close needs of the object that owns the round. */
export interface CloseHost {
  readonly env: Env;
  readonly ledger: Ledger;
  readonly commits: GroupCommit;
  readonly faults: Faults;
  state(): TaskState | null;
  setState(s: TaskState): void;
  strategy(): Strategy;
  store(): RoundStore;
  /** The round's running sum (rebuilt from storage if needed). */
  sum(): RunningSum;
  /** The round is over: its sum is not needed any more. */
  dropSum(): void;
  /** The round's accepted updates (the ledger's rows; a sharded master's come from its shards). */
  rows(round: number): LedgerRow[];
  /** The round's rejections by code (likewise). */
  rejections(round: number): Record<string, number>;
  /** Central DP with adaptive clipping: the round's updates within the clip norm before clipping (likewise). */
  unclippedIn(round: number): number;
}

/**
 * A round's aggregate computed elsewhere (secure aggregation's unmasking), with its total example
 * count: the weighted mean Δ, or under central DP the sum of the clipped updates (weights 1), which
 * the privacy step noises (in place) and divides as it does a running sum.
 */
export type GivenAggregate = { numExamples: number } & ({ meanDelta: Float32Array } | { clippedSum: Float64Array });

/**
 * Aggregates the closing round with the task's strategy and publishes the result as the next
 * version; `given`: the round's aggregate is already known (secure aggregation), the privacy step
 * and the strategy's server step run on it.
 */
export async function publish(host: CloseHost, given?: GivenAggregate): Promise<void> {
  const task = host.state()!;
  const { spec, state } = task;
  const version = task.latestVersion + 1;
  const baseObject = await host.env.MODELS.get(task.latestKey);
  if (!baseObject) throw new Error(`base weights ${task.latestKey} missing from R2`);
  const base = concatTensors(decodeTensors(await baseObject.arrayBuffer()).tensors);
  const strategy = host.strategy();
  const ledger = host.rows(state.round);
  const numExamples = given ? given.numExamples : examples(ledger);
  const store = host.store();
  const roundInput = (): RoundInput =>
    strategy.keeps === 'updates'
      ? {
          kind: 'updates',
          read: (start, end) => store.readUpdateRange(state.round, start, end),
          numParams: spec.numParams,
          count: state.accepted,
          rangeLength: UPDATE_CHUNK_FLOATS,
          numExamples: ledger.map((r) => r.num_examples),
        }
      : { kind: 'sum', sum: host.sum(), numExamples };
  // DP tasks: the privacy step (noise on the clipped sum, the clip step; under local DP the record
  // only), then the strategy's server step on the noised mean.
  const clipped = () => (given ? ('clippedSum' in given ? given.clippedSum : null) : strategy.keeps === 'sum' ? host.sum() : null);
  const dp =
    task.spec.privacy && task.privacy
      ? privateClose(task, clipped(), given ? 0 : host.unclippedIn(state.round), closeSeed(host.ledger, host.commits, state.round), Date.now())
      : null;
  const mean = (given && 'meanDelta' in given ? given.meanDelta : null) ?? dp?.meanDelta;
  const { next, state: strategyState } = mean
    ? strategy.apply(base, mean, store.readStrategyState() ?? strategy.initialState(base.length))
    : strategy.aggregate(base, roundInput(), store.readStrategyState());

  const blob = await putWeights(host.env.MODELS, spec.taskId, version, spec.tensors, next);
  host.faults.hit('after_blob');
  await record(host, { blob, numExamples, privacy: dp, strategyState });
}

/** A new version's blob, stored; what the close records with it. */
export interface Published {
  blob: StoredBlob;
  numExamples: number;
  /** DP tasks: the privacy step's record and the next privacy state. */
  privacy: ReturnType<typeof privateClose> | null;
  /** The server optimizer's state that goes with the version (null: none, or kept elsewhere). */
  strategyState: StrategyState | null;
}

/**
 * Records a published version: one D1 batch (version row, round row, participants, the task's
 * current version), then the transaction that opens the next round on it. Idempotent like publish.
 */
export async function record(host: CloseHost, published: Published): Promise<void> {
  const { blob, numExamples, strategyState } = published;
  const dp = published.privacy;
  const task = host.state()!;
  const { spec, state } = task;
  const version = task.latestVersion + 1;
  const strategy = host.strategy();
  const store = host.store();
  const ledger = host.rows(state.round);
  const now = Date.now();
  const metrics = weightedMetrics(ledger);
  const participants: NewParticipant[] = ledger.map((r) => ({
    taskId: spec.taskId,
    round: state.round,
    clientId: r.client_id,
    numExamples: r.num_examples,
    metrics: r.metrics ? JSON.parse(r.metrics) : null,
    acceptedAt: new Date(r.accepted_at),
  }));
  await recordRound(
    database(host.env.DB),
    roundRow(host, { status: 'closed', resultVersion: version, closedAt: now, closeReason: state.closeReason ?? 'goal_reached' }),
    participants,
    {
      taskId: spec.taskId,
      version,
      parentVersion: state.baseVersion,
      round: state.round,
      contentHash: blob.contentHash,
      r2Key: blob.key,
      byteLength: blob.byteLength,
      participants: ledger.length,
      numExamples,
      metrics,
      strategy: { name: strategy.name, params: { ...strategy.params } },
      privacy: dp?.record ?? null,
      createdAt: new Date(now),
    },
    dp?.next.exhaustedAt != null ? 'finished' : undefined,
  );
  host.faults.hit('after_d1');

  const current = host.state()!;
  if (current.state.round !== state.round || current.state.status !== 'closing') throw new Error(`round ${state.round} changed while it was being published`);
  const closed = machine.published(current.state, now);
  host.setState({
    ...current,
    latestVersion: version,
    latestKey: blob.key,
    state: machine.openRound(closed.round + 1, version, now),
    ...(dp ? { privacy: dp.next } : {}),
    ...(current.secagg ? { secagg: openSecAgg(closed.round + 1) } : {}),
  });
  host.commits.commit(() => {
    clearRound(host, state.round);
    if (dp) host.ledger.delete(SEED_KEY);
    // The server optimizer's state moves with the version it produced, in the same transaction.
    if (strategyState) store.writeStrategyState(strategyState);
  });
  host.dropSum();
}

/** Records a round that ended below its minimum and opens the next one on the same version. */
export async function abandon(host: CloseHost): Promise<void> {
  const { state } = host.state()!;
  const now = Date.now();
  await recordRound(
    database(host.env.DB),
    roundRow(host, { status: 'abandoned', resultVersion: null, closedAt: state.closedAt ?? now, closeReason: state.closeReason ?? 'below_minimum' }),
    [],
    null,
  );
  const current = host.state()!;
  host.setState({
    ...current,
    state: machine.openRound(state.round + 1, state.baseVersion, now),
    ...(current.secagg ? { secagg: openSecAgg(state.round + 1) } : {}),
  });
  host.commits.commit(() => {
    clearRound(host, state.round);
    host.ledger.forgetRound(state.round);
  });
  host.dropSum();
}

/** The D1 row of the closing round: its counts, rejections by code, examples and weighted metrics. */
function roundRow(host: CloseHost, end: Pick<NewRound, 'status' | 'resultVersion' | 'closeReason'> & { closedAt: number }): NewRound {
  const { spec, state } = host.state()!;
  const ledger = host.rows(state.round);
  const rejectedByCode = host.rejections(state.round);
  return {
    taskId: spec.taskId,
    round: state.round,
    status: end.status,
    baseVersion: state.baseVersion,
    resultVersion: end.resultVersion,
    assigned: state.assigned,
    accepted: state.accepted,
    rejected: total(Object.values(rejectedByCode)),
    rejectedByCode,
    numExamples: examples(ledger),
    metrics: weightedMetrics(ledger),
    openedAt: new Date(state.openedAt),
    closedAt: new Date(end.closedAt),
    closeReason: end.closeReason,
  };
}

/** Drops a finished round's bulky data and prunes old ledger rows (bounded storage). */
export function clearRound(host: Pick<CloseHost, 'store' | 'ledger' | 'strategy'>, round: number): void {
  host.store().clear(round);
  host.ledger.clearRound(round, host.strategy().asynchronous?.maxStaleness ?? 0, LEDGER_ROUNDS_KEPT);
  host.ledger.clearSecAgg(round);
}

/** Example-weighted mean of each metric the clients reported (over the clients that reported it). */
export function weightedMetrics(rows: readonly { num_examples: number; metrics: string | null }[]): Record<string, number> | null {
  const sums = new Map<string, { s: number; w: number }>();
  for (const r of rows) {
    if (!r.metrics) continue;
    for (const [k, v] of Object.entries(JSON.parse(r.metrics) as Record<string, number>)) {
      const e = sums.get(k) ?? { s: 0, w: 0 };
      e.s += v * r.num_examples;
      e.w += r.num_examples;
      sums.set(k, e);
    }
  }
  if (sums.size === 0) return null;
  return Object.fromEntries([...sums].map(([k, { s, w }]) => [k, s / w]));
}

function examples(rows: readonly LedgerRow[]): number {
  return rows.reduce((a, r) => a + r.num_examples, 0);
}

function total(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
