/**
 * @module An aggregator shard of a client-sharded round (shards.ts): a Durable Object named
 * `<task>/shard/<s>` that serves the clients hashed to it, with the master aggregator's code for
 * everything a client does (authentication and its rate limit, check-in, exactly-once uploads,
 * group commit, checkpoints, recovery after an eviction) over its own SQLite, ledger and partial sum.
 *
 * What differs from the master: the round comes from the master (`sync`, at most once a second
 * while idle, and once per block of assignment slots); the shard assigns only the slots it was
 * granted; its accepted count goes to the master at most every REPORT_MS (never on the ack's path);
 * it never closes its part of the round itself: the master seals it (`seal`), reads its partial sum
 * (`partialSum`) and tells it the next round (`advance`).
 */
import type { CheckInResponse } from '#protocol/messages.ts';
import type { ClientAuth } from './credentials.ts';
import * as lifecycle from './lifecycle.ts';
import { budgetExhausted } from './privacy.ts';
import { clearRound } from './publish.ts';
import * as machine from './round-machine.ts';
import { viewOf } from './sharded-close.ts';
import { REPORT_MS, type SealResult, type ShardView, shardOf } from './shards.ts';
import { TaskAggregator } from './task-aggregator.ts';
import { retrySeconds, type TaskState } from './task-spec.ts';
import { type Failure, fail, type SubmitResult } from './uploads.ts';

/** An idle shard asks the master for the round at most this often (ms), e.g. while it is being closed. */
const SYNC_IDLE_MS = 1_000;
/** A client a shard has no slot for comes back after this long (ms): slots unused elsewhere return within a report interval. */
const FULL_RETRY_MS = 1_000;

export class RoundShard extends TaskAggregator {
  private syncing: Promise<void> | null = null;
  private lastSyncAt = 0;

  /** Authenticates as the master does; the first client ever seen attaches the shard to its task. */
  override async authenticate(taskId: string, clientId: string, secretHash: string): Promise<ClientAuth> {
    const auth = await super.authenticate(taskId, clientId, secretHash);
    if (auth.ok && !this.task) await this.attach(taskId, clientId);
    return auth;
  }

  /** Copies the task's spec and plan from the master; which shard this is follows from the client's hash. */
  private async attach(taskId: string, clientId: string): Promise<void> {
    const config = await this.master(taskId).shardConfig();
    if (!config || this.task) return;
    this.task = {
      spec: config.spec,
      plan: config.plan,
      // Round 0 never exists: the first sync brings the master's round.
      state: { ...machine.openRound(0, 0, Date.now()), status: 'closed' },
      latestVersion: 0,
      latestKey: '',
      shard: { index: shardOf(clientId, config.spec.shards ?? 1), granted: 0, reported: 0, masterStatus: 'closed' },
    };
    this.commits.commit();
  }

  override async checkIn(clientId: string): Promise<CheckInResponse | Failure> {
    if (!this.task?.shard) return fail('task_not_found', 'no such task');
    if (this.stale()) await this.sync(false);
    let answer = this.tryAssign(clientId);
    if (answer === 'no_slots') {
      await this.sync(true);
      answer = this.tryAssign(clientId);
    }
    if (answer !== 'no_slots') return answer;
    // Every slot of the round is out, on this shard or others; theirs unused come back at their next
    // report, so the client is asked back soon.
    return { status: 'retry_later', taskId: this.task.spec.taskId, retryAfterSeconds: retrySeconds(FULL_RETRY_MS), reason: 'round_full' };
  }

  /** The check-in answer from what this shard knows now (no await), or `no_slots` when it must ask the master for more. */
  private tryAssign(clientId: string): CheckInResponse | Failure | 'no_slots' {
    const task = this.task!;
    const { state, spec } = task;
    const part = task.shard!;
    if (lifecycle.isStopped(task)) return lifecycle.stoppedFailure();
    if (task.privacy?.exhaustedAt != null) return budgetExhausted(task);
    const prior = this.priorAnswer(clientId);
    if (prior) return prior;
    if (lifecycle.isPaused(task)) return lifecycle.pausedAnswer(task);
    const now = Date.now();
    if (state.status !== 'open' || part.masterStatus !== 'open' || (state.deadlineAt !== null && now >= state.deadlineAt))
      return { status: 'retry_later', taskId: spec.taskId, retryAfterSeconds: retrySeconds(machine.CLOSING_RETRY_MS), reason: 'round_closing' };
    const central = spec.privacy?.mode === 'central' ? spec.privacy : null;
    if (central) {
      // Poisson sampling, drawn here once per client and round. The round's deadline clock starts at
      // its first draw anywhere: until the master has one, the shard asks it (a sync for slots starts it).
      if (state.deadlineAt === null) return 'no_slots';
      if (!this.drawSample(state.round, clientId, central.samplingRate))
        return {
          status: 'retry_later',
          taskId: spec.taskId,
          retryAfterSeconds: retrySeconds(state.deadlineAt - now + machine.CLOSING_RETRY_MS),
          reason: 'not_sampled',
        };
    }
    if (state.assigned >= part.granted) return 'no_slots';
    const next = { ...state, assigned: state.assigned + 1 };
    this.task = { ...task, state: next };
    this.commits.commit(() => this.ledger.assign(next.round, clientId, now));
    return this.assignment(next.round, next.baseVersion, next.deadlineAt);
  }

  /** Whether what the shard knows of the round may be out of date: it cannot assign, and it has not asked lately. */
  private stale(): boolean {
    const task = this.task!;
    const open = task.state.status === 'open' && task.shard!.masterStatus === 'open' && !lifecycle.isPaused(task);
    return !open && Date.now() - this.lastSyncAt >= SYNC_IDLE_MS;
  }

  /** Takes an update as the master does; then tells the master the new count (throttled, after the ack). */
  override async submit(ticket: string, clientId: string, round: number, stream: ReadableStream<Uint8Array>, declared: number | null): Promise<SubmitResult> {
    const result = await super.submit(ticket, clientId, round, stream, declared);
    if (result.ok && !result.replay) await this.reportSoon();
    return result;
  }

  /** Reports now if the last sync is older than REPORT_MS, else at the alarm that ends the interval. */
  private async reportSoon(): Promise<void> {
    const wait = this.lastSyncAt + REPORT_MS - Date.now();
    if (wait <= 0 && !this.syncing) {
      this.sync(false).catch(() => this.ctx.storage.setAlarm(Date.now() + REPORT_MS));
      return;
    }
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + Math.max(wait, 10));
  }

  /** The alarm sends a report the throttle held back (retried by the runtime if the master cannot be reached). */
  override async alarm(): Promise<void> {
    const task = this.task;
    if (task?.shard && task.state.status === 'open' && task.state.accepted > task.shard.reported) await this.sync(false);
  }

  /** No deadline of its own: the master's alarm closes the round. */
  protected override async recoverIfStuck(): Promise<void> {}

  /** One sync at a time; a caller that wanted slots and finds some after the one in flight does not ask again. */
  private async sync(wantsSlots: boolean): Promise<void> {
    while (this.syncing) await this.syncing;
    if (wantsSlots && this.task!.state.assigned < this.task!.shard!.granted) return;
    this.syncing = this.syncOnce(wantsSlots).finally(() => {
      this.syncing = null;
    });
    await this.syncing;
  }

  /**
   * One exchange with the master. The slots not used yet go back with it, given up here before the
   * await (no check-in can take them meanwhile), so the master can hand them to a shard that has
   * clients; the shard then holds its assignments plus the block it is granted.
   */
  private async syncOnce(wantsSlots: boolean): Promise<void> {
    const task = this.task!;
    const { round, accepted, assigned } = task.state;
    const part = task.shard!;
    if (part.granted > assigned) {
      this.task = { ...task, shard: { ...part, granted: assigned } };
      this.commits.commit();
    }
    const view = await this.master(task.spec.taskId).shardSync(part.index, { round, accepted, holding: assigned, wantsSlots });
    this.lastSyncAt = Date.now();
    if ('code' in view) throw new Error(`master refused shard ${part.index}: ${view.code} ${view.message}`);
    this.apply(view, round === view.round ? accepted : 0);
  }

  /**
   * Takes in what the master says: a later round replaces this shard's (whose updates, if it was
   * never sealed, are late), the live one's deadline, slots and lifecycle are updated. `reported`:
   * the accepted count the master has now heard. Synchronous: no request interleaves with it.
   */
  private apply(view: ShardView, reported: number): void {
    const task = this.task!;
    let part = task.shard!;
    let { state } = task;
    const drop = view.round > state.round ? state.round : null;
    const wasOpen = state.status === 'open';
    if (view.round > state.round) {
      // A round first heard of after it left `open` at the master may already have been sealed: accept nothing in it.
      state = {
        ...machine.openRound(view.round, view.baseVersion, view.openedAt),
        deadlineAt: view.deadlineAt,
        status: view.status === 'open' ? 'open' : 'closing',
      };
      part = { ...part, granted: view.granted, reported: 0, masterStatus: view.status };
    } else if (view.round === state.round) {
      state = { ...state, deadlineAt: view.deadlineAt };
      part = { ...part, granted: part.granted + view.granted, reported: Math.max(part.reported, reported), masterStatus: view.status };
    }
    const next: TaskState = {
      ...task,
      state,
      shard: part,
      pausedAt: view.pausedAt,
      stoppedAt: view.stoppedAt,
      ...(view.privacy ? { privacy: view.privacy } : {}),
    };
    this.task = next;
    this.commits.commit(() => {
      if (drop !== null) clearRound(this.host, drop);
      // The acks of updates that did not count must not answer retries: those of an abandoned round,
      // or of this shard's part of a round closed without it (never sealed, or its seal's answer lost).
      const ended = view.ended?.round === drop ? view.ended : null;
      if (drop !== null && (wasOpen || ended?.abandoned || ended?.missing.includes(part.index))) this.ledger.forgetRound(drop);
    });
    if (drop !== null) this.host.dropSum();
  }

  /**
   * Ends this shard's part of `round`: nothing more is accepted in it, everything accepted is
   * durable, and the counts, ledger rows and rejections go to the master. Idempotent.
   */
  async seal(round: number): Promise<SealResult> {
    const empty: SealResult = { round, assigned: 0, accepted: 0, totalWeight: 0, count: 0, rows: [], rejectedByCode: {}, unclipped: 0 };
    this.faults.hit('seal');
    const task = this.task;
    if (!task?.shard) return empty; // no client ever came to this shard
    if (this.commits.size > 0) this.commits.commit();
    if (task.state.round < round) {
      // This shard never heard of the round, so it holds nothing of it; it must not open it later.
      this.apply(viewOf({ ...task, state: { ...task.state, round, status: 'closing', openedAt: Date.now(), deadlineAt: null } }, 0), 0);
      return empty;
    }
    if (task.state.round > round) throw new Error(`shard ${task.shard.index} is at round ${task.state.round}; round ${round} is over`);
    if (task.state.status === 'open') {
      this.task = { ...task, state: { ...task.state, status: 'closing' } };
      this.commits.commit();
    }
    const { state } = this.task!;
    const sum = this.sum();
    return {
      round,
      assigned: state.assigned,
      accepted: state.accepted,
      totalWeight: sum.totalWeight,
      count: sum.count,
      rows: this.ledger.rowsOf(round),
      rejectedByCode: this.ledger.rejectionsOf(round),
      unclipped: this.ledger.unclippedIn(round),
    };
  }

  /** Parameters [start, end) of the sealed round's partial sum Σwᵢ·Δᵢ (float64). */
  async partialSum(round: number, start: number, end: number): Promise<Float64Array> {
    const state = this.task?.state;
    if (!state || state.round !== round || state.status !== 'closing') throw new Error(`round ${round} is not sealed on this shard`);
    return this.sum().sum().slice(start, end);
  }

  /** The master's word that the round moved on (or that the lifecycle changed). */
  async advance(view: ShardView): Promise<void> {
    if (this.task?.shard) this.apply(view, 0);
  }

  /** Everything this shard stores goes: the master deletes its shards once the task may be deleted. */
  override async destroy(): Promise<{ ok: true }> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.task = null;
    return { ok: true };
  }

  private master(taskId: string) {
    return this.env.AGGREGATOR.get(this.env.AGGREGATOR.idFromName(taskId));
  }
}
