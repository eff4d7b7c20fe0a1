/**
 * Secure aggregation's client-side primitives inside workerd (BoringSSL's WebCrypto): the mask PRG
 * gives the same bytes as OpenSSL in Node (the known answer), X25519 is there, and a whole
 * in-process round unmasks to the survivors' weighted mean.
 */
import { describe, expect, it } from 'vitest';
import { neighbours, secAggParams } from '../../client-sdk/src/protocol/secagg/graph.ts';
import { generateKeyPair } from '../../client-sdk/src/protocol/secagg/keys.ts';
import { expandMask } from '../../client-sdk/src/protocol/secagg/prg.ts';
import { SecAggClient, unmaskSum } from '../../client-sdk/src/protocol/secagg/protocol.ts';
import { dequantizeMean, fractionBits, meanErrorBound, quantize } from '../../client-sdk/src/protocol/secagg/quantize.ts';
import { hex, KAT_FIRST_64, KAT_SEED, KAT_SHA256_4096 } from '../shared/secagg-kat.ts';

describe('secure aggregation in workerd', () => {
  it('the mask PRG gives the known answer', async () => {
    const bytes = new Uint8Array((await expandMask(KAT_SEED, 1024)).buffer);
    expect(hex(bytes.subarray(0, 64))).toBe(KAT_FIRST_64);
    expect(hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)))).toBe(KAT_SHA256_4096);
  });

  it('has X25519 (the preferred curve)', async () => {
    expect((await generateKeyPair()).curve).toBe('X25519');
  });

  it('a round of 6 with one dropout before its masked input unmasks to the weighted mean', async () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const { k, t } = secAggParams(ids.length);
    const graph = neighbours(ids, k);
    const clients = ids.map((id) => new SecAggClient(id, 'task-w', 1));
    const roster = await Promise.all(clients.map((c) => c.advertise()));
    const outbox = (await Promise.all(clients.map((c) => c.shareKeys(roster, graph.get(c.id)!, t)))).flat();
    const q = { clipRange: 1, fractionBits: fractionBits(ids.length, 1) };
    const delta = (i: number) => Float64Array.from({ length: 16 }, (_, j) => Math.sin(i * 16 + j) * 0.9);
    const weight = (i: number) => (i + 1) / ids.length;
    const masked = new Map<string, Uint32Array>();
    for (const [i, c] of clients.entries()) {
      if (c.id === 'c') continue;
      masked.set(
        c.id,
        await c.maskedInput(
          quantize(delta(i), weight(i), q),
          outbox.filter((m) => m.to === c.id),
        ),
      );
    }
    const survivors = [...masked.keys()];
    const revealed = clients.filter((c) => masked.has(c.id)).map((c) => c.unmask({ survivors, dropped: ['c'] }));
    const got = dequantizeMean(await unmaskSum({ taskId: 'task-w', round: 1, t, roster, neighbours: graph, masked, dropped: ['c'], revealed }));
    const live = [0, 1, 3, 4, 5];
    const W = live.reduce((s, i) => s + weight(i), 0);
    const bound = meanErrorBound(live.length, q.fractionBits, W, 0.9);
    for (let j = 0; j < 16; j++) {
      const exact = live.reduce((s, i) => s + weight(i) * delta(i)[j]!, 0) / W;
      expect(Math.abs(got[j]! - exact)).toBeLessThanOrEqual(bound);
    }
  });
});
