/**
 * @module A parameter-range shard (ranges.ts): a Durable Object named `<task>/range/<k>` that
 * stores the clients' chunks of range k, and at the close sums the accepted ones, steps the
 * strategy on its slice, and writes its part of the new version into the multipart upload.
 *
 * It knows nothing of rounds beyond what the master tells it: the master admits every chunk (the
 * client is assigned, the round open) and decides which clients count (its ledger). A chunk is
 * stored once per (round, client), durable before its answer; a retry with the same bytes answers
 * the same, other bytes are `duplicate_conflict`. What it holds in memory at once is bounded by its
 * range: chunk bodies in flight (CHUNK_BUDGET_BYTES), and at the close the range's float64 sum,
 * one client's chunk, the base slice and the new slice.
 */
import { DurableObject } from 'cloudflare:workers';
import type { ChunkAck } from '#protocol/chunked.ts';
import { decodeRange, type UpdateEncoding } from '#protocol/encoding.ts';
import { firstNonFinite } from '../kernels/running-sum.ts';
import { accumulateWasm } from '../kernels/wasm-worker.ts';
import { sha256Hex } from '../storage/weights.ts';
import type { StrategyConfig, StrategyState } from '../strategies/index.ts';
import type { KrumSelection } from '../strategies/krum.ts';
import { ByteBudget } from './admission.ts';
import { bytesOf, chunkView, encodedChunk, readChunks, readUpdate, UPDATE_CHUNK_FLOATS, writeChunks } from './chunks.ts';
import { type ChunkReader, distanceParts, sumAndStep } from './range-step.ts';
import { CHUNK_BUDGET_BYTES, maxChunkBytes, partOf, validateChunk } from './ranges.ts';
import { readBody } from './read-body.ts';
import { uploadLimits } from './task-spec.ts';
import { type Failure, fail } from './uploads.ts';

/** What the master's admission says of a chunk it lets through. */
export interface ChunkPlace {
  round: number;
  clientId: string;
  index: number;
  baseVersion: number;
  encoding: UpdateEncoding;
  /** Parameters of this range. */
  length: number;
}

/**
 * The work of one range for a new version: sum the accepted clients' chunks (in acceptance order)
 * and step the strategy from the base slice (a round's close), or copy the operator's chunk of the
 * initial weights (version 0).
 */
export type RangeWork =
  | {
      kind: 'sum';
      round: number;
      clients: { clientId: string; weight: number; numExamples: number }[];
      numExamples: number;
      encoding: UpdateEncoding;
      strategy: StrategyConfig;
      /** Krum: the master's selection (from every range's distances). */
      selection?: KrumSelection | undefined;
      /** The base version's file, and where this range's float32 bytes are in it. */
      base: { key: string; offset: number };
    }
  | { kind: 'copy'; key: string };

export interface RangeClose {
  version: number;
  work: RangeWork;
  /** Parameters of this range. */
  length: number;
  /** Multipart geometry: bytes per part (4R) and of the new file's header. */
  partBytes: number;
  headBytes: number;
}

/** One part of a ranged version's multipart upload, written by the range whose bytes it mostly holds. */
export interface PartJob {
  version: number;
  /** Parameters of this range. */
  length: number;
  key: string;
  uploadId: string;
  partNumber: number;
  /** The header (range 0) or the previous range's carry. */
  prefix: Uint8Array;
  partBytes: number;
  headBytes: number;
}

export class RangeAggregator extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly budget = new ByteBudget({ budgetBytes: CHUNK_BUDGET_BYTES, maxWaitMs: 5_000, maxWaiters: 1_000 });
  private readonly receiving = new Set<string>();
  private readonly limits: { idleMs: number; graceMs: number; minBytesPerSecond: number };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.limits = uploadLimits(env);
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(
        `CREATE TABLE IF NOT EXISTS chunks (round INTEGER NOT NULL, client_id TEXT NOT NULL, sha256 TEXT NOT NULL, PRIMARY KEY (round, client_id))`,
      );
      this.sql.exec(
        `CREATE TABLE IF NOT EXISTS chunk_rows (round INTEGER NOT NULL, client_id TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (round, client_id, idx))`,
      );
      this.sql.exec(`CREATE TABLE IF NOT EXISTS output_rows (version INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (version, idx))`);
      this.sql.exec(
        `CREATE TABLE IF NOT EXISTS strategy_rows (version INTEGER NOT NULL, name TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (version, name, idx))`,
      );
      this.sql.exec(`CREATE TABLE IF NOT EXISTS strategy_steps (version INTEGER PRIMARY KEY, step INTEGER NOT NULL, names TEXT NOT NULL)`);
    });
  }

  /** Stores one client's chunk of this range for `place.round` (admitted by the master), durably, once. */
  async putChunk(place: ChunkPlace, stream: ReadableStream<Uint8Array>, declared: number | null): Promise<ChunkAck | Failure> {
    const key = `${place.round}/${place.clientId}`;
    if (this.receiving.has(key)) {
      await stream.cancel().catch(() => {});
      return { ...fail('upload_in_progress', `chunk ${place.index} of this client is still being received; retry when it ends`), retryAfterSeconds: 2 };
    }
    const cap = maxChunkBytes(place.encoding, place.length);
    this.receiving.add(key);
    const release = await this.budget.acquire(Math.min(declared ?? cap, cap));
    try {
      if (!release) {
        await stream.cancel().catch(() => {});
        return { ...fail('overloaded', 'too many chunks in flight for this range; retry shortly'), retryAfterSeconds: 2 };
      }
      const read = await readBody(stream, { cap, declared, ...this.limits });
      if (!read.ok) {
        if (read.reason === 'too_large') return fail('payload_too_large', `chunk ${place.index} exceeds its cap (${cap} bytes)`);
        if (read.reason === 'broken') return fail('malformed_update', `chunk ${place.index} broke off after ${read.received} bytes; send it again`);
        return fail('upload_timeout', `chunk ${place.index} stalled or arrived too slowly (${read.received} bytes in ${(read.elapsedMs / 1000).toFixed(1)} s)`);
      }
      const bodySha256 = await sha256Hex(read.body);
      const prior = this.stored(place.round, place.clientId);
      if (prior !== null) {
        if (prior !== bodySha256)
          return fail('duplicate_conflict', `chunk ${place.index} of this client for round ${place.round} was already stored with different content`);
        return { round: place.round, index: place.index, bodySha256, replayed: true };
      }
      const valid = validateChunk(read.body, place, (d) => firstNonFinite(d, accumulateWasm));
      if (!valid.ok) return valid;
      const { chunk } = valid;
      this.ctx.storage.transactionSync(() => {
        // Chunks of rounds before this one are never summed any more.
        this.sql.exec(`DELETE FROM chunk_rows WHERE round < ?`, place.round);
        this.sql.exec(`DELETE FROM chunks WHERE round < ?`, place.round);
        for (let idx = 0, start = 0; start < place.length; idx++, start += UPDATE_CHUNK_FLOATS) {
          const data = encodedChunk(chunk, start, Math.min(start + UPDATE_CHUNK_FLOATS, place.length));
          this.sql.exec(`INSERT INTO chunk_rows (round, client_id, idx, data) VALUES (?, ?, ?, ?)`, place.round, place.clientId, idx, data);
        }
        this.sql.exec(`INSERT INTO chunks (round, client_id, sha256) VALUES (?, ?, ?)`, place.round, place.clientId, bodySha256);
      });
      return { round: place.round, index: place.index, bodySha256, replayed: false };
    } finally {
      release?.();
      this.receiving.delete(key);
    }
  }

  /** The SHA-256 of the chunk this client stored for `round`, or null. */
  async chunkOf(round: number, clientId: string): Promise<string | null> {
    return this.stored(round, clientId);
  }

  private stored(round: number, clientId: string): string | null {
    return this.sql.exec<{ sha256: string }>(`SELECT sha256 FROM chunks WHERE round = ? AND client_id = ?`, round, clientId).toArray()[0]?.sha256 ?? null;
  }

  /**
   * This range's slice of version `version`, stored with the strategy's state for it: at a close,
   * Σwᵢ·Δᵢ over the accepted clients' chunks in acceptance order (the same float64 operations, per
   * parameter, as one object summing whole updates) and the strategy's step from the base slice;
   * for version 0, the operator's chunk. Deterministic, so a close that is retried computes the
   * same. Returns the bytes of its output past the first P − D (the next range's part begins with them).
   */
  async compute(job: RangeClose): Promise<{ carry: Uint8Array }> {
    if (this.outputRows(job.version) === 0) {
      const { work } = job;
      let next: Float32Array;
      let state: StrategyState | null = null;
      if (work.kind === 'copy') next = await this.readSlice(work.key, 0, job.length);
      else {
        const chunks = this.chunkReader(work.round, work.encoding);
        const base = () => this.readSlice(work.base.key, work.base.offset, job.length);
        ({ next, state } = await sumAndStep({ ...work, length: job.length }, chunks, base, this.readState(job.version - 1, job.length), accumulateWasm));
      }
      this.ctx.storage.transactionSync(() => {
        this.sql.exec(`DELETE FROM output_rows WHERE version <> ?`, job.version);
        writeChunks(bytesOf(next), (data, idx) => this.sql.exec(`INSERT INTO output_rows (version, idx, data) VALUES (?, ?, ?)`, job.version, idx, data));
        if (state) this.writeState(job.version, state);
      });
    }
    const out = this.readOutput(job.version, job.length);
    return { carry: out.slice(Math.min(out.length, job.partBytes - job.headBytes)) };
  }

  /** Krum's first pass: this range's squared distances between the clients' chunks, per stored piece (range-step.ts). */
  async distanceParts(round: number, clientIds: string[], length: number, encoding: UpdateEncoding): Promise<Float64Array> {
    return distanceParts(length, clientIds, this.chunkReader(round, encoding));
  }

  /** The stored chunks of `round`, read whole (sums) or one stored row at a time (the update-based rules). */
  private chunkReader(round: number, encoding: UpdateEncoding): ChunkReader {
    const rows = (clientId: string, idx?: number) =>
      this.sql.exec<{ data: ArrayBuffer }>(
        `SELECT data FROM chunk_rows WHERE round = ? AND client_id = ?${idx === undefined ? '' : ' AND idx = ?'} ORDER BY idx`,
        ...[round, clientId, ...(idx === undefined ? [] : [idx])],
      );
    return {
      whole: (clientId, into) => readUpdate(rows(clientId), into, `chunk of client ${clientId} in round ${round}`),
      piece: (clientId, start, n) => {
        const row = rows(clientId, start / UPDATE_CHUNK_FLOATS).toArray()[0];
        if (!row) throw new Error(`chunk of client ${clientId} in round ${round} has no parameters at ${start}`);
        const view = chunkView(encoding, row.data, n);
        return view.encoding === 'float32' ? view.data : decodeRange(view, 0, n);
      },
    };
  }

  /** Uploads this range's part of version `version` (part number = range index + 1), `prefix` first. */
  async writePart(args: PartJob): Promise<R2UploadedPart> {
    const out = this.readOutput(args.version, args.length);
    const { part } = partOf(args.prefix, out, args.partBytes, args.headBytes);
    return this.env.MODELS.resumeMultipartUpload(args.key, args.uploadId).uploadPart(args.partNumber, part);
  }

  /** The master's word that `round` is over and `version` (if any) published: its chunks and outputs go, the strategy state before it too. */
  async advance(round: number, version: number | null): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM chunk_rows WHERE round <= ?`, round);
      this.sql.exec(`DELETE FROM chunks WHERE round <= ?`, round);
      if (version !== null) {
        this.sql.exec(`DELETE FROM output_rows WHERE version <= ?`, version);
        this.sql.exec(`DELETE FROM strategy_rows WHERE version < ?`, version);
        this.sql.exec(`DELETE FROM strategy_steps WHERE version < ?`, version);
      }
    });
  }

  async destroy(): Promise<{ ok: true }> {
    await this.ctx.storage.deleteAll();
    return { ok: true };
  }

  private async readSlice(key: string, offset: number, length: number): Promise<Float32Array> {
    const object = await this.env.MODELS.get(key, { range: { offset, length: length * 4 } });
    if (!object) throw new Error(`weights ${key} missing from R2`);
    const bytes = new Uint8Array(await object.arrayBuffer());
    if (bytes.byteLength !== length * 4) throw new Error(`weights ${key} hold ${bytes.byteLength} bytes at ${offset}, expected ${length * 4}`);
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }

  private outputRows(version: number): number {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM output_rows WHERE version = ?`, version).one().n;
  }

  private readOutput(version: number, length: number): Uint8Array {
    const rows = this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM output_rows WHERE version = ? ORDER BY idx`, version);
    return readChunks(rows, new Uint8Array(length * 4), `range output of version ${version}`);
  }

  private readState(version: number, length: number): StrategyState | null {
    const row = this.sql.exec<{ step: number; names: string }>(`SELECT step, names FROM strategy_steps WHERE version = ?`, version).toArray()[0];
    if (!row) return null;
    const state: StrategyState = { step: row.step, vectors: {} };
    for (const name of JSON.parse(row.names) as string[]) {
      const rows = this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM strategy_rows WHERE version = ? AND name = ? ORDER BY idx`, version, name);
      state.vectors[name] = new Float32Array(readChunks(rows, new Uint8Array(length * 4), `strategy vector ${name}`).buffer);
    }
    return state;
  }

  private writeState(version: number, state: StrategyState): void {
    this.sql.exec(`DELETE FROM strategy_rows WHERE version = ?`, version);
    for (const [name, v] of Object.entries(state.vectors))
      writeChunks(bytesOf(v), (data, idx) =>
        this.sql.exec(`INSERT INTO strategy_rows (version, name, idx, data) VALUES (?, ?, ?, ?)`, version, name, idx, data),
      );
    this.sql.exec(
      `INSERT OR REPLACE INTO strategy_steps (version, step, names) VALUES (?, ?, ?)`,
      version,
      state.step,
      JSON.stringify(Object.keys(state.vectors)),
    );
  }
}
