/**
 * Compressed updates through the real routes and the task's Durable Object (workerd, D1, R2): a
 * task declares float16 or int8, the check-in says so, the aggregator sums the encoded values as
 * they came (stored compressed, rebuilt from storage after an eviction, across its 64K-parameter
 * chunks), and the published version is base + the weighted mean of the decoded updates. Bad
 * encodings get their codes; robust strategies read the decoded values.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { decodeRange, type EncodedView, encodeUpdate, INT8_BLOCK, type UpdateEncoding, viewUpdate } from '#protocol/encoding.ts';
import { UPDATE_META } from '#protocol/messages.ts';
import { decodeRawTensors, encodeRawTensors, encodeTensors, splitFlat } from '#protocol/safetensors.ts';
import type { TaskAggregator } from '../../aggregator/src/master/task-aggregator.ts';
import { rng } from '../shared/random.ts';
import { denseTopology } from '../shared/topology.ts';
import { adminJson, base64, type Client, checkIn, downloadWeights, registerClient, stubOf, submit } from './helpers.ts';

// 300 × 300 + 300 = 90,300 parameters: two storage chunks (65,536 each), 353 int8 blocks, the last partial.
const UNITS = 300;
const TENSORS = [
  { name: 'dense/kernel', shape: [UNITS, UNITS] },
  { name: 'dense/bias', shape: [UNITS] },
];
const N = UNITS * UNITS + UNITS;

function base(): Float32Array {
  return Float32Array.from({ length: N }, (_, i) => Math.sin(i) * 0.05);
}

async function encodedTask(
  updateEncoding: UpdateEncoding,
  clientsPerRound: number,
  extra: Record<string, unknown> = {},
): Promise<{ id: string; status: number; body: any }> {
  const res = await adminJson('/tasks', 'POST', {
    name: `encoded ${updateEncoding}`,
    modelTopology: denseTopology(UNITS, [{ name: 'dense', units: UNITS }]),
    initialWeights: base64(encodeTensors(splitFlat(TENSORS, base()))),
    rounds: { clientsPerRound, overSelection: 1, deadlineSeconds: 600, maxExamplesPerClient: 1000 },
    updateEncoding,
    ...extra,
  });
  const body = (await res.json()) as any;
  return { id: body.id, status: res.status, body };
}

function delta(seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: N }, (_, i) => (next() * 2 - 1) * (i < UNITS * UNITS ? 0.02 : 0.5));
}

function body(encoding: UpdateEncoding, d: Float32Array, numExamples: number): { bytes: Uint8Array; view: EncodedView } {
  const { tensors } = encodeUpdate(TENSORS, d, encoding, rng(numExamples));
  const bytes = encodeRawTensors(tensors, { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: String(numExamples) });
  return { bytes, view: viewUpdate(decodeRawTensors(bytes).tensors, TENSORS, encoding) };
}

async function joined(taskId: string, n: number, encoding: UpdateEncoding): Promise<Client[]> {
  const out: Client[] = [];
  for (let i = 0; i < n; i++) {
    const c = await registerClient(taskId);
    const a = await checkIn(taskId, c);
    expect(a.body.status).toBe('assigned');
    expect(a.body.updateEncoding).toBe(encoding);
    out.push(c);
  }
  return out;
}

function storedBytes(taskId: string): Promise<number> {
  return runInDurableObject(
    stubOf(taskId),
    async (_o: TaskAggregator, state) => state.storage.sql.exec<{ n: number }>('SELECT coalesce(sum(length(data)), 0) AS n FROM update_chunks').one().n,
  );
}

describe('compressed updates through the aggregator', () => {
  for (const encoding of ['float16', 'int8'] as const) {
    it(`${encoding}: summed as encoded, stored compressed, rebuilt after evictions; version = base + weighted mean of the decoded updates`, async () => {
      const { id, status, body: task } = await encodedTask(encoding, 4);
      expect(status).toBe(201);
      expect(task.updateEncoding).toBe(encoding);
      const clients = await joined(id, 4, encoding);
      const sent = clients.map((_, i) => ({ ...body(encoding, delta(10 + i), 50 + 100 * i), n: 50 + 100 * i }));
      const perUpdate = encoding === 'float16' ? 2 * N : N + 4 * Math.ceil(N / INT8_BLOCK);
      for (const [i, c] of clients.entries()) {
        const r = await submit(id, c, 1, sent[i]!.bytes);
        expect(r.status).toBe(200);
        expect(r.body.numExamples).toBe(sent[i]!.n);
        if (i === 1) {
          // Stored as it came: 2 bytes a parameter, or 1 plus the block scales (float32 would be 4).
          expect(await storedBytes(id)).toBe(2 * perUpdate);
          await evictDurableObject(stubOf(id)); // the sum is rebuilt from the stored chunks
        }
      }
      await runDurableObjectAlarm(stubOf(id));
      const next = await downloadWeights(id, 1);
      const b = base();
      const total = sent.reduce((a, s) => a + s.n, 0);
      const decoded = sent.map((s) => decodeRange(s.view, 0, N));
      let worst = 0;
      let moved = 0;
      for (let j = 0; j < N; j++) {
        const mean = sent.reduce((a, s, k) => a + s.n * decoded[k]![j]!, 0) / total;
        worst = Math.max(worst, Math.abs(next[j]! - Math.fround(b[j]! + mean)) / Math.max(2 ** -126, Math.abs(next[j]!)));
        if (next[j] !== b[j]) moved++;
      }
      expect(worst).toBeLessThanOrEqual(2 ** -23); // float32 rounding of base + mean, nothing more
      expect(moved).toBeGreaterThan(N * 0.99);
      expect(await storedBytes(id)).toBe(0);
    });
  }

  it('refuses a float32 update, a missing or malformed scales tensor, a non-finite float16; secure aggregation needs float32', async () => {
    const { id: i8 } = await encodedTask('int8', 3);
    const [a] = await joined(i8, 1, 'int8');
    const f32 = body('float32', delta(1), 10).bytes;
    const r1 = await submit(i8, a!, 1, f32);
    expect([r1.status, r1.body.error.code]).toEqual([422, 'tensor_mismatch']);
    expect(r1.body.error.message).toMatch(/is F32; this task takes int8 updates/);
    const { tensors } = encodeUpdate(TENSORS, delta(2), 'int8');
    const noScales = encodeRawTensors(tensors.slice(1), { [UPDATE_META.baseVersion]: '0', [UPDATE_META.numExamples]: '10' });
    expect((await submit(i8, a!, 1, noScales)).body.error.code).toBe('tensor_mismatch');
    const badScale = encodeRawTensors(
      [{ ...tensors[0]!, bytes: new Uint8Array(new Float32Array(Math.ceil(N / INT8_BLOCK)).fill(Number.POSITIVE_INFINITY).buffer) }, ...tensors.slice(1)],
      {
        [UPDATE_META.baseVersion]: '0',
        [UPDATE_META.numExamples]: '10',
      },
    );
    const r2 = await submit(i8, a!, 1, badScale);
    expect([r2.status, r2.body.error.code]).toEqual([422, 'non_finite']);

    const { id: f16 } = await encodedTask('float16', 3);
    const [c] = await joined(f16, 1, 'float16');
    const h = encodeUpdate(TENSORS, delta(3), 'float16').tensors;
    const inf = new Uint16Array(h[1]!.bytes.slice().buffer);
    inf[7] = 0x7c00;
    const withInf = encodeRawTensors([h[0]!, { ...h[1]!, bytes: new Uint8Array(inf.buffer) }], {
      [UPDATE_META.baseVersion]: '0',
      [UPDATE_META.numExamples]: '10',
    });
    const r3 = await submit(f16, c!, 1, withInf);
    expect([r3.status, r3.body.error.code]).toEqual([422, 'non_finite']);
    expect(r3.body.error.message).toMatch(new RegExp(`flat index ${UNITS * UNITS + 7}`));
    // Nothing was accepted: every refusal left the round as it was.
    const view = (await (await adminJson(`/tasks/${f16}`, 'GET')).json()) as any;
    expect(view.currentRound.accepted).toBe(0);

    const secure = await encodedTask('int8', 5, { secureAggregation: {}, rounds: { clientsPerRound: 5, minClients: 3, overSelection: 1 } });
    expect([secure.status, secure.body.error.code]).toEqual([400, 'invalid_secure_aggregation']);
    expect(secure.body.error.message).toMatch(/updateEncoding must be float32/);
    const unknown = await encodedTask('bfloat16' as UpdateEncoding, 3);
    expect([unknown.status, unknown.body.error.code]).toEqual([400, 'invalid_request']);
  });

  it('a robust strategy (median) reads the decoded int8 values', async () => {
    const { id } = await encodedTask('int8', 3, { strategy: { name: 'median' } });
    const clients = await joined(id, 3, 'int8');
    const sent = clients.map((_, i) => body('int8', delta(20 + i), 100));
    for (const [i, c] of clients.entries()) expect((await submit(id, c, 1, sent[i]!.bytes)).status).toBe(200);
    await runDurableObjectAlarm(stubOf(id));
    const next = await downloadWeights(id, 1);
    const b = base();
    const decoded = sent.map((s) => decodeRange(s.view, 0, N));
    for (const j of [0, 1, 65_535, 65_536, 65_537, N - 1]) {
      const median = decoded.map((d) => d[j]!).sort((x, y) => x - y)[1]!;
      expect(next[j]).toBe(Math.fround(b[j]! + median));
    }
  });
});
