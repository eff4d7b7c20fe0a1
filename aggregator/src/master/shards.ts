/**
 * @module Client-sharded rounds, the pure part: which shard serves a client, the automatic shard
 * count, the messages the master and its shards exchange, and the master's book of the slots it
 * granted to and the updates it heard of from each shard.
 *
 * A task with S > 1 shards spreads each round over S Durable Objects (`RoundShard`, named
 * `<task>/shard/<s>`). A client is served by shard `shardOf(clientId, S)` for everything it does in
 * a round (authentication, check-in, upload), so no request of a client reaches the master. A shard
 * asks the master for assignment slots in blocks and tells it how many updates it accepted, at
 * most once per `REPORT_MS`; the master closes the round at the goal or the deadline, seals every
 * shard, merges their partial sums in shard order and publishes. See docs/scale.md.
 */
import type { PrivacyState } from '../privacy/mechanism.ts';
import { assignmentCapacity, type RoundRules, type RoundStatus } from './round-machine.ts';

/** A finished round of a sharded task, as the shards learn it: whether it was abandoned, and which shards it closed without. */
export interface EndedRound {
  round: number;
  abandoned: boolean;
  missing: number[];
}

/** Most shards a task may have. */
export const MAX_SHARDS = 64;
/** The automatic shard count gives each shard about this many assignments per round. */
export const CLIENTS_PER_SHARD = 1_000;
/** A shard reports its accepted count to the master at most this often (ms); the ack never waits for it. */
export const REPORT_MS = 200;
/** A shard that cannot be sealed is retried for this long (ms, `SHARD_SEAL_GRACE_SECONDS`) after the close began, then the round closes without it. */
export const SEAL_GRACE_MS = 30_000;
/** Parameters of a partial sum per RPC answer (8 MiB of float64), under the RPC message limit. */
export const SUM_PAGE = 1 << 20;

/** The shard that serves `clientId` in a task with `shards` shards: FNV-1a of the id, mod S (stable across isolates and restarts). */
export function shardOf(clientId: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < clientId.length; i++) {
    h ^= clientId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

/** The Durable Object name of shard `index` of a task. */
export function shardName(taskId: string, index: number): string {
  return `${taskId}/shard/${index}`;
}

/** The shard count chosen for a round of `capacity` assignments: one shard per CLIENTS_PER_SHARD, at most MAX_SHARDS. */
export function autoShards(capacity: number): number {
  return Math.max(1, Math.min(MAX_SHARDS, Math.ceil(capacity / CLIENTS_PER_SHARD)));
}

/**
 * Assignment slots a shard gets at a time: a quarter of its even share, and never more than half
 * an even share of what is left, so the last slots go out a few at a time to the shards that
 * still have clients. A shard gives back the slots it has not used at each report, so none stay
 * stranded on a shard whose clients stopped coming (only those of clients assigned but gone).
 */
export function slotBlock(capacity: number, shards: number, left = capacity): number {
  return Math.max(1, Math.min(Math.ceil(capacity / (4 * shards)), Math.ceil(left / (2 * shards))));
}

/** The round as the master tells a shard at each sync. */
export interface ShardView {
  round: number;
  /** The master's status of the round: a shard stops assigning when it is not `open`, and stops accepting only when sealed. */
  status: RoundStatus;
  baseVersion: number;
  openedAt: number;
  deadlineAt: number | null;
  pausedAt: number | null;
  stoppedAt: number | null;
  /** Assignment slots granted to the shard by this answer. */
  granted: number;
  /** How the master's last finished round ended. */
  ended: EndedRound | null;
  /** DP tasks: the releases so far and this round's clip norm (the master's privacy state), which the shard's clients and checks follow. */
  privacy: PrivacyState | null;
}

/** What a sealed shard hands the master for the close: its counts, ledger rows and the size of its partial sum. */
export interface SealResult {
  round: number;
  assigned: number;
  accepted: number;
  totalWeight: number;
  count: number;
  /** Its ledger rows of the round (ledger.ts' LedgerRow; spelt out so this module stays free of worker types). */
  rows: { client_id: string; num_examples: number; metrics: string | null; accepted_at: number }[];
  rejectedByCode: Record<string, number>;
  /** Central DP with adaptive clipping: its updates that were within the clip norm before clipping. */
  unclipped: number;
}

/** The master's book of the live round's shards. */
export interface ShardBook {
  round: number;
  /** Slots granted to each shard this round. */
  granted: number[];
  /** Accepted updates each shard last reported this round. */
  accepted: number[];
  /** When the master first tried to seal the shards for the close (the grace clock), or null. */
  sealingSince: number | null;
}

export function emptyBook(round: number, shards: number): ShardBook {
  return { round, granted: new Array(shards).fill(0), accepted: new Array(shards).fill(0), sealingSince: null };
}

/** The book of `round`, a fresh one if the stored book is of an earlier round. */
export function bookFor(book: ShardBook | undefined, round: number, shards: number): ShardBook {
  return book && book.round === round ? book : emptyBook(round, shards);
}

export function total(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/**
 * One sync of shard `index`: its report (accepted updates in `round`, counted only for the live
 * round and never downwards, as reports may arrive out of order), the slots it holds (its
 * assignments: it gives back those it has not used; an absolute count, so a sync whose answer was
 * lost is set right by the next), and whether it wants more: a block of what is left.
 */
export function syncBook(
  book: ShardBook,
  index: number,
  sync: { round: number; accepted: number; holding: number; wantsSlots: boolean },
  capacity: number,
  capped = true,
): { book: ShardBook; granted: number } {
  const next: ShardBook = { ...book, granted: [...book.granted], accepted: [...book.accepted] };
  if (sync.round === book.round) {
    next.accepted[index] = Math.max(next.accepted[index] ?? 0, sync.accepted);
    next.granted[index] = sync.holding;
  }
  // Uncapped (DP's Poisson sampling: every drawn client joins), blocks only bound how often a shard asks.
  const left = capped ? capacity - total(next.granted) : capacity;
  const granted = sync.wantsSlots && left > 0 ? Math.min(left, slotBlock(capacity, next.granted.length, left)) : 0;
  next.granted[index] = (next.granted[index] ?? 0) + granted;
  return { book: next, granted };
}

/** Why `shards` does not fit the task, or null: robust strategies and FedBuff need every update in one object, secure aggregation its one unmasking. */
export function shardingMisfit(
  shards: number,
  task: { keepsUpdates: boolean; asynchronous: boolean; secureAggregation: boolean },
  rules: RoundRules,
): string | null {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) return `shards must be an integer from 1 to ${MAX_SHARDS}, or "auto"`;
  if (shards === 1) return null;
  if (task.keepsUpdates)
    return `this strategy reads every stored update of a round (median, trimmed mean, Krum): it runs on one object, so shards must be 1, not ${shards}`;
  if (task.asynchronous) return `FedBuff keeps one buffer of updates: shards must be 1, not ${shards}`;
  if (task.secureAggregation) return `secure aggregation unmasks one sum in one object: shards must be 1, not ${shards}`;
  const capacity = assignmentCapacity(rules);
  if (shards > capacity) return `shards (${shards}) exceeds the round's assignments (${capacity}): some shard would never serve a client`;
  return null;
}
