/**
 * @module What a round keeps in the object's storage besides its ledger: the updates themselves
 * (in 64K-parameter chunks, in the encoding they were summed in: float32, float16, or int8 with
 * each chunk's scales before its values), the checkpoint of the running sum, and the strategy's
 * state; and the running sum rebuilt from them after an eviction, in acceptance order, so bit for bit.
 */
import { decodeRange, type EncodedView, INT8_BLOCK, type UpdateEncoding } from '#protocol/encoding.ts';
import { createRunningSum, type RunningSum } from '../kernels/running-sum.ts';
import { accumulateWasm } from '../kernels/wasm-worker.ts';
import type { StrategyState } from '../strategies/index.ts';
import { bytesOf, readChunks, writeChunks } from './chunks.ts';
import type { Ledger } from './ledger.ts';

/**
 * Stored updates are chunked finer than other values (64K parameters, 256 KiB): update-based
 * strategies read one chunk of every update at a time, so their memory is k × 256 KiB (25 MiB for 100).
 */
export const UPDATE_CHUNK_FLOATS = 65_536;

interface Checkpoint {
  round: number;
  seq: number;
  totalWeight: number;
  count: number;
  chunks: number;
}

export class RoundStore {
  private readonly sql: SqlStorage;
  private readonly ledger: Ledger;
  private readonly numParams: number;

  private readonly encoding: UpdateEncoding;

  /** `encoding`: how the task's updates are summed and stored (see storedEncoding). */
  constructor(sql: SqlStorage, ledger: Ledger, numParams: number, encoding: UpdateEncoding = 'float32') {
    this.sql = sql;
    this.ledger = ledger;
    this.numParams = numParams;
    this.encoding = encoding;
  }

  /** Inside a transaction: stores one accepted update (its Δ as it joins the sum), chunk by chunk. */
  storeUpdate(round: number, seq: number, update: EncodedView): void {
    if (update.encoding !== this.encoding || update.length !== this.numParams)
      throw new Error(`a ${update.encoding} update of ${update.length} values for a store of ${this.encoding} × ${this.numParams}`);
    for (let idx = 0, start = 0; start < this.numParams; idx++, start += UPDATE_CHUNK_FLOATS) {
      const chunk = encodedChunk(update, start, Math.min(start + UPDATE_CHUNK_FLOATS, this.numParams));
      this.sql.exec(`INSERT INTO update_chunks (round, seq, idx, data) VALUES (?, ?, ?, ?)`, round, seq, idx, chunk);
    }
  }

  /** How many updates of the round are stored (not yet covered by a checkpoint). */
  storedUpdates(round: number): number {
    return this.sql.exec<{ n: number }>(`SELECT count(DISTINCT seq) AS n FROM update_chunks WHERE round = ?`, round).one().n;
  }

  /** Parameters [start, end) of every stored update of the round, in acceptance order (one chunk: start is chunk-aligned). */
  readUpdateRange(round: number, start: number, end: number): Float32Array[] {
    const idx = start / UPDATE_CHUNK_FLOATS;
    if (!Number.isInteger(idx) || end - start > UPDATE_CHUNK_FLOATS) throw new Error(`range [${start}, ${end}) is not one stored chunk`);
    const rows = this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM update_chunks WHERE round = ? AND idx = ? ORDER BY seq`, round, idx).toArray();
    return rows.map(({ data }) => {
      const want = chunkBytes(this.encoding, end - start);
      if (data.byteLength !== want) throw new Error(`stored chunk ${round}/${idx} is ${data.byteLength} bytes, expected ${want}`);
      const view = chunkView(this.encoding, data, end - start);
      return view.encoding === 'float32' ? view.data : decodeRange(view, 0, end - start);
    });
  }

  /** Inside a transaction: replaces the checkpoint with the current sum (covering updates ≤ seq) and drops the updates it covers. */
  writeCheckpoint(round: number, seq: number, acc: RunningSum): void {
    this.sql.exec(`DELETE FROM checkpoint_chunks`);
    const chunks = writeChunks(bytesOf(acc.sum()), (chunk, idx) => this.sql.exec(`INSERT INTO checkpoint_chunks (idx, data) VALUES (?, ?)`, idx, chunk));
    const cp: Checkpoint = { round, seq, totalWeight: acc.totalWeight, count: acc.count, chunks };
    this.ledger.set('checkpoint', JSON.stringify(cp));
    this.sql.exec(`DELETE FROM update_chunks WHERE round = ? AND seq <= ?`, round, seq);
  }

  /**
   * The running sum of `round`, rebuilt from its checkpoint plus the updates stored after it, in
   * acceptance order: the same operations in the same order as when they arrived. `reuse` keeps
   * the memory of a previous sum.
   */
  rebuildSum(round: number, reuse: RunningSum | null): RunningSum {
    const acc = reuse ?? createRunningSum(this.numParams, { wasm: accumulateWasm });
    acc.reset();
    let fromSeq = 0;
    const raw = this.ledger.get('checkpoint');
    const cp = raw ? (JSON.parse(raw) as Checkpoint) : null;
    if (cp && cp.round === round) {
      const sum = readChunks(
        this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM checkpoint_chunks ORDER BY idx`),
        new Uint8Array(this.numParams * 8),
        'the checkpoint',
      );
      acc.load(new Float64Array(sum.buffer), cp.totalWeight, cp.count);
      fromSeq = cp.seq;
    }
    const update = emptyUpdate(this.encoding, this.numParams);
    for (const { seq, num_examples, weight } of this.ledger.after(round, fromSeq)) {
      const rows = this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM update_chunks WHERE round = ? AND seq = ? ORDER BY idx`, round, seq);
      readUpdate(rows, update, `stored update ${round}/${seq}`);
      acc.addEncoded(update, weight ?? num_examples);
    }
    return acc;
  }

  /** The strategy's state (momentum, moments), or null before the first round. */
  readStrategyState(): StrategyState | null {
    const raw = this.ledger.get('strategy_state');
    if (!raw) return null;
    const { step, vectors } = JSON.parse(raw) as { step: number; vectors: string[] };
    const out: StrategyState = { step, vectors: {} };
    for (const name of vectors) {
      const rows = this.sql.exec<{ data: ArrayBuffer }>(`SELECT data FROM strategy_chunks WHERE name = ? ORDER BY idx`, name);
      out.vectors[name] = new Float32Array(readChunks(rows, new Uint8Array(this.numParams * 4), `strategy vector ${name}`).buffer);
    }
    return out;
  }

  /** Inside a transaction: replaces the stored strategy state. */
  writeStrategyState(state: StrategyState): void {
    this.sql.exec(`DELETE FROM strategy_chunks`);
    for (const [name, v] of Object.entries(state.vectors)) {
      writeChunks(bytesOf(v), (chunk, idx) => this.sql.exec(`INSERT INTO strategy_chunks (name, idx, data) VALUES (?, ?, ?)`, name, idx, chunk));
    }
    this.ledger.set('strategy_state', JSON.stringify({ step: state.step, vectors: Object.keys(state.vectors) }));
  }

  /** Inside a transaction: drops a finished round's updates and the checkpoint. */
  clear(round: number): void {
    this.sql.exec(`DELETE FROM update_chunks WHERE round <= ?`, round);
    this.sql.exec(`DELETE FROM checkpoint_chunks`);
    this.ledger.delete('checkpoint');
  }
}

/** Bytes of a stored chunk of `n` parameters. */
function chunkBytes(encoding: UpdateEncoding, n: number): number {
  if (encoding === 'float32') return n * 4;
  if (encoding === 'float16') return n * 2;
  return Math.ceil(n / INT8_BLOCK) * 4 + n;
}

/** Parameters [start, end) of an update as one stored chunk (int8: the chunk's scales, then its values). */
export function encodedChunk(u: EncodedView, start: number, end: number): ArrayBuffer {
  if (u.encoding !== 'int8') return u.data.slice(start, end).buffer as ArrayBuffer;
  const scales = u.scales.subarray(start / INT8_BLOCK, Math.ceil(end / INT8_BLOCK));
  const out = new Uint8Array(chunkBytes('int8', end - start));
  out.set(new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength));
  out.set(new Uint8Array(u.data.buffer, u.data.byteOffset + start, end - start), scales.byteLength);
  return out.buffer;
}

/** A stored chunk of `n` parameters read as an encoded update of its own. */
function chunkView(encoding: UpdateEncoding, data: ArrayBuffer, n: number): EncodedView {
  if (encoding === 'float32') return { encoding, length: n, data: new Float32Array(data) };
  if (encoding === 'float16') return { encoding, length: n, data: new Uint16Array(data) };
  const blocks = Math.ceil(n / INT8_BLOCK);
  return { encoding, length: n, scales: new Float32Array(data, 0, blocks), data: new Int8Array(data, blocks * 4, n) };
}

/** An update of `n` parameters to read stored chunks into. */
export function emptyUpdate(encoding: UpdateEncoding, n: number): EncodedView {
  if (encoding === 'float32') return { encoding, length: n, data: new Float32Array(n) };
  if (encoding === 'float16') return { encoding, length: n, data: new Uint16Array(n) };
  return { encoding, length: n, data: new Int8Array(n), scales: new Float32Array(Math.ceil(n / INT8_BLOCK)) };
}

/** Fills `into` from a stored update's chunks, in index order; each must be the size its place needs. */
export function readUpdate(rows: Iterable<{ data: ArrayBuffer }>, into: EncodedView, what: string): void {
  let start = 0;
  for (const { data } of rows) {
    const end = Math.min(start + UPDATE_CHUNK_FLOATS, into.length);
    if (start >= into.length || data.byteLength !== chunkBytes(into.encoding, end - start))
      throw new Error(`${what}: chunk at ${start} is ${data.byteLength} bytes`);
    const chunk = chunkView(into.encoding, data, end - start);
    if (into.encoding === 'int8' && chunk.encoding === 'int8') {
      into.data.set(chunk.data, start);
      into.scales.set(chunk.scales, start / INT8_BLOCK);
    } else (into.data as Float32Array | Uint16Array).set(chunk.data as Float32Array | Uint16Array, start);
    start = end;
  }
  if (start !== into.length) throw new Error(`${what} holds ${start} of ${into.length} parameters`);
}
