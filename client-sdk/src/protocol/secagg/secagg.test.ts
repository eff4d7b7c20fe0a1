import { createCipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { rng } from '../../../../test/shared/random.ts';
import { hex, KAT_FIRST_64, KAT_SEED, KAT_SHA256_4096 } from '../../../../test/shared/secagg-kat.ts';
import { neighbours, secAggParams } from './graph.ts';
import { agree, generateKeyPair, open, seal, shareContext } from './keys.ts';
import { addMask, expandMask } from './prg.ts';
import { type Advertisement, type Revealed, type SealedShares, SecAggClient, SecAggRefusal, unmaskSum } from './protocol.ts';
import { dequantizeMean, fractionBits, meanErrorBound, quantize } from './quantize.ts';

const TASK = 'task-secagg';

describe('mask PRG (AES-256-CTR)', () => {
  it('gives the known answer, the same bytes as OpenSSL', async () => {
    const words = await expandMask(KAT_SEED, 1024);
    const bytes = new Uint8Array(words.buffer);
    expect(hex(bytes.subarray(0, 64))).toBe(KAT_FIRST_64);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(KAT_SHA256_4096);
    // Any seed: equal to OpenSSL's AES-256-CTR from a zero counter block.
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const ours = new Uint8Array((await expandMask(seed, 10_000)).buffer);
    const openssl = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16)).update(Buffer.alloc(40_000));
    expect(Buffer.from(ours).equals(openssl)).toBe(true);
  });

  it('is deterministic per seed and differs across seeds', async () => {
    const a = crypto.getRandomValues(new Uint8Array(32));
    const b = a.slice();
    b[31]! ^= 1;
    expect(await expandMask(a, 256)).toEqual(await expandMask(a.slice(), 256));
    const [x, y] = await Promise.all([expandMask(a, 256), expandMask(b, 256)]);
    expect(x.filter((w, i) => w === y[i]).length).toBeLessThan(3);
  });

  it('passes a uniformity check: byte histogram (χ², 255 df) and every bit position', async () => {
    const N = 1 << 20;
    const words = await expandMask(crypto.getRandomValues(new Uint8Array(32)), N);
    const bytes = new Uint8Array(words.buffer);
    const counts = new Float64Array(256);
    for (const b of bytes) counts[b]!++;
    const expected = bytes.length / 256;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    // χ²(255): mean 255, sd √510 ≈ 22.6; accept within ±5 sd.
    expect(chi2).toBeGreaterThan(255 - 5 * 22.6);
    expect(chi2).toBeLessThan(255 + 5 * 22.6);
    const ones = new Float64Array(32);
    for (const w of words) for (let bit = 0; bit < 32; bit++) ones[bit]! += (w >>> bit) & 1;
    const sd = 0.5 / Math.sqrt(N);
    for (const o of ones) expect(Math.abs(o / N - 0.5)).toBeLessThan(5 * sd);
  });

  it('rejects a seed that is not 256 bits, and masks cancel mod 2³²', async () => {
    await expect(expandMask(new Uint8Array(4), 8)).rejects.toThrow(/32 bytes/);
    const x = Uint32Array.from([0, 1, 0xffffffff, 12345]);
    const m = await expandMask(KAT_SEED, 4);
    const y = x.slice();
    addMask(y, m, 1);
    expect(y).not.toEqual(x);
    addMask(y, m, -1);
    expect(y).toEqual(x);
  });
});

describe('key agreement and share sealing', () => {
  for (const curve of ['X25519', 'P-256'] as const) {
    it(`${curve}: both sides derive the same key, distinct per purpose`, async () => {
      const [a, b] = await Promise.all([generateKeyPair(curve), generateKeyPair(curve)]);
      expect(a.curve).toBe(curve);
      expect(a.publicKey.length).toBe(curve === 'X25519' ? 32 : 65);
      const [ab, ba, other] = await Promise.all([agree(a, b.publicKey, 'mask'), agree(b, a.publicKey, 'mask'), agree(a, b.publicKey, 'share')]);
      expect(hex(ab)).toBe(hex(ba));
      expect(ab.length).toBe(32);
      expect(hex(other)).not.toBe(hex(ab));
    });
  }

  it('prefers X25519 where the runtime has it', async () => {
    expect((await generateKeyPair()).curve).toBe('X25519');
  });

  it('a sealed share opens only under its key and its (task, round, sender, recipient)', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const plain = crypto.getRandomValues(new Uint8Array(40));
    const ad = shareContext(TASK, 3, 'u', 'v');
    const sealed = await seal(key, plain, ad);
    expect(sealed.length).toBe(12 + 40 + 16);
    expect(await open(key, sealed, ad)).toEqual(plain);
    await expect(open(key, sealed, shareContext(TASK, 4, 'u', 'v'))).rejects.toThrow();
    await expect(open(key, sealed, shareContext(TASK, 3, 'u', 'w'))).rejects.toThrow();
    await expect(open(key, sealed, shareContext('other', 3, 'u', 'v'))).rejects.toThrow();
    const wrongKey = key.slice();
    wrongKey[0]! ^= 1;
    await expect(open(wrongKey, sealed, ad)).rejects.toThrow();
    const tampered = sealed.slice();
    tampered[20]! ^= 1;
    await expect(open(key, tampered, ad)).rejects.toThrow();
  });
});

describe('SecAgg+ graph parameters', () => {
  it('derives k = min(n − 1, 2⌈log₂ n⌉ + 2) (even unless complete) and t = ⌊k/2⌋ + 1', () => {
    expect(secAggParams(3)).toEqual({ k: 2, t: 2 });
    expect(secAggParams(10)).toEqual({ k: 9, t: 5 }); // complete graph
    expect(secAggParams(20)).toEqual({ k: 12, t: 7 });
    expect(secAggParams(100)).toEqual({ k: 16, t: 9 });
    expect(secAggParams(1000)).toEqual({ k: 22, t: 12 });
    expect(secAggParams(20, { k: 8 })).toEqual({ k: 8, t: 5 });
    expect(secAggParams(20, { t: 10 })).toEqual({ k: 12, t: 10 });
    expect(() => secAggParams(2)).toThrow(/at least 3/);
    expect(() => secAggParams(20, { k: 20 })).toThrow(/k must be/);
    expect(() => secAggParams(20, { t: 1 })).toThrow(/t must be/);
    expect(() => secAggParams(20, { t: 13 })).toThrow(/t must be/);
  });

  it('builds a symmetric k-regular neighbourhood', () => {
    const order = Array.from({ length: 20 }, (_, i) => `c${i}`);
    const g = neighbours(order, 12);
    for (const [u, ns] of g) {
      expect(ns.length).toBe(12);
      expect(ns).not.toContain(u);
      for (const v of ns) expect(g.get(v)).toContain(u);
    }
    const complete = neighbours(order.slice(0, 10), 9);
    for (const ns of complete.values()) expect(ns.length).toBe(9);
  });
});

describe('quantization', () => {
  it('picks the fraction bits so n · c · 2^f < 2³¹', () => {
    expect(fractionBits(10, 1)).toBe(24);
    expect(fractionBits(1000, 1)).toBe(21);
    expect(fractionBits(100, 100)).toBe(17);
    for (const [n, c] of [
      [1000, 1],
      [100, 100],
      [50, 3],
    ] as const)
      expect(n * c * 2 ** fractionBits(n, c)).toBeLessThan(2 ** 31);
  });

  it('round-trips a weighted mean within the stated bound, negative values included', () => {
    const random = rng(3);
    const q = { clipRange: 1, fractionBits: fractionBits(5, 1) };
    const deltas = Array.from({ length: 5 }, () => Float64Array.from({ length: 100 }, () => random() * 2 - 1));
    const weights = [0.2, 1, 0.5, 0.05, 0.7];
    const sum = new Uint32Array(101);
    for (let i = 0; i < 5; i++) addMask(sum, quantize(deltas[i]!, weights[i]!, q), 1);
    const mean = dequantizeMean(sum);
    const W = weights.reduce((a, b) => a + b);
    const bound = meanErrorBound(5, q.fractionBits, W, 1);
    for (let j = 0; j < 100; j++) {
      const exact = deltas.reduce((s, d, i) => s + weights[i]! * d[j]!, 0) / W;
      expect(Math.abs(mean[j]! - exact)).toBeLessThanOrEqual(bound);
    }
    expect(() => quantize([0], 0, q)).toThrow(/weight/);
    expect(() => quantize([0], 1.5, q)).toThrow(/weight/);
  });

  it('clips coordinates to the declared range', () => {
    const q = { clipRange: 0.5, fractionBits: 20 };
    const mean = dequantizeMean(quantize([3, -3, 0.25], 1, q));
    expect(Array.from(mean)).toEqual([0.5, -0.5, 0.25]);
  });
});

/** One SecAgg+ round among `n` in-process clients, with the server's side written out in the test. */
async function setUpRound(n: number, round = 1, seed = 11) {
  const random = rng(seed);
  const ids = Array.from({ length: n }, (_, i) => `client-${String(i).padStart(2, '0')}`);
  const { k, t } = secAggParams(n);
  // The server's random order of the round's clients (here seeded), and the graph from it.
  const order = [...ids].sort(() => random() - 0.5);
  const graph = neighbours(order, k);
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id, TASK, round)]));
  const roster: Advertisement[] = await Promise.all([...clients.values()].map((c) => c.advertise()));
  const outbox: SealedShares[] = (await Promise.all([...clients.values()].map((c) => c.shareKeys(roster, graph.get(c.id)!, t)))).flat();
  const inbox = (id: string) => outbox.filter((m) => m.to === id);
  const d = 64;
  const q = { clipRange: 1, fractionBits: fractionBits(n, 1) };
  const deltas = new Map(ids.map((id) => [id, Float64Array.from({ length: d }, () => random() * 1.6 - 0.8)]));
  const weights = new Map(ids.map((id) => [id, 0.1 + 0.9 * random()]));
  return { ids, k, t, graph, clients, roster, outbox, inbox, q, deltas, weights, d };
}

function plaintextMean(ids: readonly string[], deltas: Map<string, Float64Array>, weights: Map<string, number>, d: number) {
  const W = ids.reduce((s, id) => s + weights.get(id)!, 0);
  const out = new Float64Array(d);
  for (const id of ids) for (let j = 0; j < d; j++) out[j]! += (weights.get(id)! * deltas.get(id)![j]!) / W;
  return { mean: out, W };
}

describe('a SecAgg+ round', () => {
  for (const n of [10, 20]) {
    it(`n = ${n}: 1 client drops before its masked input, 2 after: the unmasked sum is the survivors' weighted mean`, async () => {
      const r = await setUpRound(n);
      expect(r.t).toBe(n === 10 ? 5 : 7);
      const [droppedBefore, ...droppedAfter] = [r.ids[3]!, r.ids[6]!, r.ids[8]!];
      const masked = new Map<string, Uint32Array>();
      for (const id of r.ids) {
        if (id === droppedBefore) continue;
        const x = quantize(r.deltas.get(id)!, r.weights.get(id)!, r.q);
        masked.set(id, await r.clients.get(id)!.maskedInput(x, r.inbox(id)));
      }
      // Each masked vector alone looks nothing like its quantized input.
      const x0 = quantize(r.deltas.get(r.ids[0]!)!, r.weights.get(r.ids[0]!)!, r.q);
      expect(masked.get(r.ids[0]!)!.filter((w, i) => w === x0[i]).length).toBeLessThan(2);

      const survivors = [...masked.keys()];
      const request = { survivors, dropped: [droppedBefore] };
      const revealed: Revealed[] = survivors.filter((id) => !droppedAfter.includes(id)).map((id) => r.clients.get(id)!.unmask(request));
      const sum = await unmaskSum({ taskId: TASK, round: 1, t: r.t, roster: r.roster, neighbours: r.graph, masked, dropped: [droppedBefore], revealed });
      const got = dequantizeMean(sum);
      const { mean, W } = plaintextMean(survivors, r.deltas, r.weights, r.d);
      const bound = meanErrorBound(survivors.length, r.q.fractionBits, W, 0.8);
      expect(bound).toBeLessThan(1e-6);
      for (let j = 0; j < r.d; j++) expect(Math.abs(got[j]! - mean[j]!)).toBeLessThanOrEqual(bound);
    });
  }

  it('fewer survivors answering than t: the unmasking refuses (the round must abort)', async () => {
    const r = await setUpRound(10);
    const masked = new Map<string, Uint32Array>();
    for (const id of r.ids) masked.set(id, await r.clients.get(id)!.maskedInput(quantize(r.deltas.get(id)!, 1, r.q), r.inbox(id)));
    const request = { survivors: r.ids, dropped: [] };
    const revealed = r.ids.slice(0, r.t - 1).map((id) => r.clients.get(id)!.unmask(request));
    await expect(unmaskSum({ taskId: TASK, round: 1, t: r.t, roster: r.roster, neighbours: r.graph, masked, dropped: [], revealed })).rejects.toThrow(
      /fewer than t = 5: abort the round/,
    );
  });

  it('the double-reveal guard: a client never gives both secrets of one peer', async () => {
    const r = await setUpRound(10);
    const [u, v, w] = r.ids as [string, string, string];
    const client = r.clients.get(u)!;
    await client.maskedInput(quantize(r.deltas.get(u)!, 1, r.q), r.inbox(u));
    // Both for the same peer in one request.
    expect(() => client.unmask({ survivors: [v, w], dropped: [v] })).toThrow(SecAggRefusal);
    let refusal: unknown;
    try {
      client.unmask({ survivors: [v], dropped: [v] });
    } catch (e) {
      refusal = e;
    }
    expect((refusal as SecAggRefusal).code).toBe('double_reveal');
    // One request, then the other secret in a second one.
    const first = client.unmask({ survivors: [v], dropped: [w] });
    expect(Object.keys(first.seedShares)).toEqual([v]);
    expect(Object.keys(first.keyShares)).toEqual([w]);
    expect(() => client.unmask({ survivors: [], dropped: [v] })).toThrow(/already revealed .* seed share; refusing its key share/);
    expect(() => client.unmask({ survivors: [w], dropped: [] })).toThrow(/already revealed .* key share; refusing its seed share/);
    // Asking again for what it already revealed is fine (a retried request).
    expect(client.unmask({ survivors: [v], dropped: [w] })).toEqual(first);
  });

  it('shares replayed into another round, or for another client, are refused', async () => {
    const r1 = await setUpRound(10, 1);
    const u = r1.ids[0]!;
    // The same clients, a new round: round 1's sealed shares for u do not open in round 2.
    const c2 = new SecAggClient(u, TASK, 2);
    const mine = await c2.advertise();
    const roster = r1.roster.map((a) => (a.id === u ? mine : a));
    await c2.shareKeys(roster, r1.graph.get(u)!, r1.t);
    await expect(c2.maskedInput(new Uint32Array(r1.d + 1), r1.inbox(u))).rejects.toMatchObject({ code: 'bad_share' });
    // Shares addressed to someone else.
    const other = r1.ids[1]!;
    await expect(r1.clients.get(u)!.maskedInput(new Uint32Array(r1.d + 1), r1.inbox(other))).rejects.toMatchObject({ code: 'not_a_neighbour' });
  });

  it('a curious server learns no single update from what it stores and what it is sent', async () => {
    const r = await setUpRound(10);
    const droppedBefore = r.ids[3]!;
    const masked = new Map<string, Uint32Array>();
    const inputs = new Map<string, Uint32Array>();
    for (const id of r.ids) {
      if (id === droppedBefore) continue;
      const x = quantize(r.deltas.get(id)!, r.weights.get(id)!, r.q);
      inputs.set(id, x);
      masked.set(id, await r.clients.get(id)!.maskedInput(x, r.inbox(id)));
    }
    const survivors = [...masked.keys()];
    const revealed = survivors.map((id) => r.clients.get(id)!.unmask({ survivors, dropped: [droppedBefore] }));

    // 1. The sealed shares it relays: it holds no c private key, and its own key pair opens none.
    const serverKeys = await generateKeyPair();
    let opened = 0;
    for (const m of r.outbox) {
      const sender = r.roster.find((a) => a.id === m.from)!;
      const guess = await agree(serverKeys, sender.cPublic, `fedge-secagg/share/${TASK}/1`);
      await open(guess, m.sealed, shareContext(TASK, 1, m.from, m.to)).then(
        () => opened++,
        () => undefined,
      );
    }
    expect(opened).toBe(0);

    // 2. What it can rebuild: every survivor's self-mask seed, the dropped client's mask key, and none of a survivor's mask key.
    for (const u of survivors) {
      expect(revealed.filter((x) => x.keyShares[u]).length).toBe(0);
      expect(revealed.filter((x) => x.seedShares[u]).length).toBeGreaterThanOrEqual(r.t);
    }

    // 3. Its best attempt on one survivor: its masked vector minus its self mask (rebuilt from
    //    shares) is still masked by the pairwise masks with its surviving neighbours (removing the
    //    one with the dropped client, whose key it rebuilt, leaves the rest): no better than noise.
    const { combine } = await import('shamir-secret-sharing');
    const u = survivors[0]!;
    const seed = await combine(revealed.flatMap((x) => (x.seedShares[u] ? [x.seedShares[u]!] : [])).slice(0, r.t));
    const attempt = masked.get(u)!.slice();
    addMask(attempt, await expandMask(seed, attempt.length), -1);
    const x = inputs.get(u)!;
    const close = attempt.filter((w, i) => Math.abs(((w - x[i]!) | 0) / 2 ** 32) < 1e-3).length;
    expect(close).toBeLessThan(3); // by chance ≈ 2e-3 · 65 coordinates
    // ... while the sum over all survivors does come out (the protocol works on the same data).
    const sum = await unmaskSum({ taskId: TASK, round: 1, t: r.t, roster: r.roster, neighbours: r.graph, masked, dropped: [droppedBefore], revealed });
    const { mean, W } = plaintextMean(survivors, r.deltas, r.weights, r.d);
    const got = dequantizeMean(sum);
    const bound = meanErrorBound(survivors.length, r.q.fractionBits, W, 0.8);
    for (let j = 0; j < r.d; j++) expect(Math.abs(got[j]! - mean[j]!)).toBeLessThanOrEqual(bound);

    // 4. Claiming a survivor dropped, to get its mask key as well, is refused by every client asked.
    for (const id of survivors.filter((v) => v !== u)) {
      expect(() => r.clients.get(id)!.unmask({ survivors: [], dropped: [u] })).toThrow(SecAggRefusal);
    }
  });
});
