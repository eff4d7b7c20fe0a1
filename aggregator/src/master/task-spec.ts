/**
 * @module What the master aggregator knows of its task: tensor layout, round rules, caps (plain
 * data, stored at task creation and never changed afterwards), and the state it persists with them.
 */

import type { UpdateEncoding } from '#protocol/encoding.ts';
import type { TrainingPlan } from '#protocol/messages.ts';
import type { PrivacyConfig } from '../privacy/config.ts';
import type { PrivacyState } from '../privacy/mechanism.ts';
import type { StrategyConfig } from '../strategies/index.ts';
import type { RangeLayout } from './ranges.ts';
import { MAX_RETRY_MS, type RoundRules, type RoundState, type RoundStatus } from './round-machine.ts';
import type { SecureAggregation } from './secagg-config.ts';
import type { SecAggRoundState } from './secagg-round.ts';
import type { EndedRound, ShardBook } from './shards.ts';

export interface TensorSpec {
  name: string;
  shape: number[];
}

export interface TaskSpec {
  taskId: string;
  /** Tensors in wire order; an update's flat vector is their concatenation. */
  tensors: TensorSpec[];
  numParams: number;
  rules: RoundRules;
  /** Absent in tasks created before strategies existed: FedAvg. */
  strategy?: StrategyConfig;
  /** Differential privacy (see privacy/config.ts); absent: none. */
  privacy?: PrivacyConfig;
  /** Secure aggregation (see secagg-config.ts); absent: none. */
  secureAggregation?: SecureAggregation;
  /** How clients encode their updates (protocol/encoding.ts); absent (older tasks): float32. */
  updateEncoding?: UpdateEncoding;
  /** Aggregator shards a round is spread over (shards.ts); absent (older tasks): 1, the master alone. */
  shards?: number;
  /** A model too large for one object: its parameter ranges, each aggregated by its own object (ranges.ts); absent: none. */
  ranges?: RangeLayout;
}

/**
 * How the object sums and stores the task's updates: in the clients' encoding, read by the
 * kernels as it is, unless something must change the values first (central DP clips them, norm
 * bounding scales them): then they are decoded to float32 on arrival.
 */
export function storedEncoding(spec: TaskSpec, changesUpdates: boolean): UpdateEncoding {
  const encoding = spec.updateEncoding ?? 'float32';
  return spec.privacy?.mode === 'central' || changesUpdates ? 'float32' : encoding;
}

/** The live round as the API shows it (`GET /tasks/{id}` `currentRound`): times as ISO 8601 (UTC), like every time of the API. */
export type LiveRound = Pick<RoundState, 'round' | 'status' | 'baseVersion' | 'assigned' | 'accepted'> & {
  openedAt: string;
  deadlineAt: string | null;
  rejected: number;
  rejectedByCode: Record<string, number>;
};

/** The live round of `state`, with its rejections by code. */
export function liveRound(state: RoundState, rejectedByCode: Record<string, number>): LiveRound {
  const { round, status, baseVersion, openedAt, deadlineAt, assigned, accepted } = state;
  const rejected = Object.values(rejectedByCode).reduce((a, b) => a + b, 0);
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    round,
    status,
    baseVersion,
    openedAt: iso(openedAt),
    deadlineAt: deadlineAt === null ? null : iso(deadlineAt),
    assigned,
    accepted,
    rejected,
    rejectedByCode,
  };
}

/** What the object persists of its task (the `task` row): the spec, the plan, the live round, the latest version. */
export interface TaskState {
  spec: TaskSpec;
  plan: TrainingPlan;
  state: RoundState;
  /** Latest published version and its R2 key: the next round's base. */
  latestVersion: number;
  latestKey: string;
  /** Set while the operator has the task paused (see lifecycle.ts). */
  pausedAt?: number | null;
  /** Set once the operator stopped the task, for good (see lifecycle.ts). */
  stoppedAt?: number | null;
  /** DP tasks: releases so far, the next round's clip norm, whether the budget is spent (changes only with a published version). */
  privacy?: PrivacyState;
  /** Secure-aggregation tasks: the live round's phase (see secagg-round.ts). */
  secagg?: SecAggRoundState;
  /** The master of a sharded task: the slots granted to and updates reported by each shard this round. */
  shards?: ShardBook;
  /** The master of a sharded task: how its last finished round ended, for the shards that learn of it late. */
  lastEnded?: EndedRound;
  /** A shard (round-shard.ts): which one it is and what the master last told it; `state` is its part of the round. */
  shard?: ShardPart;
  /** A ranged task's close in progress: the multipart upload that assembles the version (ranged-close.ts). */
  publishing?: { version: number; uploadId: string };
}

/** What a shard keeps of its place in the task (its round counts are in `TaskState.state`). */
export interface ShardPart {
  index: number;
  /** Assignment slots the master granted it in the live round. */
  granted: number;
  /** The accepted count it last reported to the master. */
  reported: number;
  /** The round's status at the master when it last heard: the shard assigns only while it is open. */
  masterStatus: RoundStatus;
}

/**
 * Room in an update's header for `__metadata__`: the base version, the example count, up to 32
 * metrics (64-character names, numbers, escaped as JSON inside a JSON string: under 4 KiB), and a
 * few keys other tools add (Python safetensors writes `format`).
 */
const METADATA_ALLOWANCE_BYTES = 8 * 1024;

/**
 * The largest update body the task accepts: the float32 data, plus the header an update of this
 * model really needs (each tensor's entry with its name escaped at worst and offsets at their
 * widest), the metadata allowance, the 8-byte length and alignment padding.
 */
export function maxUpdateBytes(spec: Pick<TaskSpec, 'numParams' | 'tensors'>): number {
  const dataBytes = spec.numParams * 4;
  const offsetDigits = String(dataBytes).length;
  let header = 2; // {}
  for (const t of spec.tensors) {
    // "name":{"dtype":"F32","shape":[...],"data_offsets":[a,b]}, — names are ASCII from TENSOR_NAME_PATTERN, so the worst escaping is 2 bytes a character (\/)
    header += 2 * t.name.length + 2 + `:{"dtype":"F32","shape":[${t.shape.join(',')}],"data_offsets":[,]},`.length + 2 * offsetDigits;
  }
  return 8 + header + METADATA_ALLOWANCE_BYTES + 7 + dataBytes;
}

/** A numeric `vars` setting, or its default when unset or not a positive number. */
export function envNumber(raw: string | undefined, fallback: number): number {
  const n = Number(raw);
  return raw !== undefined && raw !== '' && Number.isFinite(n) && n > 0 ? n : fallback;
}

/**
 * The time limits of a request body (read-body.ts) from the settings: it may pause at most
 * `UPLOAD_IDLE_SECONDS` [10], and must average `UPLOAD_MIN_BYTES_PER_SECOND` [16 KiB/s] once that long has passed.
 */
export function uploadLimits(env: Pick<Env, 'UPLOAD_IDLE_SECONDS' | 'UPLOAD_MIN_BYTES_PER_SECOND'>): {
  idleMs: number;
  graceMs: number;
  minBytesPerSecond: number;
} {
  const idleMs = envNumber(env.UPLOAD_IDLE_SECONDS, 10) * 1000;
  return { idleMs, graceMs: idleMs, minBytesPerSecond: envNumber(env.UPLOAD_MIN_BYTES_PER_SECOND, 16 * 1024) };
}

export function retrySeconds(ms: number): number {
  return Math.max(1, Math.min(MAX_RETRY_MS / 1000, Math.ceil(ms / 1000)));
}
