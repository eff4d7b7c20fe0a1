/**
 * @module One client's side of a secure-aggregation round over HTTP: the four phases of SecAgg+
 * (protocol/secagg/protocol.ts) against the aggregator's `…/secagg/*` routes.
 *
 * `keyPhases()` runs as soon as the client is assigned, while it trains (advertise its keys, wait
 * for the roster, send its shares); `submit(delta)` then quantizes and masks the update, sends it,
 * and answers the unmask request. The keys live in this object only: a client that restarts in the
 * middle of a round has dropped out of it, which the round tolerates.
 */
import type { Http } from './internal/http.ts';
import { sleep } from './internal/http.ts';
import type { ClientSecAgg, UpdateAck } from './protocol/messages.ts';
import { SecAggClient } from './protocol/secagg/protocol.ts';
import { quantize } from './protocol/secagg/quantize.ts';
import {
  decodeKeys,
  encodeKeys,
  encodeMasked,
  encodeReveal,
  encodeShares,
  fromBase64,
  type InboxAnswer,
  MAX_SEALED_BYTES,
  type PhaseAnswer,
  type RosterAnswer,
  type UnmaskAnswer,
} from './protocol/secagg/wire.ts';

/**
 * What `participate()` reports of a secure-aggregation round: the quantization it used, and the
 * neighbourhood size k and threshold t the server drew for the round.
 *
 * @example
 * const result = await client.participate({ xs, ys });
 * if (result.status === 'accepted' && result.secureAggregation) console.log(`masked with ${result.secureAggregation.k} neighbours`);
 */
export interface SecureRoundReport {
  /** The assignment's quantization. */
  quantization: ClientSecAgg;
  /** Neighbours (k) and threshold (t) the server drew for the round. */
  k: number;
  t: number;
}

const POLL_SECONDS = 10;

export class SecureRound {
  private readonly client: SecAggClient;
  private readonly path: string;
  private readonly http: Http;
  private k = 0;
  private t = 0;
  readonly round: number;
  readonly quantization: ClientSecAgg;

  constructor(http: Http, taskPath: string, clientId: string, taskId: string, round: number, quantization: ClientSecAgg) {
    this.http = http;
    this.round = round;
    this.quantization = quantization;
    this.client = new SecAggClient(clientId, taskId, round);
    this.path = `${taskPath}/rounds/${round}/secagg`;
  }

  /** Phases 1 and 2: advertise the keys, wait for the roster, send the sealed shares. */
  async keyPhases(signal?: AbortSignal): Promise<void> {
    const keys = await this.client.advertise();
    await this.http.json({ method: 'POST', path: `${this.path}/keys`, json: encodeKeys(keys), retry: true, signal });
    const roster = await this.poll<RosterAnswer>('roster', signal);
    this.k = roster.k;
    this.t = roster.t;
    const peers = roster.neighbours.map((n) => decodeKeys({ curve: n.curve, cPublic: n.cPublic, sPublic: n.sPublic }, n.id));
    const sealed = await this.client.shareKeys(
      [keys, ...peers],
      peers.map((p) => p.id),
      roster.t,
    );
    await this.http.json({ method: 'POST', path: `${this.path}/shares`, json: encodeShares(sealed), retry: true, signal });
  }

  /**
   * Phases 3 and 4: Δ clipped, weighted by numExamples / maxExamples and quantized, masked, sent;
   * then the shares the server asks for (the SDK refuses a request for both secrets of a peer).
   * `equalWeights` (central DP): Δ enters the sum with weight 1, as DP-FedAvg sums clipped updates.
   */
  async submit(
    delta: Float32Array,
    numExamples: number,
    signal?: AbortSignal,
    options: { equalWeights?: boolean } = {},
  ): Promise<{ ack: UpdateAck; report: SecureRoundReport }> {
    const q = this.quantization;
    const inbox = await this.poll<InboxAnswer>('inbox', signal);
    const weight = Math.min(1, numExamples / q.maxExamples);
    const words = quantize(delta, weight, q, options.equalWeights ? 1 : weight);
    const masked = await this.client.maskedInput(
      words,
      inbox.shares.map((s) => ({ from: s.from, to: this.client.id, sealed: fromBase64(s.sealed, 'sealed', MAX_SEALED_BYTES) })),
    );
    const ack = await this.http.json<UpdateAck>({
      method: 'PUT',
      path: `${this.path}/masked`,
      body: encodeMasked(masked) as Uint8Array<ArrayBuffer>,
      headers: { 'content-type': 'application/octet-stream' },
      retry: true,
      signal,
    });
    const request = await this.poll<UnmaskAnswer>('unmask', signal);
    const revealed = this.client.unmask({ survivors: request.survivors, dropped: request.dropped });
    await this.http.json({ method: 'POST', path: `${this.path}/reveal`, json: encodeReveal(revealed), retry: true, signal });
    return { ack, report: { quantization: q, k: this.k, t: this.t } };
  }

  /** Reads a phase until it has begun (the server holds each read up to POLL_SECONDS). */
  private async poll<T extends PhaseAnswer<object>>(what: string, signal?: AbortSignal): Promise<Extract<T, { status: 'ready' }>> {
    for (;;) {
      const r = await this.http.json<T>({ method: 'GET', path: `${this.path}/${what}?waitSeconds=${POLL_SECONDS}`, retry: true, signal });
      if (r.status === 'ready') return r as Extract<T, { status: 'ready' }>;
      // The server waited already; come back at once unless it names a short pause.
      if (r.retryAfterSeconds < POLL_SECONDS) await sleep(Math.min(1000, r.retryAfterSeconds * 1000), signal);
    }
  }
}
