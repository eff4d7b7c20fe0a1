/**
 * @module What a round keeps in the object's storage besides its ledger: the updates themselves
 * (in 64K-parameter chunks, in the encoding they were summed in: float32, float16, or int8 with
 * each chunk's scales before its values), the checkpoint of the running sum, and the strategy's
 * state; and the running sum rebuilt from them after an eviction, in acceptance order, so bit for bit.
 */
import { decodeRange, type EncodedView, type UpdateEncoding } from '#protocol/encoding.ts';
import { createRunningSum, type RunningSum } from '../kernels/running-sum.ts';
import { accumulateWasm } from '../kernels/wasm-worker.ts';
import type { StrategyState } from '../strategies/index.ts';
import { bytesOf, chunkBytes, chunkView, emptyUpdate, encodedChunk, readChunks, readUpdate, UPDATE_CHUNK_FLOATS, writeChunks } from './chunks.ts';
import type { Ledger } from './ledger.ts';

export { UPDATE_CHUNK_FLOATS } from './chunks.ts';

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
