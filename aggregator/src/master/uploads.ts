/**
 * @module Taking in an update: admission before the body, then the body read, checked, summed and
 * queued for the group commit.
 *
 * Admission is a call of its own, made before the body is sent here: everything that needs no body
 * is checked (unknown, closed or abandoned round; a client not assigned, refused at once and never
 * counted in the round's statistics; a declared length over the cap), one upload per client at a
 * time, then the upload waits for room in the task's byte budget. A waiting body so stays unread at
 * the edge, held back by TCP. The ticket must be used within the idle limit, or its room and the
 * client's slot are given back. The body is then read under its cap and time limits.
 */
import type { ChunkCommit } from '#protocol/chunked.ts';
import type { ErrorCode } from '#protocol/codes.ts';
import { clipToNorm, l2Norm } from '#protocol/dp.ts';
import { decodeRange } from '#protocol/encoding.ts';
import { UPDATE_META, type UpdateAck } from '#protocol/messages.ts';
import { database, getRound } from '../db/store.ts';
import { firstNonFinite, type RunningSum } from '../kernels/running-sum.ts';
import type { StagingSlot } from '../kernels/sum-base.ts';
import { accumulateWasm } from '../kernels/wasm-worker.ts';
import type { CentralPrivacy } from '../privacy/config.ts';
import { sha256Hex } from '../storage/weights.ts';
import type { Strategy } from '../strategies/index.ts';
import { ByteBudget } from './admission.ts';
import type { GroupCommit } from './group-commit.ts';
import type { Ledger } from './ledger.ts';
import type { ChunkPlace } from './range-aggregator.ts';
import { type RangeLayout, rangeBounds } from './ranges.ts';
import { type BodyLimits, readBody } from './read-body.ts';
import * as machine from './round-machine.ts';
import { maxUpdateBytes, storedEncoding, type TaskState } from './task-spec.ts';
import { type ValidUpdate, validateUpdate } from './update-validation.ts';

/** Update bodies admitted at once per task (each object has its own budget, so no task can starve another). */
const UPLOAD_BUDGET_BYTES = 64 * 1024 * 1024;

/** A refusal with its stable code (and, for 429s, when to retry). */
export type Failure = { ok: false; code: ErrorCode; message: string; retryAfterSeconds?: number };

export type SubmitResult = { ok: true; ack: UpdateAck; replay: boolean } | Failure;

/** An admission: a ticket for the body, or the refusal. */
export type Admission = { ok: true; ticket: string } | Failure;

/** What the round state says of an upload (see `decide`). */
type Decision =
  | { kind: 'refuse'; result: Failure }
  | { kind: 'past_round' }
  | { kind: 'read_body' }
  | { kind: 'replay'; ack: UpdateAck; durable: Promise<void> | null }
  | { kind: 'accept'; staleness: number };

/** What taking in updates needs of the object that owns the task. */
export interface UploadHost {
  readonly env: Env;
  readonly ledger: Ledger;
  readonly commits: GroupCommit;
  state(): TaskState | null;
  setState(s: TaskState): void;
  strategy(): Strategy;
  /** The round's running sum (rebuilt from storage if needed). */
  sum(): RunningSum;
  /** Resumes a close whose alarm was lost. */
  recoverIfStuck(): Promise<void>;
}

export class Uploads {
  /** Bytes of update bodies admitted at once; the next wait (body unread) up to 5 s, then 429. */
  private readonly budget = new ByteBudget({ budgetBytes: UPLOAD_BUDGET_BYTES, maxWaitMs: 5_000, maxWaiters: 1_000 });
  /** Clients with an upload admitted or being received: one at a time each. */
  private readonly uploading = new Set<string>();
  /** Admitted uploads whose body has not arrived yet, by ticket. */
  private readonly leases = new Map<string, { clientId: string; end: () => void; timer: ReturnType<typeof setTimeout> }>();

  private readonly host: UploadHost;
  private readonly limits: Omit<BodyLimits, 'cap' | 'declared'>;

  constructor(host: UploadHost, limits: Omit<BodyLimits, 'cap' | 'declared'>) {
    this.host = host;
    this.limits = limits;
  }

  async admit(clientId: string, round: number, declaredLength: number | null): Promise<Admission> {
    const task = this.host.state();
    if (!task) return fail('task_not_found', 'no such task');
    if (task.spec.secureAggregation)
      return fail(
        'secure_aggregation_required',
        'this task runs secure aggregation: a plaintext update is refused; send a masked input (PUT …/secagg/masked) in the round’s mask phase',
      );
    if (task.spec.ranges)
      return fail(
        'chunked_upload_required',
        `this task's model (${task.spec.numParams} parameters) takes updates in ${task.spec.ranges.count} chunks (PUT …/update/chunks/{k}, then POST …/update/commit), not whole`,
      );
    await this.host.recoverIfStuck();
    const cap = maxUpdateBytes(task.spec);
    const before = this.decide(clientId, round, null);
    if (before.kind === 'past_round') return this.pastRound(round);
    if (before.kind === 'refuse') return before.result;
    if (declaredLength !== null && declaredLength > cap)
      return this.reject(round, 'payload_too_large', `update is ${declaredLength} bytes; the cap for this task is ${cap}`);
    if (this.uploading.has(clientId))
      return {
        ok: false,
        code: 'upload_in_progress',
        message: 'another upload from this client is still being received; retry when it ends',
        retryAfterSeconds: 2,
      };
    this.uploading.add(clientId);
    const release = await this.budget.acquire(declaredLength ?? cap);
    if (!release) {
      this.uploading.delete(clientId);
      return { ok: false, code: 'overloaded', message: 'too many updates in flight for this task; retry shortly', retryAfterSeconds: 2 };
    }
    const ticket = crypto.randomUUID();
    const end = () => {
      this.leases.delete(ticket);
      release();
      this.uploading.delete(clientId);
    };
    this.leases.set(ticket, { clientId, end, timer: setTimeout(end, this.limits.idleMs) });
    return { ok: true, ticket };
  }

  /**
   * Takes the body of an admitted upload: acknowledged only once the Δ, its ledger row and the new
   * round state are committed together (`closing`: the accept closed the round). Any refusal leaves
   * the sum, the ledger and the versions untouched.
   */
  async receive(
    ticket: string,
    clientId: string,
    round: number,
    stream: ReadableStream<Uint8Array>,
    declaredLength: number | null,
  ): Promise<SubmitResult & { closing?: boolean }> {
    const lease = this.leases.get(ticket);
    const task = this.host.state();
    if (!lease || lease.clientId !== clientId || !task) {
      await stream.cancel().catch(() => {});
      return fail('upload_timeout', `the body did not arrive within ${this.limits.idleMs / 1000} s of its admission; retry`);
    }
    clearTimeout(lease.timer);
    this.leases.delete(ticket);
    const { commits } = this.host;
    // A float32 body that joins the sum is read straight into a slot of the sum's Wasm memory, so
    // the kernel folds it in place (no copy into Wasm memory). The slot is held until the update is
    // durable: the pending accept's Δ is a view into it until its commit stored it.
    let slot: StagingSlot | null = null;
    const into = this.stages(task)
      ? (n: number) => {
          slot = this.host.sum().stagingSlot(n);
          return slot?.bytes ?? null;
        }
      : undefined;
    try {
      commits.ingesting++;
      let out: SubmitResult | { durable: Promise<void>; ack: UpdateAck; closing: boolean };
      try {
        out = await this.ingest(clientId, round, stream, { ...this.limits, cap: maxUpdateBytes(task.spec), declared: declaredLength, into });
      } finally {
        commits.ingesting--;
      }
      commits.flushIfAlone();
      if (!('durable' in out)) return out;
      await out.durable; // the acknowledgement waits for the commit
      return { ok: true, ack: out.ack, replay: false, closing: out.closing };
    } finally {
      (slot as StagingSlot | null)?.release(); // (assigned in `into`, which TypeScript cannot see)
      lease.end();
    }
  }

  /** Whether this task's update bodies are read into the sum's memory: float32 updates folded into a running sum as they came. */
  private stages(task: TaskState): boolean {
    const strategy = this.host.strategy();
    return strategy.keeps === 'sum' && task.spec.privacy?.mode !== 'central' && (task.spec.updateEncoding ?? 'float32') === 'float32';
  }

  private async ingest(clientId: string, round: number, stream: ReadableStream<Uint8Array>, limits: BodyLimits) {
    const read = await readBody(stream, limits);
    if (!read.ok) {
      if (read.reason === 'too_large') return this.reject(round, 'payload_too_large', `update exceeds the cap for this task (${limits.cap} bytes)`);
      if (read.reason === 'broken') return this.reject(round, 'malformed_update', `the body broke off after ${read.received} bytes`);
      return this.reject(
        round,
        'upload_timeout',
        `the body stalled or arrived too slowly (${read.received} bytes in ${(read.elapsedMs / 1000).toFixed(1)} s; at least ${limits.minBytesPerSecond} B/s after ${limits.graceMs / 1000} s, and no pause over ${limits.idleMs / 1000} s)`,
      );
    }
    const body = read.body;
    await this.host.recoverIfStuck();
    const bodySha256 = await sha256Hex(body);
    // No await from here to the commit: concurrent submits interleave only at awaits, so the
    // round state read here is current and sequence numbers cannot collide.
    const decision = this.decide(clientId, round, bodySha256);
    if (decision.kind === 'read_body') throw new Error('decide() asked for the body it was given');
    if (decision.kind === 'refuse') return decision.result;
    if (decision.kind === 'past_round') return this.pastRound(round); // a refusal: its await changes nothing we accept
    if (decision.kind === 'replay') {
      if (decision.durable) await decision.durable;
      return { ok: true as const, ack: decision.ack, replay: true };
    }
    const task = this.host.state()!;
    const { state, spec } = task;
    const strategy = this.host.strategy();
    const { staleness } = decision;
    // Each round publishes one version in asynchronous tasks, so round r was assigned version baseVersion − staleness.
    const valid = validateUpdate(body, spec, state.baseVersion - staleness, (d) => firstNonFinite(d, accumulateWasm));
    if (!valid.ok) return this.reject(state.round, valid.code, valid.message);

    const ack = newAck(spec.taskId, state.accepted + 1, { round, clientId, numExamples: valid.numExamples, bodySha256 });
    // A compressed update is summed and stored as it came, unless its values must change first
    // (DP's clipping, norm bounding): then it is decoded to float32 here.
    let update = valid.update;
    if (update.encoding !== storedEncoding(spec, strategy.prepareUpdate !== undefined))
      update = { encoding: 'float32', length: update.length, data: decodeRange(update, 0, update.length) };
    const dp = spec.privacy?.mode === 'central' ? centralDpUpdate(task, valid, update.data as Float32Array) : null;
    if (dp && !dp.ok) return this.reject(state.round, dp.code, dp.message);
    // A shard never closes its part of the round at a count: the master closes the round and seals it.
    const next = machine.accept(state, spec.rules, dp !== null || task.shard !== undefined);
    // Strategy transforms (norm bounding) apply before the update is summed and stored; DP clips instead, and weighs every update 1.
    if (!dp && strategy.prepareUpdate && update.encoding === 'float32') update = { ...update, data: strategy.prepareUpdate(update.data) };
    const weight = dp ? 1 : (strategy.weightOf?.(valid.numExamples, staleness) ?? valid.numExamples);
    // The sum must be current (rebuilt from storage if needed) before this update joins it.
    if (strategy.keeps === 'sum') this.host.sum().addEncoded(update, weight);
    this.host.setState({ ...task, state: next });
    // Under central DP the clients' own metrics are not kept: the noise does not cover them.
    const metrics = dp ? null : valid.metrics;
    const durable = this.host.commits.add({ ack, generation: state.round, weight, metrics, update, unclipped: dp?.unclipped ?? null });
    return { durable, ack, closing: next.status === 'closing' };
  }

  /** Admits one chunk of a chunked update (ranges.ts): its place, which the range object stores it by, or the refusal. */
  async admitChunk(clientId: string, round: number, index: number): Promise<{ ok: true; place: ChunkPlace } | Failure> {
    const open = await this.chunkedRound(clientId, round, index);
    if ('code' in open) return open;
    const { task, layout } = open;
    const { start, end } = rangeBounds(layout, task.spec.numParams, index);
    const place = { round, clientId, index, baseVersion: task.state.baseVersion, encoding: task.spec.updateEncoding ?? 'float32', length: end - start };
    return { ok: true, place };
  }

  /**
   * What a chunk or a commit of a chunked update first checks: a ranged task, a chunk index it has
   * (when given), and what the round state says before anything is read (decide, without a body).
   */
  private async chunkedRound(clientId: string, round: number, index?: number): Promise<{ task: TaskState; layout: RangeLayout } | Failure> {
    const task = this.host.state();
    if (!task) return fail('task_not_found', 'no such task');
    const layout = task.spec.ranges;
    if (!layout) return fail('invalid_request', 'this task takes each update whole (PUT …/update), not in chunks');
    if (index !== undefined && (!Number.isInteger(index) || index < 0 || index >= layout.count))
      return fail('invalid_request', `no chunk ${index}: this task's updates have ${layout.count} chunks, 0 to ${layout.count - 1}`);
    await this.host.recoverIfStuck();
    const before = this.decide(clientId, round, null);
    if (before.kind === 'past_round') return this.pastRound(round);
    if (before.kind === 'refuse') return before.result;
    return { task: this.host.state()!, layout };
  }

  /**
   * Accepts a chunked update once every chunk is stored (`chunkOf(k)`: the SHA-256 range k holds for
   * this client, or null): the commit is the update's acceptance, exactly once, acknowledged once
   * durable, as a whole update's. Its identity (the ack's `bodySha256`) is the hash of the commit.
   */
  async commitChunked(
    clientId: string,
    round: number,
    commit: ChunkCommit,
    chunkOf: (index: number) => Promise<string | null>,
  ): Promise<SubmitResult & { closing?: boolean }> {
    const open = await this.chunkedRound(clientId, round);
    if ('code' in open) return open;
    const { task, layout } = open;
    const { rules } = task.spec;
    if (commit.chunks.length !== layout.count)
      return this.reject(round, 'invalid_request', `the commit names ${commit.chunks.length} chunks; this task's updates have ${layout.count}`);
    if (commit.baseVersion !== task.state.baseVersion)
      return this.reject(
        round,
        'base_version_mismatch',
        `update was trained on version ${commit.baseVersion}; this round's base version is ${task.state.baseVersion}`,
      );
    if (commit.numExamples > rules.maxExamplesPerClient)
      return this.reject(round, 'invalid_example_count', `example count ${commit.numExamples} exceeds the task's cap of ${rules.maxExamplesPerClient}`);
    const stored = await Promise.all(commit.chunks.map((_, k) => chunkOf(k)));
    const missing = stored.flatMap((h, k) => (h === null ? [k] : []));
    if (missing.length > 0)
      return fail(
        'update_incomplete',
        `chunk${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of this update ${missing.length > 1 ? 'were' : 'was'} not received: send them, then commit again`,
      );
    const differs = stored.findIndex((h, k) => h !== commit.chunks[k]);
    if (differs >= 0)
      return this.reject(round, 'duplicate_conflict', `chunk ${differs} was stored with SHA-256 ${stored[differs]}, not ${commit.chunks[differs]}`);
    const canonical = { baseVersion: commit.baseVersion, numExamples: commit.numExamples, metrics: commit.metrics ?? null, chunks: commit.chunks };
    const bodySha256 = await sha256Hex(new TextEncoder().encode(JSON.stringify(canonical)));
    // No await from here to the commit (as in ingest): the state read here is current.
    const decision = this.decide(clientId, round, bodySha256);
    if (decision.kind === 'read_body') throw new Error('decide() asked for the body it was given');
    if (decision.kind === 'refuse') return decision.result;
    if (decision.kind === 'past_round') return this.pastRound(round);
    if (decision.kind === 'replay') {
      if (decision.durable) await decision.durable;
      return { ok: true, ack: decision.ack, replay: true };
    }
    const current = this.host.state()!;
    const { state, spec } = current;
    const ack = newAck(spec.taskId, state.accepted + 1, { round, clientId, numExamples: commit.numExamples, bodySha256 });
    const next = machine.accept(state, spec.rules, false);
    const weight = this.host.strategy().weightOf?.(commit.numExamples, 0) ?? commit.numExamples;
    this.host.setState({ ...current, state: next });
    const durable = this.host.commits.add({ ack, generation: state.round, weight, metrics: commit.metrics ?? null, update: null, unclipped: null });
    this.host.commits.flushIfAlone();
    await durable;
    return { ok: true, ack, replay: false, closing: next.status === 'closing' };
  }

  /**
   * What the round state says of an upload from `clientId` for `round`: refuse it (its code), a
   * past round (closed or abandoned: D1 tells which), a retry of an accepted update (with the body's
   * hash: replay its acknowledgement, or a conflict), or go on. Without the hash (before the body is
   * read) a possible retry is let through to be read. Synchronous: no request interleaves with it.
   */
  private decide(clientId: string, round: number, bodySha256: string | null): Decision {
    const { state } = this.host.state()!;
    const { ledger, commits } = this.host;
    if (round > state.round || round < 1) return refused(fail('round_not_found', `round ${round} does not exist (the current round is ${state.round})`));
    // Checked before the ledger: an abandoned round's ledger rows name updates that were discarded.
    if (round === state.round && state.status === 'abandoned') return refused(fail('round_abandoned', abandonedMessage(round)));
    const prior = ledger.prior(round, clientId);
    const inFlight = commits.find(round, clientId);
    if (prior || inFlight) {
      if (bodySha256 === null) return { kind: 'read_body' };
      if ((prior?.body_sha256 ?? inFlight!.ack.bodySha256) !== bodySha256) {
        return refused(this.reject(round, 'duplicate_conflict', `an update from this client for round ${round} was already accepted with different content`));
      }
      return { kind: 'replay', ack: inFlight?.ack ?? prior!.ack, durable: inFlight?.durable ?? null };
    }
    // Asynchronous tasks take updates assigned in earlier rounds (buffers) into the current one, up to the staleness bound.
    const asynchronous = this.host.strategy().asynchronous;
    const staleness = state.round - round;
    if (asynchronous && staleness > asynchronous.maxStaleness) {
      return refused(
        this.reject(state.round, 'stale_update', `the update's base is ${staleness} versions old; this task accepts at most ${asynchronous.maxStaleness}`),
      );
    }
    if (staleness > 0 && !asynchronous) return { kind: 'past_round' };
    if (state.status !== 'open') return refused(fail('round_closed', `round ${round} is ${state.status}; it accepts no more updates`));
    if (ledger.hasUpdateIn(state.round, clientId) || commits.inGeneration(state.round, clientId)) {
      return refused(
        this.reject(state.round, 'duplicate_conflict', `this client already has an update in round ${state.round}; one update per client per round`),
      );
    }
    // Not counted in the round's rejections: anyone with a token could inflate them.
    if (!ledger.isAssigned(round, clientId)) return refused(fail('not_assigned', `this client was not assigned to round ${round}; check in first`));
    return bodySha256 === null ? { kind: 'read_body' } : { kind: 'accept', staleness };
  }

  /** The refusal for an update to a finished round of a synchronous task. */
  private async pastRound(round: number): Promise<Failure> {
    const status = (await getRound(database(this.host.env.DB), this.host.state()!.spec.taskId, round))?.status;
    return status === 'abandoned'
      ? fail('round_abandoned', abandonedMessage(round))
      : fail('round_closed', `round ${round} is over; it accepts no more updates`);
  }

  /** A refusal counted in the statistics of the live round (of an assigned client). */
  private reject(round: number, code: ErrorCode, message: string): Failure {
    if (round === this.host.state()?.state.round) this.host.ledger.countRejection(round, code);
    return fail(code, message);
  }
}

/**
 * A central-DP task's treatment of one validated update: clipped here to the round's clip norm
 * (in place), or, when clients clip, refused above it. `unclipped`: whether its norm was within the
 * clip norm before clipping (reported by the client when it clips), for adaptive clipping.
 */
function centralDpUpdate(task: TaskState, valid: ValidUpdate, delta: Float32Array): { ok: true; unclipped: boolean | null } | Failure {
  const privacy = task.spec.privacy as CentralPrivacy;
  const clipNorm = task.privacy!.clipNorm;
  if (privacy.clipping === 'server') return { ok: true, unclipped: !clipToNorm(delta, clipNorm).clipped };
  const norm = l2Norm(delta);
  if (norm > clipNorm)
    return fail(
      'update_norm_exceeded',
      `the update's L2 norm is ${norm}, above this round's clip norm ${clipNorm}: this task clips on the client (clipToNorm of the SDK's protocol/dp.ts)`,
    );
  if (!privacy.adaptiveClipping) return { ok: true, unclipped: null };
  if (valid.unclipped === null)
    return fail(
      'invalid_metadata',
      `this task's adaptive clipping needs metadata "${UPDATE_META.unclipped}": 1 if the norm was ≤ ${clipNorm} before clipping, else 0`,
    );
  return { ok: true, unclipped: valid.unclipped };
}

/** The acknowledgement of the round's `seq`-th accepted update, accepted now. */
function newAck(taskId: string, seq: number, u: Pick<UpdateAck, 'round' | 'clientId' | 'numExamples' | 'bodySha256'>): UpdateAck {
  return { taskId, round: u.round, clientId: u.clientId, seq, numExamples: u.numExamples, bodySha256: u.bodySha256, acceptedAt: new Date().toISOString() };
}

function refused(result: Failure): Decision {
  return { kind: 'refuse', result };
}

export function fail(code: ErrorCode, message: string): Failure {
  return { ok: false, code, message };
}

function abandonedMessage(round: number): string {
  return `round ${round} was abandoned at its deadline with fewer updates than its minimum: its updates were discarded; check in for the next round`;
}
