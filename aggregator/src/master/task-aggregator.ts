/**
 * @module The master aggregator: one Durable Object per task, SQLite storage.
 *
 * It owns the round state machine, the assignments, the exactly-once ledger, the running sum and
 * the deadline alarm. Durability is a group commit: accepted updates are folded into the in-memory
 * float64 sum at once and acknowledged only when the transaction holding their ledger rows commits.
 * A batch of one stores its Δ (≤ 1 MiB chunks); a batch of several, or every CHECKPOINT_EVERY
 * stored updates, writes a checkpoint of the sum instead and drops the updates it covers, so under
 * load the storage written per update falls below the update's own size. After an eviction or
 * crash the sum is rebuilt from the checkpoint plus the stored updates after it, in acceptance
 * order: the same bits as before. A failed commit acknowledges nothing and rebuilds from storage.
 */
import { DurableObject } from 'cloudflare:workers';
import type { ErrorCode } from '#protocol/codes.ts';
import type { CheckInResponse, TrainingPlan, UpdateAck } from '#protocol/messages.ts';
import { concatTensors, decodeTensors } from '#protocol/safetensors.ts';
import { database, getClientCredential, getRound, type NewParticipant, recordRound } from '../db/store.ts';
import { createRunningSum, firstNonFinite, type RunningSum } from '../kernels/running-sum.ts';
import { accumulateWasm } from '../kernels/wasm-worker.ts';
import { putWeights, sha256Hex } from '../storage/weights.ts';
import { createStrategy, isAsync, isRobust, type Strategy, type StrategyState, stalenessWeight } from '../strategies/index.ts';
import { ByteBudget } from './admission.ts';
import { CredentialCache, type CredentialCheck, storedCredential } from './credentials.ts';
import { TokenBuckets } from './rate-limit.ts';
import { type BodyLimits, readBody } from './read-body.ts';
import type { RoundState } from './round-machine.ts';
import * as machine from './round-machine.ts';
import { maxUpdateBytes, type TaskSpec } from './task-spec.ts';
import { validateUpdate } from './update-validation.ts';

/** Checkpoint the running sum after this many accepted updates. */
export const CHECKPOINT_EVERY = 16;
/** How long the first accept of a batch waits for others to join its commit, when other uploads are under way. */
const GROUP_COMMIT_DELAY_MS = 25;
/** SQLite values must stay under 2 MB; weights are stored in chunks of this many bytes. */
const CHUNK_BYTES = 1024 * 1024;
/**
 * Stored updates are chunked finer (64K parameters, 256 KiB): robust strategies read one chunk of
 * every update at a time, so their memory is k × 256 KiB (25 MiB for 100 updates).
 */
export const UPDATE_CHUNK_FLOATS = 65_536;
/** Keep ledger rows of this many past rounds, so a retry whose ack was lost still gets it. */
const LEDGER_ROUNDS_KEPT = 2;

export interface InitArgs {
  spec: TaskSpec;
  plan: TrainingPlan;
  version0: { key: string };
}

/** A refusal with its stable code (and, for 429s, when to retry). */
export type Failure = { ok: false; code: ErrorCode; message: string; retryAfterSeconds?: number };

export type SubmitResult = { ok: true; ack: UpdateAck; replay: boolean } | Failure;

/** What the round state says of an upload (see `decide`). */
type Decision =
  | { kind: 'refuse'; result: Failure }
  | { kind: 'past_round' }
  | { kind: 'read_body' }
  | { kind: 'replay'; ack: UpdateAck; durable: Promise<void> | null }
  | { kind: 'accept'; staleness: number };

function refused(result: Failure): Decision {
  return { kind: 'refuse', result };
}

/** Update bodies admitted at once per task (each object has its own budget, so no task can starve another). */
const UPLOAD_BUDGET_BYTES = 64 * 1024 * 1024;
/** An admission: a ticket for the body, or the refusal. */
export type Admission = { ok: true; ticket: string } | Failure;

export interface LiveRound {
  round: number;
  status: machine.RoundStatus;
  baseVersion: number;
  openedAt: number;
  deadlineAt: number | null;
  assigned: number;
  accepted: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
}

interface Meta {
  spec: TaskSpec;
  plan: TrainingPlan;
  state: RoundState;
  /** Latest published version and its R2 key: the next round's base. */
  latestVersion: number;
  latestKey: string;
}

interface Checkpoint {
  round: number;
  seq: number;
  totalWeight: number;
  count: number;
  chunks: number;
}

/** Fault injection for tests: throw after the named publish step, as a crash there would. */
export type PublishFault = 'after_blob' | 'after_d1' | null;

/** What ingest hands back for an accepted update: the commit to wait for before acknowledging. */
interface AcceptedPending {
  durable: Promise<void>;
  ack: UpdateAck;
  closing: boolean;
}

/** An accepted update waiting for the group commit that makes it durable. */
interface PendingAccept {
  ack: UpdateAck;
  /** The round (buffer) whose sum it joins: the ack's round, except for stale updates of asynchronous tasks. */
  generation: number;
  /** Its weight in the sum: the example count, times (1 + staleness)^−a for asynchronous tasks. */
  weight: number;
  metrics: Record<string, number> | null;
  delta: Float32Array;
  durable: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** The answer to a client's credentials: one of the credential checks, or its rate limit. */
export type ClientAuth = CredentialCheck | { ok: false; code: 'rate_limited'; message: string; retryAfterSeconds: number };

export class TaskAggregator extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly credentials: CredentialCache;
  private readonly requestBuckets: TokenBuckets;
  /** Bytes of update bodies admitted at once; the next wait (body unread) up to 5 s, then 429. */
  private readonly uploadBudget = new ByteBudget({ budgetBytes: UPLOAD_BUDGET_BYTES, maxWaitMs: 5_000, maxWaiters: 1_000 });
  /** Clients with an upload admitted or being received: one at a time each. */
  private readonly uploading = new Set<string>();
  /** Admitted uploads whose body has not arrived yet, by ticket. */
  private readonly leases = new Map<string, { clientId: string; end: () => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly bodyLimits: Omit<BodyLimits, 'cap' | 'declared'>;
  private meta: Meta | null = null;
  private acc: RunningSum | null = null;
  private accRound = -1;
  /** Accepted (summed in memory) but not yet committed; acknowledged when their commit lands. */
  private pending: PendingAccept[] = [];
  private flushScheduled = false;
  /** Submits between arrival and acceptance (reading, hashing, validating): the company a commit may wait for. */
  private ingesting = 0;
  private lastBatchSize = 0;
  /** Set by tests only. */
  publishFault: PublishFault = null;
  /** Set by tests only: the next group commit of accepted updates fails inside its transaction. */
  commitFault = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.credentials = new CredentialCache({ load: async (clientId) => storedCredential(await getClientCredential(database(env.DB), clientId)) });
    const idleMs = envNumber(env.UPLOAD_IDLE_SECONDS, 10) * 1000;
    this.bodyLimits = { idleMs, graceMs: idleMs, minBytesPerSecond: envNumber(env.UPLOAD_MIN_BYTES_PER_SECOND, 16 * 1024) };
    this.requestBuckets = new TokenBuckets({
      capacity: envNumber(env.CLIENT_RATE_BURST, 60),
      refillPerSecond: envNumber(env.CLIENT_RATE_PER_SECOND, 2),
      maxKeys: 20_000,
    });
    ctx.blockConcurrencyWhile(async () => {
      this.migrate();
      this.meta = this.readMeta();
    });
  }

  private migrate(): void {
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS assignments (round INTEGER NOT NULL, client_id TEXT NOT NULL, assigned_at INTEGER NOT NULL, PRIMARY KEY (round, client_id));
      CREATE TABLE IF NOT EXISTS ledger (
        round INTEGER NOT NULL, client_id TEXT NOT NULL, seq INTEGER NOT NULL, body_sha256 TEXT NOT NULL,
        num_examples INTEGER NOT NULL, metrics TEXT, ack TEXT NOT NULL, accepted_at INTEGER NOT NULL,
        PRIMARY KEY (round, client_id));
      CREATE UNIQUE INDEX IF NOT EXISTS ledger_seq ON ledger (round, seq);
      CREATE TABLE IF NOT EXISTS update_chunks (round INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (round, seq, idx));
      CREATE TABLE IF NOT EXISTS checkpoint_chunks (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS rejections (round INTEGER NOT NULL, code TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (round, code));
      CREATE TABLE IF NOT EXISTS strategy_chunks (name TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (name, idx));
    `);
    // Added for asynchronous tasks: the round a client was assigned (the key its retries use) and the update's weight.
    const columns = new Set(
      this.sql
        .exec<{ name: string }>(`PRAGMA table_info(ledger)`)
        .toArray()
        .map((c) => c.name),
    );
    if (!columns.has('assigned_round')) this.sql.exec(`ALTER TABLE ledger ADD COLUMN assigned_round INTEGER`);
    if (!columns.has('weight')) this.sql.exec(`ALTER TABLE ledger ADD COLUMN weight REAL`);
    this.sql.exec(`CREATE INDEX IF NOT EXISTS ledger_assigned ON ledger (assigned_round, client_id)`);
  }

  private readMeta(): Meta | null {
    const row = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'task'`).toArray()[0];
    return row ? (JSON.parse(row.value) as Meta) : null;
  }

  /**
   * Persists `this.meta` together with every pending accept (ledger rows, and their Δ or a
   * checkpoint of the sum) and whatever `extra` writes, in one transaction; then acknowledges the
   * pending accepts. Every write of the task's state goes through here, so the stored round state
   * never counts an update whose ledger row is not stored with it.
   */
  private commit(extra?: () => void): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) this.lastBatchSize = batch.length;
    try {
      this.ctx.storage.transactionSync(() => {
        if (batch.length > 0) this.persistAccepts(batch);
        extra?.();
        this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('task', ?)`, JSON.stringify(this.meta));
      });
    } catch (e) {
      // Nothing of this batch is durable: forget the in-memory progress, rebuild from storage.
      this.meta = this.readMeta();
      this.acc = null;
      for (const p of batch) p.reject(e);
      throw e;
    }
    for (const p of batch) p.resolve();
  }

  private persistAccepts(batch: PendingAccept[]): void {
    if (this.commitFault) {
      this.commitFault = false;
      throw new Error('injected fault in the group commit');
    }
    for (const { ack, metrics, generation, weight } of batch) {
      this.sql.exec(
        `INSERT INTO ledger (round, client_id, seq, body_sha256, num_examples, metrics, ack, accepted_at, assigned_round, weight) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        generation,
        ack.clientId,
        ack.seq,
        ack.bodySha256,
        ack.numExamples,
        metrics ? JSON.stringify(metrics) : null,
        JSON.stringify(ack),
        ack.acceptedAt,
        ack.round,
        weight,
      );
    }
    const round = batch[0]!.generation;
    const storeUpdate = ({ ack, delta }: PendingAccept) =>
      forEachChunk(
        new Uint8Array(delta.buffer, delta.byteOffset, delta.byteLength),
        (chunk, idx) => this.sql.exec(`INSERT INTO update_chunks (round, seq, idx, data) VALUES (?, ?, ?, ?)`, round, ack.seq, idx, chunk),
        UPDATE_CHUNK_FLOATS * 4,
      );
    // Robust strategies need every update at the close: store them all, never a sum.
    if (isRobust(this.strategy())) {
      batch.forEach(storeUpdate);
      return;
    }
    const stored = this.sql.exec<{ n: number }>(`SELECT count(DISTINCT seq) AS n FROM update_chunks WHERE round = ?`, round).one().n;
    if (batch.length === 1 && stored + 1 < CHECKPOINT_EVERY) {
      storeUpdate(batch[0]!);
    } else {
      this.writeCheckpoint(round, batch[batch.length - 1]!.ack.seq, this.acc!);
    }
  }

  /** Commits pending accepts soon, batching those that arrive meanwhile. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setTimeout(() => {
      this.flushScheduled = false;
      this.flushNow();
    }, GROUP_COMMIT_DELAY_MS);
  }

  private flushNow(): void {
    if (this.pending.length === 0) return;
    try {
      this.commit();
    } catch (e) {
      console.error('group commit failed; its updates were not acknowledged:', e);
    }
  }

  /** Creates the task's first round on version 0. Idempotent: a second call changes nothing. */
  async init(args: InitArgs): Promise<void> {
    if (this.meta) return;
    this.meta = { spec: args.spec, plan: args.plan, state: machine.openRound(1, 0, Date.now()), latestVersion: 0, latestKey: args.version0.key };
    this.commit();
  }

  /** Pace steering: an assignment to the open round, or when to come back. */
  async checkIn(clientId: string): Promise<CheckInResponse | { error: ErrorCode }> {
    if (!this.meta) return { error: 'task_not_found' };
    await this.recoverIfStuck();
    // No await from here to the commit: requests interleave only at awaits, so the state read here is current.
    const meta = this.meta;
    const { state, spec } = meta;
    const plan: TrainingPlan = { ...meta.plan, proximalMu: meta.plan.proximalMu ?? 0 }; // tasks from before FedProx lack μ
    const taskId = spec.taskId;
    // An update in this round already counts for this client (in asynchronous tasks possibly a stale
    // one folded into this buffer): one update per client per round.
    const submitted = this.hasUpdateIn(state.round, clientId);
    if (this.isAssigned(state.round, clientId)) {
      if (submitted || state.status !== 'open') {
        const wait = state.status === 'open' && state.deadlineAt !== null ? state.deadlineAt - Date.now() : machine.CLOSING_RETRY_MS;
        return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(wait), reason: submitted ? 'already_submitted' : 'round_closing' };
      }
      return { status: 'assigned', taskId, round: state.round, baseVersion: state.baseVersion, deadlineAt: state.deadlineAt ?? 0, plan };
    }
    if (submitted) return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(machine.CLOSING_RETRY_MS), reason: 'already_submitted' };
    const now = Date.now();
    const decision = isAsync(this.strategy()) ? machine.assignAsync(state) : machine.assign(state, spec.rules, now);
    if (decision.kind === 'wait') return { status: 'retry_later', taskId, retryAfterSeconds: retrySeconds(decision.retryAfterMs), reason: decision.reason };
    const next = decision.state;
    this.meta = { ...meta, state: next };
    this.commit(() => this.sql.exec(`INSERT INTO assignments (round, client_id, assigned_at) VALUES (?, ?, ?)`, next.round, clientId, now));
    if (state.deadlineAt === null) await this.scheduleAlarm();
    return { status: 'assigned', taskId, round: next.round, baseVersion: next.baseVersion, deadlineAt: next.deadlineAt ?? 0, plan };
  }

  /**
   * Admits one upload before its body is sent here. Everything that does not need the body is
   * checked first (unknown, closed or abandoned round, a client not assigned: refused at once and
   * never counted in the round's statistics; a declared length over the cap); then the upload
   * waits for room in this task's byte budget, one upload per client at a time. Admission is a
   * separate call so that a waiting body stays unread at the edge, held back by TCP, instead of
   * streaming into this object's memory while it waits. The ticket must be used within the idle
   * limit (the longest an upload may pause), or its room and the client's slot are given back.
   */
  async admitUpload(clientId: string, round: number, declaredLength: number | null): Promise<Admission> {
    if (!this.meta) return fail('task_not_found', 'no such task');
    await this.recoverIfStuck();
    const cap = maxUpdateBytes(this.meta.spec);
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
    const release = await this.uploadBudget.acquire(declaredLength ?? cap);
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
    this.leases.set(ticket, { clientId, end, timer: setTimeout(end, this.bodyLimits.idleMs) });
    return { ok: true, ticket };
  }

  /**
   * Ingests the body of an admitted upload. Acknowledged only after the Δ, the ledger row and the
   * new round state are committed together; any rejection leaves the sum, ledger and versions
   * untouched.
   */
  async submit(ticket: string, clientId: string, round: number, stream: ReadableStream<Uint8Array>, declaredLength: number | null): Promise<SubmitResult> {
    const lease = this.leases.get(ticket);
    if (!lease || lease.clientId !== clientId || !this.meta) {
      await stream.cancel().catch(() => {});
      return fail('upload_timeout', `the body did not arrive within ${this.bodyLimits.idleMs / 1000} s of its admission; retry`);
    }
    clearTimeout(lease.timer);
    this.leases.delete(ticket);
    try {
      this.ingesting++;
      let out: SubmitResult | AcceptedPending;
      try {
        out = await this.ingest(clientId, round, stream, { ...this.bodyLimits, cap: maxUpdateBytes(this.meta.spec), declared: declaredLength });
      } finally {
        this.ingesting--;
      }
      // Under light load (the last commit held one update, no other upload under way) waiting for
      // company only adds latency: commit now. Under load, the timer gathers a batch.
      if (this.ingesting === 0 && this.lastBatchSize <= 1 && this.pending.length > 0) this.flushNow();
      if (!('durable' in out)) return out;
      await out.durable; // the acknowledgement waits for the commit
      if (out.closing) await this.scheduleAlarm();
      return { ok: true, ack: out.ack, replay: false };
    } finally {
      lease.end();
    }
  }

  private async ingest(clientId: string, round: number, stream: ReadableStream<Uint8Array>, limits: BodyLimits): Promise<SubmitResult | AcceptedPending> {
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
    await this.recoverIfStuck();
    const bodySha256 = await sha256Hex(body);
    // No await from here to the commit: concurrent submits interleave only at awaits, so the
    // round state read here is current and sequence numbers cannot collide.
    const decision = this.decide(clientId, round, bodySha256);
    if (decision.kind === 'read_body') throw new Error('decide() asked for the body it was given');
    if (decision.kind === 'refuse') return decision.result;
    if (decision.kind === 'past_round') return this.pastRound(round); // a refusal: its await changes nothing we accept
    if (decision.kind === 'replay') {
      if (decision.durable) await decision.durable;
      return { ok: true, ack: decision.ack, replay: true };
    }
    const meta = this.meta!;
    const { state, spec } = meta;
    const strategy = this.strategy();
    const { staleness } = decision;
    // Each round publishes one version in asynchronous tasks, so round r was assigned version baseVersion − staleness.
    const valid = validateUpdate(body, spec, state.baseVersion - staleness, (d) => firstNonFinite(d, accumulateWasm));
    if (!valid.ok) return this.reject(state.round, valid.code, valid.message);

    const now = Date.now();
    const seq = state.accepted + 1;
    const ack: UpdateAck = { taskId: spec.taskId, round, clientId, seq, numExamples: valid.numExamples, bodySha256, acceptedAt: now };
    const next = machine.accept(state, spec.rules);
    // Strategy transforms (norm bounding) apply before the update is summed and stored.
    const delta = strategy.prepareUpdate?.(valid.delta) ?? valid.delta;
    const weight = isAsync(strategy) ? valid.numExamples * stalenessWeight(staleness, strategy.async.stalenessExponent) : valid.numExamples;
    // The sum must be current (rebuilt from storage if needed) before this update joins it.
    if (!isRobust(strategy)) this.accumulator().add(delta, weight);
    this.meta = { ...meta, state: next };
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const durable = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    durable.catch(() => {}); // a failed commit is reported by the await below, not as unhandled
    this.pending.push({ ack, generation: state.round, weight, metrics: valid.metrics, delta, durable, resolve, reject });
    this.scheduleFlush();
    return { durable, ack, closing: next.status === 'closing' };
  }

  /**
   * What the round state says of an upload from `clientId` for `round`: refuse it (its code), a
   * past round (closed or abandoned: D1 tells which), a retry of an accepted update (with the body's
   * hash: replay its acknowledgement, or a conflict), or go on. Without the hash (before the body is
   * read) a possible retry is let through to be read. Synchronous: no request interleaves with it.
   */
  private decide(clientId: string, round: number, bodySha256: string | null): Decision {
    const { state } = this.meta!;
    if (round > state.round || round < 1) return refused(fail('round_not_found', `round ${round} does not exist (the current round is ${state.round})`));
    // Checked before the ledger: an abandoned round's ledger rows name updates that were discarded.
    if (round === state.round && state.status === 'abandoned') return refused(fail('round_abandoned', abandonedMessage(round)));
    // Two indexed lookups (rows from before assigned_round existed have it null), not a scan of the round's ledger.
    const prior = this.sql
      .exec<{ body_sha256: string; ack: string }>(
        `SELECT body_sha256, ack FROM ledger WHERE (assigned_round = ? AND client_id = ?) OR (assigned_round IS NULL AND round = ? AND client_id = ?)`,
        round,
        clientId,
        round,
        clientId,
      )
      .toArray()[0];
    const inFlight = this.pending.find((p) => p.ack.round === round && p.ack.clientId === clientId);
    if (prior || inFlight) {
      if (bodySha256 === null) return { kind: 'read_body' };
      if ((prior?.body_sha256 ?? inFlight!.ack.bodySha256) !== bodySha256) {
        return refused(this.reject(round, 'duplicate_conflict', `an update from this client for round ${round} was already accepted with different content`));
      }
      return { kind: 'replay', ack: inFlight?.ack ?? (JSON.parse(prior!.ack) as UpdateAck), durable: inFlight?.durable ?? null };
    }
    // Asynchronous tasks take updates assigned in earlier rounds (buffers) into the current one, up to the staleness bound.
    const strategy = this.strategy();
    const staleness = state.round - round;
    if (isAsync(strategy) && staleness > strategy.async.maxStaleness) {
      return refused(
        this.reject(state.round, 'stale_update', `the update's base is ${staleness} versions old; this task accepts at most ${strategy.async.maxStaleness}`),
      );
    }
    if (staleness > 0 && !isAsync(strategy)) return { kind: 'past_round' };
    if (state.status !== 'open') return refused(fail('round_closed', `round ${round} is ${state.status}; it accepts no more updates`));
    const inBuffer = this.hasUpdateIn(state.round, clientId) || this.pending.some((p) => p.generation === state.round && p.ack.clientId === clientId);
    if (inBuffer)
      return refused(
        this.reject(state.round, 'duplicate_conflict', `this client already has an update in round ${state.round}; one update per client per round`),
      );
    // Not counted in the round's rejections: anyone with a token could inflate them.
    if (!this.isAssigned(round, clientId)) return refused(fail('not_assigned', `this client was not assigned to round ${round}; check in first`));
    return bodySha256 === null ? { kind: 'read_body' } : { kind: 'accept', staleness };
  }

  /** The refusal for an update to a finished round of a synchronous task. */
  private async pastRound(round: number): Promise<Failure> {
    const abandoned = (await roundStatusInD1(this.env, this.meta!.spec.taskId, round)) === 'abandoned';
    return abandoned ? fail('round_abandoned', abandonedMessage(round)) : fail('round_closed', `round ${round} is over; it accepts no more updates`);
  }

  /**
   * Authenticates one call of a client of this task (every client route asks here, whichever
   * isolate serves it) and applies the per-client request rate.
   */
  async authenticate(taskId: string, clientId: string, secretHash: string): Promise<ClientAuth> {
    const now = Date.now();
    const check = await this.credentials.check(taskId, clientId, secretHash, now);
    if (!check.ok) return check;
    const waitMs = this.requestBuckets.take(clientId, now);
    if (waitMs > 0)
      return {
        ok: false,
        code: 'rate_limited',
        message: `too many requests from this client (burst ${this.requestBuckets.options.capacity}, then ${this.requestBuckets.options.refillPerSecond}/s)`,
        retryAfterSeconds: Math.ceil(waitMs / 1000),
      };
    return check;
  }

  /** Drops a client's cached credentials after D1 changed them (revocation, rotation): effective at the next call. */
  async forgetClient(clientId: string): Promise<void> {
    this.credentials.forget(clientId);
  }

  /** Whether the client holds an assignment (the live round's, or a recent buffer's in asynchronous tasks). */
  async isAssignedNow(clientId: string): Promise<boolean> {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM assignments WHERE client_id = ?`, clientId).one().n > 0;
  }

  async status(): Promise<LiveRound | null> {
    const meta = this.meta;
    if (!meta) return null;
    const s = meta.state;
    const rejectedByCode = this.rejectionsOf(s.round);
    const rejected = Object.values(rejectedByCode).reduce((a, b) => a + b, 0);
    return {
      round: s.round,
      status: s.status,
      baseVersion: s.baseVersion,
      openedAt: s.openedAt,
      deadlineAt: s.deadlineAt,
      assigned: s.assigned,
      accepted: s.accepted,
      rejected,
      rejectedByCode,
    };
  }

  /** Deadline or close: applies the deadline, then publishes or abandons. Safe to run any number of times. */
  override async alarm(): Promise<void> {
    if (!this.meta) return;
    if (this.pending.length > 0) this.commit(); // the round's result counts exactly what is durable
    const meta = this.meta;
    const now = Date.now();
    const state = machine.applyDeadline(meta.state, meta.spec.rules, now);
    if (state !== meta.state) {
      this.meta = { ...meta, state };
      this.commit();
    }
    if (state.status === 'closing') await this.publish();
    else if (state.status === 'abandoned') await this.abandon();
    await this.scheduleAlarm();
  }

  private async publish(): Promise<void> {
    const meta = this.meta!;
    const { spec, state } = meta;
    const version = meta.latestVersion + 1;
    const baseObject = await this.env.MODELS.get(meta.latestKey);
    if (!baseObject) throw new Error(`base weights ${meta.latestKey} missing from R2`);
    const base = concatTensors(decodeTensors(await baseObject.arrayBuffer()).tensors);
    const strategy = this.strategy();
    let next: Float32Array = new Float32Array(spec.numParams);
    let strategyState: StrategyState | null = null;
    if (isRobust(strategy)) {
      const robustDelta = new Float32Array(spec.numParams);
      strategy.aggregateByRanges(
        (start, end) => this.readUpdateRange(state.round, start, end),
        spec.numParams,
        state.accepted,
        UPDATE_CHUNK_FLOATS,
        robustDelta,
      );
      next = strategy.apply(base, robustDelta, strategy.initialState(0)).next;
    } else if (strategy.name === 'fedavg' || strategy.name === 'fedprox') {
      this.accumulator().finalizeInto(base, next); // base + Σ/W in float64, rounded once
    } else {
      const acc = this.accumulator(); // robust strategies keep no running sum: only these branches need it
      const meanDelta = new Float32Array(spec.numParams);
      acc.finalizeInto(new Float32Array(spec.numParams), meanDelta);
      if (isAsync(strategy)) {
        // FedBuff: Σ nᵢ(1+sᵢ)^−a Δᵢ / Σ nᵢ — staleness shrinks the step instead of being normalized away.
        const examples = this.ledgerOf(state.round).reduce((a, r) => a + r.num_examples, 0);
        const scale = acc.totalWeight / examples;
        for (let i = 0; i < meanDelta.length; i++) meanDelta[i] = meanDelta[i]! * scale;
      }
      ({ next, state: strategyState } = strategy.apply(base, meanDelta, this.readStrategyState() ?? strategy.initialState(spec.numParams)));
    }

    const blob = await putWeights(this.env.MODELS, spec.taskId, version, spec.tensors, next);
    if (this.publishFault === 'after_blob') throw new Error('injected fault after the R2 write');

    const ledger = this.ledgerOf(state.round);
    const now = Date.now();
    const numExamples = ledger.reduce((a, r) => a + r.num_examples, 0);
    const metrics = weightedMetrics(ledger);
    const participants: NewParticipant[] = ledger.map((r) => ({
      taskId: spec.taskId,
      round: state.round,
      clientId: r.client_id,
      numExamples: r.num_examples,
      metrics: r.metrics ? JSON.parse(r.metrics) : null,
      acceptedAt: new Date(r.accepted_at),
    }));
    const rejectedByCode = this.rejectionsOf(state.round);
    await recordRound(
      database(this.env.DB),
      {
        taskId: spec.taskId,
        round: state.round,
        status: 'closed',
        baseVersion: state.baseVersion,
        resultVersion: version,
        assigned: state.assigned,
        accepted: state.accepted,
        rejected: sum(Object.values(rejectedByCode)),
        rejectedByCode,
        numExamples,
        metrics,
        openedAt: new Date(state.openedAt),
        closedAt: new Date(now),
        closeReason: state.closeReason ?? 'goal_reached',
      },
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
        createdAt: new Date(now),
      },
    );
    if (this.publishFault === 'after_d1') throw new Error('injected fault after the D1 write');

    const current = this.meta!;
    if (current.state.round !== state.round || current.state.status !== 'closing') throw new Error(`round ${state.round} changed while it was being published`);
    const closed = machine.published(current.state, now);
    this.meta = { ...current, latestVersion: version, latestKey: blob.key, state: machine.openRound(closed.round + 1, version, now) };
    this.commit(() => {
      this.clearRound(state.round);
      // The server optimizer's state moves with the version it produced, in the same transaction.
      if (strategyState) this.writeStrategyState(strategyState);
    });
    this.acc = null;
  }

  private async abandon(): Promise<void> {
    const meta = this.meta!;
    const { spec, state } = meta;
    const now = Date.now();
    const rejectedByCode = this.rejectionsOf(state.round);
    const ledger = this.ledgerOf(state.round);
    await recordRound(
      database(this.env.DB),
      {
        taskId: spec.taskId,
        round: state.round,
        status: 'abandoned',
        baseVersion: state.baseVersion,
        resultVersion: null,
        assigned: state.assigned,
        accepted: state.accepted,
        rejected: sum(Object.values(rejectedByCode)),
        rejectedByCode,
        numExamples: ledger.reduce((a, r) => a + r.num_examples, 0),
        metrics: weightedMetrics(ledger),
        openedAt: new Date(state.openedAt),
        closedAt: new Date(state.closedAt ?? now),
        closeReason: state.closeReason ?? 'below_minimum',
      },
      [],
      null,
    );
    this.meta = { ...this.meta!, state: machine.openRound(state.round + 1, state.baseVersion, now) };
    this.commit(() => {
      this.clearRound(state.round);
      // Its updates were discarded: no retry may be answered with their acknowledgements.
      this.sql.exec(`DELETE FROM ledger WHERE round = ?`, state.round);
    });
    this.acc = null;
  }

  private isAssigned(round: number, clientId: string): boolean {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM assignments WHERE round = ? AND client_id = ?`, round, clientId).one().n > 0;
  }

  /** Whether a committed update of this client counts in this round (whatever round it was assigned). */
  private hasUpdateIn(round: number, clientId: string): boolean {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ledger WHERE round = ? AND client_id = ?`, round, clientId).one().n > 0;
  }

  private strategyInstance: Strategy | null = null;

  private strategy(): Strategy {
    this.strategyInstance ??= createStrategy(this.meta!.spec.strategy ?? { name: 'fedavg' });
    return this.strategyInstance;
  }

  /** Parameters [start, end) of every stored update of the round, in acceptance order (one chunk: start is chunk-aligned). */
  private readUpdateRange(round: number, start: number, end: number): Float32Array[] {
    const idx = start / UPDATE_CHUNK_FLOATS;
    if (!Number.isInteger(idx) || end - start > UPDATE_CHUNK_FLOATS) throw new Error(`range [${start}, ${end}) is not one stored chunk`);
    const rows = this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM update_chunks WHERE round = ? AND idx = ? ORDER BY seq`, round, idx).toArray();
    return rows.map(({ data }) => {
      if (data.byteLength !== (end - start) * 4) throw new Error(`stored chunk ${round}/${idx} is ${data.byteLength} bytes, expected ${(end - start) * 4}`);
      return new Float32Array(data);
    });
  }

  /** The server optimizer's state (momentum, moments), or null before the first round. */
  private readStrategyState(): StrategyState | null {
    const row = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'strategy_state'`).toArray()[0];
    if (!row) return null;
    const { step, vectors } = JSON.parse(row.value) as { step: number; vectors: string[] };
    const n = this.meta!.spec.numParams;
    const out: StrategyState = { step, vectors: {} };
    for (const name of vectors) {
      const bytes = new Uint8Array(n * 4);
      let off = 0;
      for (const { data } of this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM strategy_chunks WHERE name = ? ORDER BY idx`, name)) {
        bytes.set(new Uint8Array(data), off);
        off += data.byteLength;
      }
      if (off !== bytes.byteLength) throw new Error(`strategy vector ${name} is ${off} bytes, expected ${bytes.byteLength}`);
      out.vectors[name] = new Float32Array(bytes.buffer);
    }
    return out;
  }

  /** Inside a transaction: replaces the stored strategy state. */
  private writeStrategyState(state: StrategyState): void {
    this.sql.exec(`DELETE FROM strategy_chunks`);
    for (const [name, v] of Object.entries(state.vectors)) {
      forEachChunk(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), (chunk, idx) =>
        this.sql.exec(`INSERT INTO strategy_chunks (name, idx, data) VALUES (?, ?, ?)`, name, idx, chunk),
      );
    }
    this.sql.exec(
      `INSERT OR REPLACE INTO meta (key, value) VALUES ('strategy_state', ?)`,
      JSON.stringify({ step: state.step, vectors: Object.keys(state.vectors) }),
    );
  }

  /** Drops a finished round's bulky data and prunes old ledger rows (bounded storage). */
  private clearRound(round: number): void {
    this.sql.exec(`DELETE FROM update_chunks WHERE round <= ?`, round);
    this.sql.exec(`DELETE FROM checkpoint_chunks`);
    this.sql.exec(`DELETE FROM meta WHERE key = 'checkpoint'`);
    // Asynchronous tasks still take updates assigned up to maxStaleness rounds ago: keep those assignments and ledger rows.
    const strategy = this.strategy();
    const keep = isAsync(strategy) ? strategy.async.maxStaleness : 0;
    this.sql.exec(`DELETE FROM assignments WHERE round <= ?`, round - keep);
    this.sql.exec(`DELETE FROM ledger WHERE round <= ?`, round - Math.max(LEDGER_ROUNDS_KEPT, keep + 1));
    this.sql.exec(`DELETE FROM rejections WHERE round <= ?`, round);
  }

  /** Sets the alarm the state machine asks for, if it is not already set to that time. */
  private async scheduleAlarm(): Promise<void> {
    const meta = this.meta;
    if (!meta) return;
    const at = machine.nextAlarmAt(meta.state, Date.now());
    const current = await this.ctx.storage.getAlarm();
    if (at === null) {
      if (current !== null) await this.ctx.storage.deleteAlarm();
    } else if (current !== at) {
      await this.ctx.storage.setAlarm(at);
    }
  }

  /** A round left closing or abandoned with no alarm (alarm storage lost) is resumed on the next call. */
  private async recoverIfStuck(): Promise<void> {
    const s = this.meta?.state;
    if (s && (s.status === 'closing' || s.status === 'abandoned') && (await this.ctx.storage.getAlarm()) === null) await this.scheduleAlarm();
  }

  /** The running sum of the current round, rebuilt from the checkpoint and stored updates when needed. */
  private accumulator(): RunningSum {
    const meta = this.meta!;
    const round = meta.state.round;
    if (this.acc && this.accRound === round) return this.acc;
    const acc = this.acc ?? createRunningSum(meta.spec.numParams, { wasm: accumulateWasm });
    acc.reset();
    let fromSeq = 0;
    const cpRow = this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'checkpoint'`).toArray()[0];
    const cp = cpRow ? (JSON.parse(cpRow.value) as Checkpoint) : null;
    if (cp && cp.round === round) {
      const sumBytes = new Uint8Array(meta.spec.numParams * 8);
      let off = 0;
      for (const { data } of this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM checkpoint_chunks ORDER BY idx`)) {
        sumBytes.set(new Uint8Array(data), off);
        off += data.byteLength;
      }
      acc.load(new Float64Array(sumBytes.buffer), cp.totalWeight, cp.count);
      fromSeq = cp.seq;
    }
    const replay = this.sql
      .exec<{ seq: number; num_examples: number; weight: number | null }>(
        `SELECT seq, num_examples, weight FROM ledger WHERE round = ? AND seq > ? ORDER BY seq`,
        round,
        fromSeq,
      )
      .toArray();
    const delta = new Float32Array(meta.spec.numParams);
    const deltaBytes = new Uint8Array(delta.buffer);
    for (const { seq, num_examples, weight } of replay) {
      let off = 0;
      for (const { data } of this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM update_chunks WHERE round = ? AND seq = ? ORDER BY idx`, round, seq)) {
        deltaBytes.set(new Uint8Array(data), off);
        off += data.byteLength;
      }
      if (off !== deltaBytes.byteLength) throw new Error(`stored update ${round}/${seq} is ${off} bytes, expected ${deltaBytes.byteLength}`);
      acc.add(delta, weight ?? num_examples);
    }
    this.acc = acc;
    this.accRound = round;
    return acc;
  }

  /** Inside a transaction: replaces the checkpoint with the current sum (covering updates ≤ seq). */
  private writeCheckpoint(round: number, seq: number, acc: RunningSum): void {
    const s = acc.sum();
    const bytes = new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
    this.sql.exec(`DELETE FROM checkpoint_chunks`);
    const chunks = forEachChunk(bytes, (chunk, idx) => this.sql.exec(`INSERT INTO checkpoint_chunks (idx, data) VALUES (?, ?)`, idx, chunk));
    const cp: Checkpoint = { round, seq, totalWeight: acc.totalWeight, count: acc.count, chunks };
    this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('checkpoint', ?)`, JSON.stringify(cp));
    this.sql.exec(`DELETE FROM update_chunks WHERE round = ? AND seq <= ?`, round, seq);
  }

  private reject(round: number, code: ErrorCode, message: string): Failure {
    this.countRejection(round, code);
    return fail(code, message);
  }

  private countRejection(round: number, code: ErrorCode): void {
    if (round !== this.meta?.state.round) return;
    this.sql.exec(`INSERT INTO rejections (round, code, n) VALUES (?, ?, 1) ON CONFLICT (round, code) DO UPDATE SET n = n + 1`, round, code);
  }

  private rejectionsOf(round: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.sql.exec<{ code: string; n: number }>(`SELECT code, n FROM rejections WHERE round = ?`, round)) out[r.code] = r.n;
    return out;
  }

  private ledgerOf(round: number) {
    return this.sql
      .exec<{ client_id: string; num_examples: number; metrics: string | null; accepted_at: number }>(
        `SELECT client_id, num_examples, metrics, accepted_at FROM ledger WHERE round = ? ORDER BY seq`,
        round,
      )
      .toArray();
  }
}

/** Calls `write` with ≤ 1 MiB copies of `bytes` (SQLite values are limited to 2 MB); returns the chunk count. */
function forEachChunk(bytes: Uint8Array, write: (chunk: ArrayBuffer, idx: number) => void, chunkBytes = CHUNK_BYTES): number {
  let idx = 0;
  for (let off = 0; off < bytes.byteLength; off += chunkBytes, idx++) {
    write(bytes.slice(off, Math.min(off + chunkBytes, bytes.byteLength)).buffer, idx);
  }
  return idx;
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

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** A numeric `vars` setting, or its default when unset or not a positive number. */
function envNumber(raw: string | undefined, fallback: number): number {
  const n = Number(raw);
  return raw !== undefined && raw !== '' && Number.isFinite(n) && n > 0 ? n : fallback;
}

function abandonedMessage(round: number): string {
  return `round ${round} was abandoned at its deadline with fewer updates than its minimum: its updates were discarded; check in for the next round`;
}

/** A past round's outcome, from its D1 row (written before the next round opens). */
async function roundStatusInD1(env: Env, taskId: string, round: number): Promise<'closed' | 'abandoned' | null> {
  return (await getRound(database(env.DB), taskId, round))?.status ?? null;
}

function retrySeconds(ms: number): number {
  return Math.max(1, Math.min(machine.MAX_RETRY_MS / 1000, Math.ceil(ms / 1000)));
}

function fail(code: ErrorCode, message: string): Failure {
  return { ok: false, code, message };
}
