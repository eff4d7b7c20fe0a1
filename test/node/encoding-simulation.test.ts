/**
 * Compressed updates through the real platform (wrangler dev) with real tfjs on real MNIST: the
 * same seeded clients train the same Δs, sent as float32, float16 and int8 through the SDK's
 * `participate()`; the compressed runs learn as float32 does, at 2× and ~4× fewer update bytes.
 * 30 rounds of each: test/sim/README.md.
 */
import { describe, expect, inject, it } from 'vitest';
import type { UpdateEncoding } from '../../client-sdk/src/protocol/encoding.ts';
import { type RoundReport, simulate } from '../sim/runner.ts';

const baseUrl = inject('fedgeUrl');
const adminToken = inject('fedgeAdminToken');

describe('compressed updates on real MNIST with virtual clients (784-64-10)', () => {
  it('float16 and int8 learn as float32 does, with 2× and ~4× fewer bytes up', async () => {
    const run = async (updateEncoding: UpdateEncoding) => {
      const reports: RoundReport[] = [];
      await simulate({
        baseUrl,
        adminToken,
        clients: 10,
        fraction: 0.5,
        rounds: 2,
        partition: 'iid',
        model: 'mlp',
        epochs: 1,
        batchSize: 10,
        learningRate: 0.1,
        seed: 3,
        threads: 0,
        updateEncoding,
        onRound: (r) => reports.push(r),
      });
      return reports;
    };
    const f32 = await run('float32');
    const f16 = await run('float16');
    const i8 = await run('int8');
    const line = (rs: RoundReport[]) => rs.map((r) => `r${r.round}=${r.accuracy.toFixed(4)} up=${(r.bytesUp / 1e6).toFixed(3)}MB`).join(' ');
    console.log(`float32 ${line(f32)}\nfloat16 ${line(f16)}\nint8    ${line(i8)}`);
    for (const rs of [f16, i8]) {
      expect(rs.map((r) => r.version)).toEqual([1, 2]);
      for (const [i, r] of rs.entries()) expect(Math.abs(r.accuracy - f32[i]!.accuracy)).toBeLessThanOrEqual(0.01);
    }
    // Up: the update bodies (50,890 parameters) and the small check-in and metadata requests.
    for (const [i, r] of f16.entries()) expect(r.bytesUp / f32[i]!.bytesUp).toBeLessThan(0.52);
    for (const [i, r] of i8.entries()) expect(r.bytesUp / f32[i]!.bytesUp).toBeLessThan(0.27);
  }, 180_000);
});
