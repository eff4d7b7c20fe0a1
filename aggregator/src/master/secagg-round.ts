/**
 * @module A secure-aggregation round inside the master aggregator: the four sub-phases of SecAgg+
 * (advertise keys → share keys → masked input → unmask), what each stores, when each ends, and the
 * unmasked mean the close publishes.
 *
 * Phases and the client sets (Bonawitz et al. 2017's U1 ⊇ U2 ⊇ U3 ⊇ U4):
 * - advertise: assigned clients post their two public keys (U1). Ends when every assigned client
 *   has, or phaseSeconds after the first assignment; then the server draws a random order of U1,
 *   the Harary graph over it, and k and t for n = |U1|.
 * - share: each client of U1 fetches its neighbours' keys and posts one sealed pair of shares per
 *   neighbour (U2). Ends when all of U1 shared, or after phaseSeconds.
 * - mask: each client of U2 fetches the shares sealed for it and posts its masked input (U3). Ends
 *   when all of U2 did, or at the later of the round deadline and phaseSeconds after its start.
 * - unmask: each client of U3 is told which neighbours survived (U3) and which dropped (U2 \ U3),
 *   and posts its shares of the survivors' seeds and the dropped ones' mask keys (U4). Ends when all
 *   of U3 did, or after phaseSeconds; the round then closes if every secret has t shares.
 * A phase that ends below its minimum (max(rounds.minClients, t) clients, at least 3) abandons the
 * round: nothing is published.
 *
 * What the server stores: public keys, sealed shares it cannot open (AES-GCM under keys agreed
 * between clients), masked vectors (each uniformly random on its own), and the revealed shares,
 * which by the double-reveal guard never give both secrets of one client. Every write commits with
 * the task state in one transaction, before the answer leaves (the object's output gate).
 */

import type { ErrorCode } from '#protocol/codes.ts';
import type { UpdateAck } from '#protocol/messages.ts';
import { neighbours as harary, secAggParams } from '#protocol/secagg/graph.ts';
import type { Advertisement, Revealed, SealedShares } from '#protocol/secagg/protocol.ts';
import { unmaskSum } from '#protocol/secagg/protocol.ts';
import { dequantizeMean, dequantizeSum, signedWord } from '#protocol/secagg/quantize.ts';
import {
  decodeKeys,
  decodeMasked,
  decodeReveal,
  decodeShares,
  encodeKeys,
  encodeReveal,
  fromBase64,
  type InboxAnswer,
  MAX_SHARE_BYTES,
  type RosterAnswer,
  toBase64,
  type UnmaskAnswer,
  WireError,
} from '#protocol/secagg/wire.ts';
import { ModularSum } from '../kernels/modular-sum.ts';
import { accumulateWasm } from '../kernels/wasm-worker.ts';
import { sha256Hex } from '../storage/weights.ts';
import { writeChunks } from './chunks.ts';
import type { GroupCommit } from './group-commit.ts';
import type { Ledger } from './ledger.ts';
import type { GivenAggregate } from './publish.ts';
import { type SecureAggregation, secAggCapacity, taskFractionBits } from './secagg-config.ts';
import type { TaskState } from './task-spec.ts';

export type Phase = 'advertise' | 'share' | 'mask' | 'unmask';

/** The live round's secure-aggregation state, persisted in the task state. */
export interface SecAggRoundState {
  round: number;
  phase: Phase;
  /** When the phase ends at the latest; null while nobody has been assigned. */
  endsAt: number | null;
  /** The mask phase ends no earlier than this (the round deadline: first assignment + deadlineSeconds). */
  trainingEndsAt: number | null;
  /** U1 in the order the server drew (empty until the share phase). */
  order: string[];
  k: number;
  t: number;
}

export type Refusal = { ok: false; code: ErrorCode; message: string };
const refuse = (code: ErrorCode, message: string): Refusal => ({ ok: false, code, message });

/** Masked vectors are stored in rows of this many words (1 MiB). */
const CHUNK_WORDS = 256 * 1024;
/** Longest a poll is held open waiting for its phase, ms. */
export const MAX_POLL_MS = 20_000;

/** The phase state of a round that has just opened. */
export function openSecAgg(round: number): SecAggRoundState {
  return { round, phase: 'advertise', endsAt: null, trainingEndsAt: null, order: [], k: 0, t: 0 };
}

/** What the phases need of the object that owns the round. */
export interface SecAggHost {
  readonly sql: SqlStorage;
  readonly ledger: Ledger;
  readonly commits: GroupCommit;
  state(): TaskState | null;
  setState(s: TaskState): void;
}

const json = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

export class SecAggRounds {
  private readonly host: SecAggHost;
  /** Polls waiting for the next phase change. */
  private waiters: (() => void)[] = [];

  constructor(host: SecAggHost) {
    this.host = host;
  }

  private get sql(): SqlStorage {
    return this.host.sql;
  }

  private get task(): TaskState & { secagg: SecAggRoundState; spec: { secureAggregation: SecureAggregation } } {
    return this.host.state() as never;
  }

  /** The phase state, or why a message for `round` from `clientId` is not for it. */
  private check(round: number): Refusal | null {
    const task = this.host.state();
    if (!task) return refuse('task_not_found', 'no such task');
    if (!task.spec.secureAggregation || !task.secagg) return refuse('secagg_not_enabled', 'this task does not run secure aggregation');
    const s = task.state;
    if (round !== s.round)
      return refuse('secagg_wrong_round', `round ${round} is not the live round (${s.round}): its secure aggregation is over or has not begun`);
    if (s.status === 'abandoned') return refuse('round_abandoned', `round ${round} was abandoned: too few clients completed a phase of secure aggregation`);
    if (s.status !== 'open') return refuse('round_closed', `round ${round} is closing: its secure aggregation is complete`);
    return null;
  }

  private outOfPhase(want: Phase, doing: string): Refusal {
    return refuse('secagg_out_of_phase', `${doing} belongs to the ${want} phase; round ${this.task.state.round} is in its ${this.task.secagg.phase} phase`);
  }

  /** Wakes every poll (after a phase change). */
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until the next phase change or `ms`, whichever is first. */
  private async waitForChange(ms: number): Promise<void> {
    if (ms <= 0) return;
    let timer: ReturnType<typeof setTimeout> | null = null;
    await new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      timer = setTimeout(resolve, ms);
    });
    if (timer !== null) clearTimeout(timer);
  }

  private retryAfter(): number {
    const endsAt = this.task.secagg.endsAt;
    return endsAt === null ? 1 : Math.max(1, Math.min(60, Math.ceil((endsAt - Date.now()) / 1000)));
  }

  private keysOf(round: number): Map<string, string> {
    return new Map(
      this.sql
        .exec<{ client_id: string; body: string }>(`SELECT client_id, body FROM secagg_keys WHERE round = ?`, round)
        .toArray()
        .map((r) => [r.client_id, r.body]),
    );
  }

  private count(table: 'secagg_keys' | 'secagg_shared' | 'secagg_reveals', round: number): number {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE round = ?`, round).one().n;
  }

  private members(table: 'secagg_shared' | 'secagg_reveals', round: number): string[] {
    return this.sql
      .exec<{ client_id: string }>(`SELECT client_id FROM ${table} WHERE round = ?`, round)
      .toArray()
      .map((r) => r.client_id);
  }

  /** U3: the clients whose masked input is in (their ledger rows). */
  private survivors(round: number): string[] {
    return this.host.ledger.rowsOf(round).map((r) => r.client_id);
  }

  private graph(): Map<string, string[]> {
    const { order, k } = this.task.secagg;
    return harary(order, k);
  }

  /** Phase 1: a client assigned to the round posts its public keys. A retry of the same keys is accepted again. */
  advertise(clientId: string, round: number, body: unknown): { ok: true } | Refusal {
    const bad = this.check(round);
    if (bad) return bad;
    const { secagg } = this.task;
    if (!this.host.ledger.isAssigned(round, clientId)) return refuse('secagg_unknown_client', `this client is not assigned to round ${round}: check in first`);
    let keys: string;
    try {
      keys = JSON.stringify(encodeKeys(decodeKeys(body, clientId)));
    } catch (e) {
      if (e instanceof WireError) return refuse('invalid_secagg_message', e.message);
      throw e;
    }
    const prior = this.keysOf(round).get(clientId);
    if (prior !== undefined) return prior === keys ? { ok: true } : refuse('secagg_conflict', `this client already advertised other keys for round ${round}`);
    if (secagg.phase !== 'advertise') return this.outOfPhase('advertise', 'advertising keys');
    this.host.commits.commit(() => this.sql.exec(`INSERT INTO secagg_keys (round, client_id, body) VALUES (?, ?, ?)`, round, clientId, keys));
    // Everyone assigned (the capacity) has advertised: no reason to wait for the deadline.
    if (this.count('secagg_keys', round) >= this.task.state.assigned && this.task.state.assigned >= this.capacity()) this.advance(Date.now(), true);
    return { ok: true };
  }

  private capacity(): number {
    return secAggCapacity(this.task.spec.rules, this.task.spec.privacy);
  }

  /** Phase 2, read: the neighbours' keys, k and t (held open up to `waitMs` until the phase starts). */
  async roster(clientId: string, round: number, waitMs: number): Promise<RosterAnswer | Refusal> {
    for (let attempt = 0; ; attempt++) {
      const bad = this.check(round);
      if (bad) return bad;
      const { secagg } = this.task;
      if (secagg.phase === 'advertise') {
        if (!this.keysOf(round).has(clientId)) return refuse('secagg_unknown_client', `this client advertised no keys in round ${round}`);
        if (attempt === 0) {
          await this.waitForChange(Math.min(waitMs, MAX_POLL_MS));
          continue;
        }
        return { status: 'wait', retryAfterSeconds: this.retryAfter() };
      }
      if (!secagg.order.includes(clientId)) return refuse('secagg_unknown_client', `this client is not among round ${round}'s advertised clients`);
      if (secagg.phase !== 'share') return this.outOfPhase('share', 'reading the roster');
      const keys = this.keysOf(round);
      const mine = this.graph().get(clientId)!;
      return {
        status: 'ready',
        k: secagg.k,
        t: secagg.t,
        neighbours: mine.map((id) => ({ id, ...(JSON.parse(keys.get(id)!) as object) })) as never,
      };
    }
  }

  /** Phase 2, write: one sealed pair of shares for each neighbour. */
  async share(clientId: string, round: number, body: unknown): Promise<{ ok: true } | Refusal> {
    const bad = this.check(round);
    if (bad) return bad;
    const { secagg } = this.task;
    if (secagg.phase !== 'advertise' && !secagg.order.includes(clientId))
      return refuse('secagg_unknown_client', `this client is not among round ${round}'s advertised clients`);
    const digest = await sha256Hex(json(body));
    const prior = this.sql
      .exec<{ body_sha256: string }>(`SELECT body_sha256 FROM secagg_shared WHERE round = ? AND client_id = ?`, round, clientId)
      .toArray()[0];
    if (prior) return prior.body_sha256 === digest ? { ok: true } : refuse('secagg_conflict', `this client already sent other shares for round ${round}`);
    if (this.task.secagg.phase !== 'share') return this.outOfPhase('share', 'sending shares');
    let sealed: SealedShares[];
    try {
      sealed = decodeShares(body, clientId, this.graph().get(clientId)!);
    } catch (e) {
      if (e instanceof WireError) return refuse('invalid_secagg_message', e.message);
      throw e;
    }
    // The phase may have moved while the digest was computed.
    const again = this.check(round);
    if (again) return again;
    if (this.task.secagg.phase !== 'share') return this.outOfPhase('share', 'sending shares');
    this.host.commits.commit(() => {
      this.sql.exec(`INSERT INTO secagg_shared (round, client_id, body_sha256) VALUES (?, ?, ?)`, round, clientId, digest);
      for (const s of sealed)
        this.sql.exec(`INSERT INTO secagg_shares (round, recipient, sender, sealed) VALUES (?, ?, ?, ?)`, round, s.to, clientId, s.sealed);
    });
    if (this.count('secagg_shared', round) >= this.task.secagg.order.length) this.advance(Date.now(), true);
    return { ok: true };
  }

  /** Phase 3, read: the shares sealed for this client (held open up to `waitMs` until the phase starts). */
  async inbox(clientId: string, round: number, waitMs: number): Promise<InboxAnswer | Refusal> {
    for (let attempt = 0; ; attempt++) {
      const bad = this.check(round);
      if (bad) return bad;
      const { secagg } = this.task;
      if (secagg.phase === 'advertise' || secagg.phase === 'share') {
        if (secagg.phase === 'share' && !secagg.order.includes(clientId))
          return refuse('secagg_unknown_client', `this client is not among round ${round}'s advertised clients`);
        if (attempt === 0) {
          await this.waitForChange(Math.min(waitMs, MAX_POLL_MS));
          continue;
        }
        return { status: 'wait', retryAfterSeconds: this.retryAfter() };
      }
      if (!this.isShared(round, clientId)) return refuse('secagg_unknown_client', `this client sent no shares in round ${round}`);
      if (secagg.phase !== 'mask') return this.outOfPhase('mask', 'reading the inbox');
      const rows = this.sql
        .exec<{ sender: string; sealed: ArrayBuffer }>(
          `SELECT sender, sealed FROM secagg_shares WHERE round = ? AND recipient = ? ORDER BY sender`,
          round,
          clientId,
        )
        .toArray();
      return { status: 'ready', shares: rows.map((r) => ({ from: r.sender, sealed: toBase64(new Uint8Array(r.sealed)) })) };
    }
  }

  private isShared(round: number, clientId: string): boolean {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM secagg_shared WHERE round = ? AND client_id = ?`, round, clientId).one().n > 0;
  }

  /** Phase 3, write: the masked input, (numParams + 1) words. A retry of the same bytes returns the same ack. */
  async masked(clientId: string, round: number, body: Uint8Array): Promise<{ ok: true; ack: UpdateAck; replay: boolean } | Refusal> {
    const bad = this.check(round);
    if (bad) return bad;
    const digest = await sha256Hex(body);
    const prior = this.host.ledger.prior(round, clientId);
    if (prior)
      return prior.body_sha256 === digest
        ? { ok: true, ack: prior.ack, replay: true }
        : refuse('secagg_conflict', `this client already sent another masked input for round ${round}`);
    const again = this.check(round);
    if (again) return again;
    const { secagg, spec } = this.task;
    if ((secagg.phase === 'mask' || secagg.phase === 'unmask') && !this.isShared(round, clientId))
      return refuse('secagg_unknown_client', `this client sent no shares in round ${round}`);
    if (secagg.phase !== 'mask') return this.outOfPhase('mask', 'sending a masked input');
    try {
      decodeMasked(body, spec.numParams + 1);
    } catch (e) {
      if (e instanceof WireError) return refuse('invalid_secagg_message', e.message);
      throw e;
    }
    const now = Date.now();
    const state = this.task.state;
    // No example count: each client's weight is folded into its masked vector, and only the sum of the weights is revealed.
    const ack: UpdateAck = {
      taskId: spec.taskId,
      round,
      clientId,
      seq: state.accepted + 1,
      numExamples: 0,
      bodySha256: digest,
      acceptedAt: new Date(now).toISOString(),
    };
    this.host.setState({ ...this.task, state: { ...state, accepted: state.accepted + 1 } });
    this.host.commits.commit(() => {
      this.host.ledger.insert({
        round,
        assignedRound: round,
        clientId,
        seq: state.accepted + 1,
        bodySha256: digest,
        numExamples: 0,
        metrics: null,
        ack: JSON.stringify(ack),
        acceptedAt: now,
        weight: 0,
        unclipped: null,
      });
      // The body is the words little-endian, as a Uint32Array reads them here (see prg.ts).
      writeChunks(
        body,
        (chunk, idx) => this.sql.exec(`INSERT INTO secagg_masked (round, client_id, idx, data) VALUES (?, ?, ?, ?)`, round, clientId, idx, chunk),
        CHUNK_WORDS * 4,
      );
    });
    if (this.task.state.accepted >= this.count('secagg_shared', round)) this.advance(Date.now(), true);
    return { ok: true, ack, replay: false };
  }

  /** Phase 4, read: which of this client's neighbours survived and which dropped. */
  async unmaskRequest(clientId: string, round: number, waitMs: number): Promise<UnmaskAnswer | Refusal> {
    for (let attempt = 0; ; attempt++) {
      const bad = this.check(round);
      if (bad) return bad;
      const { secagg } = this.task;
      if (secagg.phase !== 'unmask') {
        if (secagg.phase === 'mask' && !this.isShared(round, clientId)) return refuse('secagg_unknown_client', `this client sent no shares in round ${round}`);
        if (attempt === 0) {
          await this.waitForChange(Math.min(waitMs, MAX_POLL_MS));
          continue;
        }
        return { status: 'wait', retryAfterSeconds: this.retryAfter() };
      }
      const asked = this.asked(round, clientId);
      if (!asked) return refuse('secagg_unknown_client', `this client sent no masked input in round ${round}`);
      return { status: 'ready', ...asked };
    }
  }

  /** The unmask request of one survivor: its surviving and dropped neighbours (restricted to U2). */
  private asked(round: number, clientId: string): { survivors: string[]; dropped: string[] } | null {
    const survivors = new Set(this.survivors(round));
    if (!survivors.has(clientId)) return null;
    const shared = new Set(this.members('secagg_shared', round));
    const mine = this.graph()
      .get(clientId)!
      .filter((v) => shared.has(v));
    return { survivors: mine.filter((v) => survivors.has(v)), dropped: mine.filter((v) => !survivors.has(v)) };
  }

  /** Phase 4, write: the shares asked for. */
  async reveal(clientId: string, round: number, body: unknown): Promise<{ ok: true } | Refusal> {
    const bad = this.check(round);
    if (bad) return bad;
    const { secagg } = this.task;
    let text: string;
    if (secagg.phase !== 'unmask') {
      if (secagg.phase === 'mask' && !this.host.ledger.prior(round, clientId))
        return refuse('secagg_unknown_client', `this client sent no masked input in round ${round}`);
      return this.outOfPhase('unmask', 'revealing shares');
    }
    const asked = this.asked(round, clientId);
    if (!asked) return refuse('secagg_unknown_client', `this client sent no masked input in round ${round}`);
    try {
      text = JSON.stringify(encodeReveal(decodeReveal(body, clientId, asked)));
    } catch (e) {
      if (e instanceof WireError) return refuse('invalid_secagg_message', e.message);
      throw e;
    }
    const prior = this.sql.exec<{ body: string }>(`SELECT body FROM secagg_reveals WHERE round = ? AND client_id = ?`, round, clientId).toArray()[0];
    if (prior) return prior.body === text ? { ok: true } : refuse('secagg_conflict', `this client already revealed other shares for round ${round}`);
    this.host.commits.commit(() => this.sql.exec(`INSERT INTO secagg_reveals (round, client_id, body) VALUES (?, ?, ?)`, round, clientId, text));
    if (this.count('secagg_reveals', round) >= this.task.state.accepted) this.advance(Date.now(), true);
    return { ok: true };
  }

  /** The clock of the advertise phase starts at the round's first assignment (and with it the round deadline). */
  assigned(now: number): void {
    const task = this.task;
    if (task.secagg.endsAt !== null) return;
    const s = task.spec.secureAggregation;
    const endsAt = now + s.phaseSeconds * 1000;
    this.host.setState({
      ...task,
      secagg: { ...task.secagg, endsAt, trainingEndsAt: now + task.spec.rules.deadlineSeconds * 1000 },
      state: { ...task.state, deadlineAt: endsAt },
    });
  }

  /** Fewest clients a phase must end with: the round's minimum, t once known, and never below 3. */
  private minimum(): number {
    return Math.max(3, this.task.spec.rules.minClients, this.task.secagg.t);
  }

  /**
   * Ends the current phase if it is due (its deadline passed, or `complete`: every client it waits
   * for answered), moving to the next one, to closing (after unmask) or to abandoned. Returns
   * whether anything changed; safe to call any number of times.
   */
  advance(now: number, complete = false): boolean {
    const task = this.task;
    const { secagg, state, spec } = task;
    if (!task.secagg || state.status !== 'open' || secagg.endsAt === null) return false;
    if (!complete && now < secagg.endsAt) return false;
    const round = state.round;
    const s = spec.secureAggregation;
    const phaseEnd = now + s.phaseSeconds * 1000;
    let next: TaskState;
    const abandoned = (why: string): TaskState => {
      console.warn(JSON.stringify({ event: 'secagg_round_abandoned', taskId: spec.taskId, round, phase: secagg.phase, why }));
      return { ...task, state: { ...state, status: 'abandoned', closeReason: 'below_minimum', closedAt: now } };
    };
    if (secagg.phase === 'advertise') {
      const advertised = [...this.keysOf(round).keys()];
      if (advertised.length < Math.max(3, spec.rules.minClients)) next = abandoned(`${advertised.length} clients advertised keys`);
      else {
        const order = shuffle(advertised);
        const { k, t } = paramsFor(order.length, s);
        next = { ...task, secagg: { ...secagg, phase: 'share', endsAt: phaseEnd, order, k, t }, state: { ...state, deadlineAt: phaseEnd } };
      }
    } else if (secagg.phase === 'share') {
      const shared = this.count('secagg_shared', round);
      if (shared < this.minimum()) next = abandoned(`${shared} clients shared keys (t = ${secagg.t})`);
      else {
        const endsAt = Math.max(phaseEnd, secagg.trainingEndsAt ?? phaseEnd);
        next = { ...task, secagg: { ...secagg, phase: 'mask', endsAt }, state: { ...state, deadlineAt: endsAt } };
      }
    } else if (secagg.phase === 'mask') {
      if (state.accepted < this.minimum()) next = abandoned(`${state.accepted} masked inputs (t = ${secagg.t})`);
      else next = { ...task, secagg: { ...secagg, phase: 'unmask', endsAt: phaseEnd }, state: { ...state, deadlineAt: phaseEnd } };
    } else {
      const missing = this.unrecoverable(round);
      if (missing) next = abandoned(missing);
      else next = { ...task, state: { ...state, status: 'closing', closeReason: complete ? 'goal_reached' : 'deadline' } };
    }
    this.host.setState(next);
    this.host.commits.commit();
    this.wake();
    return true;
  }

  /** Why the revealed shares cannot unmask the sum (a secret with fewer than t shares), or null. */
  private unrecoverable(round: number): string | null {
    const { t } = this.task.secagg;
    const revealed = this.revealed(round);
    const shared = new Set(this.members('secagg_shared', round));
    const survivors = this.survivors(round);
    const has = (v: string, kind: 'seedShares' | 'keyShares') => revealed.filter((r) => r[kind][v]).length;
    for (const u of survivors) if (has(u, 'seedShares') < t) return `${has(u, 'seedShares')} shares of a survivor's seed, fewer than t = ${t}`;
    for (const v of shared)
      if (!survivors.includes(v) && has(v, 'keyShares') < t) return `${has(v, 'keyShares')} shares of a dropped client's key, fewer than t = ${t}`;
    return null;
  }

  private revealed(round: number): Revealed[] {
    return this.sql
      .exec<{ client_id: string; body: string }>(`SELECT client_id, body FROM secagg_reveals WHERE round = ?`, round)
      .toArray()
      .map((r) => {
        const b = JSON.parse(r.body) as { seedShares: Record<string, string>; keyShares: Record<string, string> };
        const map = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, fromBase64(v, k, MAX_SHARE_BYTES)]));
        return { from: r.client_id, seedShares: map(b.seedShares), keyShares: map(b.keyShares) };
      });
  }

  /**
   * The closing round's unmasked aggregate: the weighted mean Δ, or under central DP the sum of the
   * clipped updates (quantized with weight 1) for the privacy step to noise; and the total example
   * count (from the summed weights).
   */
  async unmaskedAggregate(): Promise<GivenAggregate> {
    const { secagg, state, spec } = this.task;
    const round = state.round;
    const length = spec.numParams + 1;
    const keys = this.keysOf(round);
    const roster: Advertisement[] = [...keys].map(([id, body]) => decodeKeys(JSON.parse(body), id));
    const survivors = this.survivors(round);
    const shared = new Set(this.members('secagg_shared', round));
    // The pairwise masks exist between neighbours that both shared: the graph restricted to U2.
    const graph = new Map([...this.graph()].map(([u, ns]) => [u, ns.filter((v) => shared.has(v))]));
    // The masked vectors are summed here, chunk by chunk, with the Wasm modular kernel; the masks
    // are then removed from that sum in place: only the sum goes to the unmasking.
    const sum = new ModularSum(length, accumulateWasm);
    try {
      for (const u of survivors) {
        for (const row of this.sql.exec<{ idx: number; data: ArrayBuffer }>(
          `SELECT idx, data FROM secagg_masked WHERE round = ? AND client_id = ? ORDER BY idx`,
          round,
          u,
        )) {
          sum.add(new Uint32Array(row.data), 1, row.idx * CHUNK_WORDS);
        }
      }
      const unmasked = await unmaskSum({
        taskId: spec.taskId,
        round,
        t: secagg.t,
        roster,
        neighbours: graph,
        sum,
        survivors,
        dropped: [...shared].filter((v) => !survivors.includes(v)),
        revealed: this.revealed(round),
      });
      const f = taskFractionBits(spec.secureAggregation, spec.rules, spec.privacy);
      const numExamples = Math.round(signedWord(unmasked[unmasked.length - 1]!) * 2 ** -f * spec.rules.maxExamplesPerClient);
      if (spec.privacy?.mode === 'central') return { clippedSum: dequantizeSum(unmasked, f).sum, numExamples };
      return { meanDelta: Float32Array.from(dequantizeMean(unmasked)), numExamples };
    } finally {
      sum.dispose();
    }
  }
}

/** k and t for the n clients that advertised: the task's overrides, fitted to n (k ≤ n − 1, t ≤ k). */
export function paramsFor(n: number, s: SecureAggregation): { k: number; t: number } {
  const k = s.neighbours === undefined ? undefined : Math.min(s.neighbours, n - 1);
  const base = secAggParams(n, k === undefined ? {} : { k });
  const t = s.threshold === undefined ? base.t : Math.min(s.threshold, base.k);
  return { k: base.k, t: Math.max(2, t) };
}

/** A uniformly random order (Fisher–Yates over crypto.getRandomValues, rejection-sampled). */
function shuffle<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  const word = new Uint32Array(1);
  for (let i = out.length - 1; i > 0; i--) {
    const bound = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % bound);
    let r: number;
    do r = crypto.getRandomValues(word)[0]!;
    while (r >= limit);
    const j = r % bound;
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
