/**
 * Property-based tests of update validation (fast-check): whatever bytes arrive, the answer is a
 * valid update or a refusal with a stable code; never a thrown error (which would be a 500).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '#protocol/codes.ts';
import { encodeTensors } from '#protocol/safetensors.ts';
import { firstNonFinite } from '../kernels/running-sum.ts';
import type { TaskSpec } from './task-spec.ts';
import { validateUpdate } from './update-validation.ts';

const spec: TaskSpec = {
  taskId: 't',
  tensors: [
    { name: 'dense/kernel', shape: [4, 3] },
    { name: 'dense/bias', shape: [3] },
  ],
  numParams: 15,
  rules: { clientsPerRound: 3, minClients: 3, deadlineSeconds: 60, overSelection: 1, maxExamplesPerClient: 1000 },
};

const check = (d: Float32Array) => firstNonFinite(d);

/** Near-valid updates: the right tensors or not, numbers or junk in the metadata. */
const update = fc.record({
  names: fc.constantFrom(
    ['dense/kernel', 'dense/bias'],
    ['dense/bias', 'dense/kernel'],
    ['dense/kernel'],
    ['dense/kernel', 'constructor'],
    ['__proto__', 'dense/bias'],
    ['dense/kernel', 'dense/bias', 'x'],
  ),
  kernelShape: fc.constantFrom([4, 3], [3, 4], [12], [4, 3, 1]),
  values: fc.float32Array({ minLength: 15, maxLength: 15 }),
  base: fc.oneof(fc.constant('0'), fc.constant('1'), fc.string({ maxLength: 4 }), fc.constant(undefined)),
  examples: fc.oneof(fc.integer({ min: -5, max: 2000 }).map(String), fc.string({ maxLength: 6 }), fc.constant('1e3'), fc.constant(undefined)),
  metrics: fc.oneof(
    fc.constant(undefined),
    fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 8 }),
    fc.dictionary(fc.string({ maxLength: 70 }), fc.double()).map((v) => JSON.stringify(v)),
  ),
});

describe('update validation, property-based (fast-check)', () => {
  it('answers every near-valid update with an accept or a stable code, and accepts exactly the valid ones (3,000 updates)', () => {
    fc.assert(
      fc.property(update, (u) => {
        const metadata: Record<string, string> = {};
        if (u.base !== undefined) metadata['fedge.base_version'] = u.base;
        if (u.examples !== undefined) metadata['fedge.num_examples'] = u.examples;
        if (u.metrics !== undefined) metadata['fedge.metrics'] = u.metrics;
        const shapes = new Map<string, readonly number[]>([
          ['dense/kernel', u.kernelShape],
          ['dense/bias', [3]],
        ]);
        let pos = 0;
        const tensors = u.names.map((name) => {
          const shape = [...(shapes.get(name) ?? [3])];
          const n = shape.reduce((a, b) => a * b, 1);
          const data = u.values.slice(pos % 15, (pos % 15) + n);
          pos += n;
          return { name, shape, data: data.length === n ? data : new Float32Array(n) };
        });
        const r = validateUpdate(encodeTensors(tensors, metadata), spec, 0, check);
        if (!r.ok) {
          expect(Object.hasOwn(ERROR_STATUS, r.code)).toBe(true);
          expect(r.message.length).toBeGreaterThan(0);
          return;
        }
        // Accepted: then it really was valid.
        expect(new Set(u.names)).toEqual(new Set(['dense/kernel', 'dense/bias']));
        expect(u.kernelShape).toEqual([4, 3]);
        expect(u.base).toBe('0');
        expect(Number(u.examples)).toBeGreaterThanOrEqual(1);
        expect(Number(u.examples)).toBeLessThanOrEqual(1000);
        expect((r.update.data as Float32Array).every(Number.isFinite)).toBe(true);
        for (const k of Object.keys(r.metrics ?? {})) expect(k).toMatch(/^[A-Za-z]/);
      }),
      { numRuns: 3_000, seed: 21 },
    );
  });

  it('answers arbitrary bytes with a stable code (5,000 byte strings)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const r = validateUpdate(bytes, spec, 0, check);
        expect(r.ok).toBe(false);
        if (!r.ok) expect(Object.hasOwn(ERROR_STATUS, r.code)).toBe(true);
      }),
      { numRuns: 5_000, seed: 22 },
    );
  });
});
