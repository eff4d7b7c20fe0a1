/**
 * @module The master aggregator: one Durable Object per task, SQLite storage. Its RPC methods, in
 * the order of a round: init, authenticate, checkIn, admitUpload, submit, status, alarm (the close).
 *
 * Each step is a module of its own: `ledger.ts` (schema, assignments, ledger), `uploads.ts` (taking
 * in an update), `group-commit.ts` (durability before acknowledgement), `round-store.ts` (stored
 * updates, the checkpoint, strategy state), `publish.ts` (the close), `credentials.ts` and
 * `rate-limit.ts` (who may call); `round-machine.ts` is the pure state machine they drive.
 */

import { DurableObject } from 'cloudflare:workers';
import type { ChunkCommit } from '#protocol/chunked.ts';
import { CryptoUniform } from '#protocol/dp.ts';
import type { UpdateEncoding } from '#protocol/encoding.ts';
import type { CheckInResponse, TrainingPlan } from '#protocol/messages.ts';
import { database, getClientCredential } from '../db/store.ts';
import type { RunningSum } from '../kernels/running-sum.ts';
import { initialPrivacyState } from '../privacy/mechanism.ts';
import { uploadChunkKey } from '../storage/weight-uploads.ts';
import type { StoredBlob } from '../storage/weights.ts';
import { createStrategy, DEFAULT_STRATEGY, type Strategy } from '../strategies/index.ts';
import { type ClientAuth, ClientGate, CredentialCache, storedCredential } from './credentials.ts';
import { Faults } from './faults.ts';
import { type CommitHost, GroupCommit } from './group-commit.ts';
import { Ledger } from './ledger.ts';
import * as lifecycle from './lifecycle.ts';
import { budgetExhausted, clientPrivacy, type PrivacySpent, privacySpent } from './privacy.ts';
import { abandon, publish } from './publish.ts';
import type { ChunkPlace } from './range-aggregator.ts';
import { assembleRanged, closeRanged, type RangedHost } from './ranged-close.ts';
import { chunkedUpload, type RangeLayout, rangeName } from './ranges.ts';
import { TokenBuckets } from './rate-limit.ts';
import { readBody } from './read-body.ts';
import * as machine from './round-machine.ts';
import { RoundStore } from './round-store.ts';
import { clientSecAgg, type SecureAggregation, secAggCapacity } from './secagg-config.ts';
import { openSecAgg, type Refusal, SecAggRounds } from './secagg-round.ts';
import { type Collected, closeSharded, eachShard, type ShardCalls, type ShardedHost, type ShardSync, syncShard, tellShards } from './sharded-close.ts';
import { SEAL_GRACE_MS, type ShardView, shardName } from './shards.ts';
import { envNumber, type LiveRound, liveRound, retrySeconds, storedEncoding, type TaskSpec, type TaskState, uploadLimits } from './task-spec.ts';
import { type Admission, type Failure, fail, type SubmitResult, type UploadHost, Uploads } from './uploads.ts';

export type { ClientAuth } from './credentials.ts';
export type { LiveRound } from './task-spec.ts';
export type { Admission, Failure, SubmitResult } from './uploads.ts';

export interface InitArgs {
  spec: TaskSpec;
  plan: TrainingPlan;
  /** Version 0: stored already, or (a ranged task) to assemble from a weight upload's chunks. */
  version0: { key: string } | { upload: string };
}

export class TaskAggregator extends DurableObject<Env> {
  readonly ledger: Ledger;
  readonly commits: GroupCommit;
  /** Fault injection for tests (`runInDurableObject`): production code only passes through its points. */
  readonly faults = new Faults();
  /** The secure random source of Poisson sampling (never Math.random). */
  private readonly uniform = new CryptoUniform();
  protected readonly host: CommitHost & UploadHost & ShardedHost & RangedHost;
  private readonly uploads: Uploads;
  private readonly gate: ClientGate;
  private readonly secagg: SecAggRounds;
  private readonly uploadLimits: { idleMs: number; graceMs: number; minBytesPerSecond: number };
  protected task: TaskState | null = null;
  private roundStore: RoundStore | null = null;
  private strategyInstance: Strategy | null = null;
  private acc: RunningSum | null = null;
  private accRound = -1;
  /** A sharded master's close in progress: what the sealed shards handed in. */
  private collected: Collected | null = null;
  private merged: RunningSum | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.ledger = new Ledger(ctx.storage.sql);
    this.host = this.makeHost(env, ctx.storage);
    this.commits = new GroupCommit(this.host);
    this.uploadLimits = uploadLimits(env);
    this.uploads = new Uploads(this.host, this.uploadLimits);
    this.secagg = new SecAggRounds({
      sql: ctx.storage.sql,
      ledger: this.ledger,
      commits: this.commits,
      state: () => this.task,
      setState: (s) => {
        this.task = s;
      },
    });
    const credentials = new CredentialCache({ load: async (clientId) => storedCredential(await getClientCredential(database(env.DB), clientId)) });
    const rate = { capacity: envNumber(env.CLIENT_RATE_BURST, 60), refillPerSecond: envNumber(env.CLIENT_RATE_PER_SECOND, 2), maxKeys: 20_000 };
    this.gate = new ClientGate(credentials, new TokenBuckets(rate));
    ctx.blockConcurrencyWhile(async () => {
      this.ledger.migrate();
      this.task = this.readTask();
    });
  }

  /** What the step modules see of this object: its state and storage, through one interface. */
  private makeHost(env: Env, storage: DurableObjectStorage): CommitHost & UploadHost & ShardedHost & RangedHost {
    const self = this;
    return {
      env,
      storage,
      ledger: this.ledger,
      faults: this.faults,
      get commits() {
        return self.commits;
      },
      state: () => this.task,
      setState: (s) => {
        this.task = s;
      },
      strategy: () => this.strategy(),
      store: () => this.store(),
      sum: () => this.merged ?? this.sum(),
      dropSum: () => {
        this.acc = null;
      },
      rows: (round) => this.collected?.rows ?? this.ledger.rowsOf(round),
      rejections: (round) => this.collected?.rejectedByCode ?? this.ledger.rejectionsOf(round),
      unclippedIn: (round) => this.collected?.unclipped ?? this.ledger.unclippedIn(round),
      shard: (index) => this.shardStub(index),
      range: (index) => this.rangeStub(index),
      setCollected: (c) => {
        this.collected = c;
      },
      setMerged: (m) => {
        this.merged = m;
      },
      keepsUpdates: () => this.strategy().keeps === 'updates',
      stateJson: () => JSON.stringify(this.task),
      reload: () => {
        this.task = this.readTask();
        this.acc = null;
      },
      recoverIfStuck: () => this.recoverIfStuck(),
    };
  }

  /**
   * Creates the task's first round on version 0: the blob given, or (a ranged task) the one its
   * range objects assemble from the upload's chunks, which it returns. Idempotent: a second call
   * changes nothing.
   */
  async init(args: InitArgs): Promise<StoredBlob | null> {
    if (this.task) return null;
    const key = 'key' in args.version0 ? args.version0.key : '';
    const task: TaskState = { spec: args.spec, plan: args.plan, state: machine.openRound(1, 0, Date.now()), latestVersion: 0, latestKey: key };
    if (args.spec.privacy) task.privacy = initialPrivacyState(args.spec.privacy);
    if (args.spec.secureAggregation) task.secagg = openSecAgg(1);
    let blob: StoredBlob | null = null;
    if ('upload' in args.version0) {
      const { upload } = args.version0;
      if (!args.spec.ranges) throw new Error('only a ranged task assembles version 0 from an upload');
      // Not visible to any client before init returns: the task's D1 row comes after.
      this.task = task;
      const layout = args.spec.ranges;
      blob = await assembleRanged(this.host, 0, ({ start }) => ({ kind: 'copy', key: uploadChunkKey(upload, start / layout.params) }));
      this.task = { ...this.task, latestKey: blob.key };
    } else this.task = task;
    this.commits.commit();
    return blob;
  }

  /** Authenticates one call of a client of this task (every client route asks here, whichever isolate serves it), with its request rate. */
  async authenticate(taskId: string, clientId: string, secretHash: string): Promise<ClientAuth> {
    return this.gate.authenticate(taskId, clientId, secretHash, Date.now());
  }

  /** Drops a client's cached credentials after D1 changed them (revocation, rotation): effective at the next call. */
  async forgetClient(clientId: string): Promise<void> {
    this.gate.forget(clientId);
  }

  /** Pace steering: an assignment to the open round, or when to come back. */
  async checkIn(clientId: string): Promise<CheckInResponse | Failure> {
    if (!this.task) return fail('task_not_found', 'no such task');
    await this.recoverIfStuck();
    // No await from here to the commit: requests interleave only at awaits, so the state read here is current.
    const task = this.task;
    if (lifecycle.isStopped(task)) return lifecycle.stoppedFailure();
    if (task.privacy?.exhaustedAt != null) return budgetExhausted(task);
    if (lifecycle.isPaused(task)) return lifecycle.pausedAnswer(task);
    const { state, spec } = task;
    const taskId = spec.taskId;
    const prior = this.priorAnswer(clientId);
    if (prior) return prior;
    const now = Date.now();
    const central = spec.privacy?.mode === 'central' ? spec.privacy : null;
    const sampled = central !== null;
    if (central && state.status === 'open') {
      // Under Poisson sampling the deadline clock starts at the round's first draw, not its first
      // assignment: a round in which nobody is drawn must still end, so the next one draws afresh.
      const clocked = machine.startClock(state, spec.rules, now);
      this.task = { ...task, state: clocked };
      if (!this.drawSample(state.round, clientId, central.samplingRate)) {
        if (state.deadlineAt === null) await this.scheduleAlarm();
        // Left out of this round: come back for the next one, after this round's deadline.
        return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(clocked.deadlineAt! - now + machine.CLOSING_RETRY_MS), reason: 'not_sampled' };
      }
    }
    // Secure aggregation: clients join only while the round's keys are being advertised, and never
    // more than the sum was sized for (under central DP a Poisson draw past that bound: see secAggCapacity).
    if (task.secagg && task.secagg.phase !== 'advertise')
      return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(machine.CLOSING_RETRY_MS), reason: 'round_closing' };
    if (task.secagg && sampled && state.assigned >= secAggCapacity(spec.rules, spec.privacy))
      return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(machine.CLOSING_RETRY_MS), reason: 'round_full' };
    const decision = this.strategy().asynchronous ? machine.assignAsync(state) : machine.assign(state, spec.rules, now, sampled);
    if (decision.kind === 'wait') return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(decision.retryAfterMs), reason: decision.reason };
    const next = decision.state;
    this.task = { ...task, state: next };
    if (task.secagg) this.secagg.assigned(now);
    this.commits.commit(() => this.ledger.assign(next.round, clientId, now));
    if (state.deadlineAt === null) await this.scheduleAlarm();
    return this.assignment(next.round, next.baseVersion, this.task.state.deadlineAt);
  }

  /** The assignment to `round` a checking-in client gets: the plan, and what the task asks of its update. */
  protected assignment(round: number, baseVersion: number, deadlineAt: number | null): CheckInResponse {
    const task = this.task!;
    const { spec } = task;
    const privacy = clientPrivacy(task);
    const encoding = spec.updateEncoding ?? 'float32';
    const secure = spec.secureAggregation ? clientSecAgg(spec.secureAggregation, spec.rules, spec.privacy) : null;
    return {
      status: 'assigned',
      taskId: spec.taskId,
      round,
      baseVersion,
      // Under secure aggregation the masked input is due by the round deadline, not by the key phase's.
      deadlineAt: new Date((secure ? task.secagg?.trainingEndsAt : null) ?? deadlineAt ?? 0).toISOString(),
      plan: { ...task.plan, proximalMu: task.plan.proximalMu ?? 0 }, // tasks from before FedProx lack μ
      ...(privacy ? { privacy } : {}),
      ...(secure ? { secureAggregation: secure } : {}),
      ...(encoding !== 'float32' ? { updateEncoding: encoding } : {}),
      ...(spec.ranges ? { chunked: chunkedUpload(spec.ranges) } : {}),
    };
  }

  /**
   * The answer to a client already in the live round: its assignment again, or to come back
   * (it submitted, or the round is closing); null for a client not in it yet.
   */
  protected priorAnswer(clientId: string): CheckInResponse | null {
    const { state, spec } = this.task!;
    const taskId = spec.taskId;
    // An update in this round already counts for this client (in asynchronous tasks possibly a stale
    // one folded into this buffer): one update per client per round.
    const submitted = this.ledger.hasUpdateIn(state.round, clientId);
    if (this.ledger.isAssigned(state.round, clientId)) {
      if (submitted || state.status !== 'open') {
        const wait = state.status === 'open' && state.deadlineAt !== null ? state.deadlineAt - Date.now() : machine.CLOSING_RETRY_MS;
        return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(wait), reason: submitted ? 'already_submitted' : 'round_closing' };
      }
      return this.assignment(state.round, state.baseVersion, state.deadlineAt);
    }
    if (submitted) return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(machine.CLOSING_RETRY_MS), reason: 'already_submitted' };
    return null;
  }

  /**
   * A DP task's Poisson draw of this client for this round: taken once, from the secure source, and
   * kept (committed before the answer leaves), so checking in again cannot draw again.
   */
  protected drawSample(round: number, clientId: string, rate: number): boolean {
    const prior = this.ledger.sampling(round, clientId);
    if (prior !== undefined) return prior;
    const selected = this.uniform.next() < rate;
    this.commits.commit(() => this.ledger.recordSampling(round, clientId, selected));
    return selected;
  }

  /** The live round and the privacy spent, for the task view. */
  async overview(): Promise<{
    currentRound: LiveRound | null;
    privacySpent: PrivacySpent | null;
    secureAggregation: SecureAggregation | null;
    updateEncoding: UpdateEncoding;
    shards: number;
    ranges: RangeLayout | null;
  }> {
    const task = this.task;
    if (!task) return { currentRound: null, privacySpent: null, secureAggregation: null, updateEncoding: 'float32', shards: 1, ranges: null };
    return {
      currentRound: await this.status(),
      privacySpent: privacySpent(task),
      secureAggregation: task.spec.secureAggregation ?? null,
      updateEncoding: task.spec.updateEncoding ?? 'float32',
      shards: task.spec.shards ?? 1,
      ranges: task.spec.ranges ?? null,
    };
  }

  /** Admits an upload before its body is sent (see uploads.ts). */
  async admitUpload(clientId: string, round: number, declaredLength: number | null): Promise<Admission> {
    return this.uploads.admit(clientId, round, declaredLength);
  }

  /** Takes the body of an admitted upload; acknowledged once durable. */
  async submit(ticket: string, clientId: string, round: number, stream: ReadableStream<Uint8Array>, declaredLength: number | null): Promise<SubmitResult> {
    const { closing, ...result } = await this.uploads.receive(ticket, clientId, round, stream, declaredLength);
    if (closing) await this.scheduleAlarm();
    return result as SubmitResult;
  }

  /** Admits one chunk of a chunked update (ranged tasks): where it goes, or the refusal. */
  async admitChunk(clientId: string, round: number, index: number): Promise<{ ok: true; place: ChunkPlace } | Failure> {
    return this.uploads.admitChunk(clientId, round, index);
  }

  /** Commits a chunked update once its range objects hold every chunk; acknowledged once durable. */
  async commitChunked(clientId: string, round: number, commit: ChunkCommit): Promise<SubmitResult> {
    const { closing, ...result } = await this.uploads.commitChunked(clientId, round, commit, (k) => this.rangeStub(k).chunkOf(round, clientId));
    if (closing) await this.scheduleAlarm();
    return result as SubmitResult;
  }

  /** Whether the client holds an assignment (the live round's, or a recent buffer's in asynchronous tasks). */
  async isAssignedNow(clientId: string): Promise<boolean> {
    return this.ledger.hasAssignment(clientId);
  }

  async status(): Promise<LiveRound | null> {
    return this.task ? liveRound(this.task.state, this.ledger.rejectionsOf(this.task.state.round)) : null;
  }

  /** Deletes everything this object stores, once the task is stopped and its last round over. */
  async destroy(): Promise<{ ok: true } | Failure> {
    const refusal = this.task && lifecycle.deletable(this.task);
    if (refusal) return refusal;
    const shards = this.task?.spec.shards ?? 1;
    if (shards > 1) await eachShard(shards, (i) => this.shardStub(i).destroy());
    const ranges = this.task?.spec.ranges?.count ?? 0;
    if (ranges > 0) await eachShard(ranges, (i) => this.rangeStub(i).destroy());
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.task = null;
    return { ok: true };
  }

  /** Pauses, resumes or stops the task (idempotent); the live round as it stands, or why not. */
  async setLifecycle(action: lifecycle.LifecycleAction): Promise<LiveRound | null | Failure> {
    if (!this.task) return fail('task_not_found', 'no such task');
    const next = lifecycle.apply(this.task, action, Date.now());
    if ('code' in next) return next;
    this.task = next;
    this.commits.commit();
    await this.scheduleAlarm();
    if ((next.spec.shards ?? 1) > 1) await tellShards(this.host);
    return this.status();
  }

  /** Deadline or close: applies the deadline, then publishes or abandons. Safe to run any number of times. */
  override async alarm(): Promise<void> {
    if (!this.task || !lifecycle.deadlineRuns(this.task)) return;
    if (this.commits.size > 0) this.commits.commit(); // the round's result counts exactly what is durable
    if ((this.task.spec.shards ?? 1) > 1) {
      const retryAt = await closeSharded(this.host, Date.now(), envNumber(this.env.SHARD_SEAL_GRACE_SECONDS, SEAL_GRACE_MS / 1000) * 1000);
      if (retryAt !== null) await this.ctx.storage.setAlarm(retryAt);
      else await this.scheduleAlarm();
      return;
    }
    if (this.task.spec.ranges) {
      await closeRanged(this.host, Date.now());
      await this.scheduleAlarm();
      return;
    }
    const task = this.task;
    if (task.secagg) this.secagg.advance(Date.now());
    else {
      const state = machine.applyDeadline(task.state, task.spec.rules, Date.now());
      if (state !== task.state) {
        this.task = { ...task, state };
        this.commits.commit();
      }
    }
    const { status } = this.task.state;
    if (status === 'closing') await publish(this.host, this.task.secagg ? await this.secagg.unmaskedAggregate() : undefined);
    else if (status === 'abandoned') await abandon(this.host);
    await this.scheduleAlarm();
  }

  // Client-sharded rounds (shards.ts, sharded-close.ts): what the shards ask of their master.

  /** The task's shard count (1: unsharded; 0: no such task), which the Worker caches to route clients. */
  async shardCount(): Promise<number> {
    return this.task ? (this.task.spec.shards ?? 1) : 0;
  }

  /** What a shard needs of the task to serve its clients: the spec and the plan. */
  async shardConfig(): Promise<{ spec: TaskState['spec']; plan: TrainingPlan } | null> {
    return this.task ? { spec: this.task.spec, plan: this.task.plan } : null;
  }

  /** A shard's sync: its accepted count, the slots it gives back, whether it wants more; the round as it stands. */
  async shardSync(index: number, sync: ShardSync): Promise<ShardView | Failure> {
    const task = this.task;
    if (!task) return fail('task_not_found', 'no such task');
    const shards = task.spec.shards ?? 1;
    if (!Number.isInteger(index) || index < 0 || index >= shards) return fail('invalid_request', `no shard ${index} in a task of ${shards}`);
    const { task: next, view } = syncShard(task, index, sync, Date.now());
    this.task = next;
    this.commits.commit();
    if (next.state !== task.state) await this.scheduleAlarm();
    return view;
  }

  private rangeStub(index: number) {
    return this.env.RANGES.get(this.env.RANGES.idFromName(rangeName(this.task!.spec.taskId, index)));
  }

  private shardStub(index: number): ShardCalls & { destroy(): Promise<unknown> } {
    const ns = this.env.SHARDS;
    return ns.get(ns.idFromName(shardName(this.task!.spec.taskId, index))) as unknown as ShardCalls & { destroy(): Promise<unknown> };
  }

  // Secure aggregation's phases (secagg-round.ts); each write may end its phase, so the alarm follows.

  async secaggKeys(clientId: string, round: number, body: unknown): Promise<{ ok: true } | Refusal> {
    return this.afterSecAgg(this.secagg.advertise(clientId, round, body));
  }

  async secaggRoster(clientId: string, round: number, waitMs: number) {
    return this.secagg.roster(clientId, round, waitMs);
  }

  async secaggShares(clientId: string, round: number, body: unknown): Promise<{ ok: true } | Refusal> {
    return this.afterSecAgg(await this.secagg.share(clientId, round, body));
  }

  async secaggInbox(clientId: string, round: number, waitMs: number) {
    return this.secagg.inbox(clientId, round, waitMs);
  }

  async secaggMasked(clientId: string, round: number, stream: ReadableStream<Uint8Array>, declared: number | null) {
    const task = this.task;
    if (!task?.secagg) {
      await stream.cancel().catch(() => {});
      return this.secagg.masked(clientId, round, new Uint8Array(0));
    }
    const cap = (task.spec.numParams + 1) * 4;
    const read = await readBody(stream, { cap, declared, ...this.uploadLimits });
    if (!read.ok) {
      if (read.reason === 'too_large') return fail('payload_too_large', `a masked input of this task is ${cap} bytes`);
      return fail('upload_timeout', `the masked input did not arrive in time (${read.received} bytes in ${read.elapsedMs} ms); retry`);
    }
    return this.afterSecAgg(await this.secagg.masked(clientId, round, read.body));
  }

  async secaggUnmask(clientId: string, round: number, waitMs: number) {
    return this.secagg.unmaskRequest(clientId, round, waitMs);
  }

  async secaggReveal(clientId: string, round: number, body: unknown): Promise<{ ok: true } | Refusal> {
    return this.afterSecAgg(await this.secagg.reveal(clientId, round, body));
  }

  private async afterSecAgg<T>(result: T): Promise<T> {
    await this.scheduleAlarm();
    return result;
  }

  private readTask(): TaskState | null {
    const raw = this.ledger.get('task');
    return raw ? (JSON.parse(raw) as TaskState) : null;
  }

  protected strategy(): Strategy {
    this.strategyInstance ??= createStrategy(this.task!.spec.strategy ?? DEFAULT_STRATEGY);
    return this.strategyInstance;
  }

  protected store(): RoundStore {
    this.roundStore ??= new RoundStore(
      this.ctx.storage.sql,
      this.ledger,
      this.task!.spec.numParams,
      storedEncoding(this.task!.spec, this.strategy().prepareUpdate !== undefined),
    );
    return this.roundStore;
  }

  /** The running sum of the current round, rebuilt from the checkpoint and stored updates when needed. */
  protected sum(): RunningSum {
    const round = this.task!.state.round;
    if (this.acc && this.accRound === round) return this.acc;
    this.acc = this.store().rebuildSum(round, this.acc);
    this.accRound = round;
    return this.acc;
  }

  /** Sets the alarm the state machine asks for, if it is not already set to that time. */
  protected async scheduleAlarm(): Promise<void> {
    if (!this.task) return;
    const at = lifecycle.deadlineRuns(this.task) ? machine.nextAlarmAt(this.task.state, Date.now()) : null;
    const current = await this.ctx.storage.getAlarm();
    if (at === null) {
      if (current !== null) await this.ctx.storage.deleteAlarm();
    } else if (current !== at) {
      await this.ctx.storage.setAlarm(at);
    }
  }

  /** A round left closing or abandoned with no alarm (alarm storage lost) is resumed on the next call. */
  protected async recoverIfStuck(): Promise<void> {
    const s = this.task?.state;
    if (s && (s.status === 'closing' || s.status === 'abandoned') && (await this.ctx.storage.getAlarm()) === null) await this.scheduleAlarm();
  }
}
