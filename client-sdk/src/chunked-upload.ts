/**
 * @module Sending an update in chunks (models split into parameter ranges; protocol/chunked.ts):
 * each chunk PUT with retries, a few at a time, then the commit.
 *
 * Resumable: the chunks the server acknowledged are remembered per round, so a `submitUpdate` that
 * failed part-way (the connection dropped past the retries) and is called again sends only the
 * rest. Every chunk's bytes are the same at each attempt, int8's stochastic rounding included: its
 * uniforms come from AES-CTR under a key drawn once per round (WebCrypto), counter = the chunk, so
 * a chunk sent again is one the server already holds, never a `duplicate_conflict`.
 */
import type { Http } from './internal/http.ts';
import { inParallel } from './internal/parallel.ts';
import { type ChunkAck, type ChunkCommit, type ChunkedUpload, chunkBounds, encodeChunk } from './protocol/chunked.ts';
import type { Uniforms, UpdateEncoding } from './protocol/encoding.ts';
import type { UpdateAck } from './protocol/messages.ts';

/** Chunk PUTs in flight at once. */
const PARALLEL = 2;

/** What a client remembers of a round's chunked update: its rounding key, and the chunks acknowledged. */
interface RoundChunks {
  key: CryptoKey;
  acked: Map<number, string>;
}

export interface ChunkedArgs {
  round: number;
  baseVersion: number;
  delta: Float32Array;
  numExamples: number;
  metrics?: Record<string, number> | undefined;
  encoding: UpdateEncoding;
  layout: ChunkedUpload;
  signal?: AbortSignal | undefined;
  /** Called after each chunk is stored: how many of how many. */
  onChunk?: ((done: number, of: number) => void) | undefined;
}

export class ChunkedUploads {
  private readonly rounds = new Map<number, RoundChunks>();
  private readonly http: Http;
  private readonly base: string;

  constructor(http: Http, base: string) {
    this.http = http;
    this.base = base;
  }

  /** Sends the chunks not yet acknowledged for this round, then commits the update; its ack. */
  async submit(args: ChunkedArgs): Promise<UpdateAck> {
    const { round, delta, layout } = args;
    if (delta.length > layout.chunks * layout.chunkParams || delta.length <= (layout.chunks - 1) * layout.chunkParams)
      throw new RangeError(`an update of ${delta.length} parameters is not ${layout.chunks} chunks of ${layout.chunkParams}`);
    const memo = await this.memo(round);
    const todo = Array.from({ length: layout.chunks }, (_, k) => k).filter((k) => !memo.acked.has(k));
    await inParallel(todo, PARALLEL, async (k) => {
      const { start, end } = chunkBounds(layout, delta.length, k);
      const uniform = args.encoding === 'int8' ? await roundingUniforms(memo.key, k, end - start) : undefined;
      const body = encodeChunk(delta.subarray(start, end), args.encoding, { baseVersion: args.baseVersion, index: k }, uniform);
      const ack = await this.http.json<ChunkAck>({
        method: 'PUT',
        path: `${this.base}/rounds/${round}/update/chunks/${k}`,
        body,
        retry: true,
        signal: args.signal,
      });
      memo.acked.set(k, ack.bodySha256);
      args.onChunk?.(memo.acked.size, layout.chunks);
    });
    const commit: ChunkCommit = {
      baseVersion: args.baseVersion,
      numExamples: args.numExamples,
      ...(args.metrics && Object.keys(args.metrics).length > 0 ? { metrics: args.metrics } : {}),
      chunks: Array.from({ length: layout.chunks }, (_, k) => memo.acked.get(k)!),
    };
    const ack = await this.http.json<UpdateAck>({
      method: 'POST',
      path: `${this.base}/rounds/${round}/update/commit`,
      json: commit,
      retry: true,
      signal: args.signal,
    });
    this.rounds.delete(round);
    return ack;
  }

  private async memo(round: number): Promise<RoundChunks> {
    let memo = this.rounds.get(round);
    if (!memo) {
      const key = await crypto.subtle.generateKey({ name: 'AES-CTR', length: 128 }, false, ['encrypt']);
      memo = { key, acked: new Map() };
      this.rounds.set(round, memo);
      for (const r of this.rounds.keys()) if (r < round - 8) this.rounds.delete(r);
    }
    return memo;
  }
}

/** n uniforms in [0, 1) for chunk `index`: the AES-CTR keystream under the round's key, counter block = the chunk's index. */
async function roundingUniforms(key: CryptoKey, index: number, n: number): Promise<Uniforms> {
  const counter = new Uint8Array(16);
  new DataView(counter.buffer).setUint32(4, index);
  const stream = new Uint32Array(await crypto.subtle.encrypt({ name: 'AES-CTR', counter, length: 64 }, key, new Uint8Array(n * 4)));
  let i = 0;
  return () => stream[i++]! / 2 ** 32;
}
