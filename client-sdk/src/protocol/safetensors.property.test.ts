/**
 * Property-based tests of the wire codec (fast-check): any byte string decodes to a consistent
 * message or raises WireFormatError, and whatever encodes, decodes back to itself.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeTensors, encodeTensors, WireFormatError, type WireTensor } from './safetensors.ts';

/** A header the decoder must parse: small JSON objects with safetensors-like entries and noise. */
const headerish = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__metadata__', '__proto__', 'constructor', 'toString', 'a', 'b')),
  fc.oneof(
    fc.record({
      dtype: fc.constantFrom('F32', 'F16', 'I8', 'BF16', 3, null),
      shape: fc.array(fc.oneof(fc.integer({ min: -2, max: 6 }), fc.constant(1.5), fc.constant(null)), { maxLength: 4 }),
      data_offsets: fc.array(fc.integer({ min: -4, max: 64 }), { maxLength: 3 }),
    }),
    fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), fc.integer())),
    fc.jsonValue({ maxDepth: 2 }),
  ),
  { maxKeys: 5 },
);

function withHeader(header: unknown, dataBytes: number, padTo8 = true): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = padTo8 ? Math.ceil((8 + json.length) / 8) * 8 - 8 : json.length;
  const out = new Uint8Array(8 + n + dataBytes).fill(0x20, 8, 8 + n);
  new DataView(out.buffer).setUint32(0, n, true);
  out.set(json, 8);
  return out;
}

/** Decodes, and checks what came out is self-consistent; returns whether it decoded. */
function decodesConsistently(bytes: Uint8Array): boolean {
  try {
    const { tensors, metadata } = decodeTensors(bytes);
    const names = new Set<string>();
    for (const t of tensors) {
      expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
      expect(names.has(t.name)).toBe(false);
      names.add(t.name);
    }
    for (const v of Object.values(metadata)) expect(typeof v).toBe('string');
    return true;
  } catch (e) {
    if (e instanceof WireFormatError) return false;
    throw e;
  }
}

const tensorList = fc
  .uniqueArray(
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 16 }).filter((n) => n !== '__metadata__'),
      shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
    }),
    { selector: (t) => t.name, maxLength: 6 },
  )
  .chain((specs) =>
    fc.tuple(
      ...specs.map((s) =>
        fc
          .float32Array({ minLength: s.shape.reduce((a, b) => a * b, 1), maxLength: s.shape.reduce((a, b) => a * b, 1), noDefaultInfinity: false })
          .map((data): WireTensor => ({ ...s, data })),
      ),
    ),
  );

describe('safetensors codec, property-based (fast-check)', () => {
  it('decodes any byte string consistently or raises WireFormatError (10,000 random strings)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => void decodesConsistently(bytes)),
      { numRuns: 10_000, seed: 9 },
    );
  });

  it('decodes any plausible header consistently or raises WireFormatError (5,000 headers)', () => {
    fc.assert(
      fc.property(headerish, fc.integer({ min: 0, max: 64 }), fc.boolean(), (h, n, pad) => void decodesConsistently(withHeader(h, n, pad))),
      { numRuns: 5_000, seed: 10 },
    );
  });

  it('round-trips whatever it encodes: names, shapes, bit-exact values (including NaN payloads), metadata (2,000 messages)', () => {
    const meta = fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 4 });
    fc.assert(
      fc.property(tensorList, meta, (tensors, metadata) => {
        const out = decodeTensors(encodeTensors(tensors, metadata));
        const bits = (d: Float32Array) => Array.from(new Uint32Array(d.buffer, d.byteOffset, d.length));
        // Same names, shapes and bits; tensors with data come back in the order they were written
        // (empty ones carry no position: a JSON object may list names like "0" first).
        const byName = new Map(out.tensors.map((t) => [t.name, t]));
        expect(out.tensors.length).toBe(tensors.length);
        for (const t of tensors) expect([byName.get(t.name)?.shape, bits(byName.get(t.name)!.data)]).toEqual([t.shape, bits(t.data)]);
        expect(out.tensors.filter((t) => t.data.length > 0).map((t) => t.name)).toEqual(tensors.filter((t) => t.data.length > 0).map((t) => t.name));
        expect({ ...out.metadata }).toEqual(Object.keys(metadata).length > 0 ? { ...metadata } : {});
      }),
      { numRuns: 2_000, seed: 11 },
    );
  });

  it('decodes any mutation of a valid message consistently or raises WireFormatError (5,000 mutants)', () => {
    const mutant = fc.tuple(tensorList, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(), fc.boolean());
    fc.assert(
      fc.property(mutant, ([tensors, flips, cut, truncate]) => {
        const bytes = encodeTensors(tensors, { 'fedge.base_version': '0' });
        for (const [at, v] of flips) bytes[at % bytes.length] = v;
        void decodesConsistently(truncate ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes);
      }),
      { numRuns: 5_000, seed: 12 },
    );
  });
});
