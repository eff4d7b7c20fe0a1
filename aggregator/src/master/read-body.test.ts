import { describe, expect, it } from 'vitest';
import { type BodyLimits, readBody } from './read-body.ts';

const limits: BodyLimits = { cap: 1_000, declared: null, idleMs: 150, minBytesPerSecond: 1_000, graceMs: 300 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stream that sends `chunks` (byte counts) with `gapMs` between them, then ends (or stays open). */
function paced(chunks: number[], gapMs: number, end = true): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async start(controller) {
      for (const n of chunks) {
        controller.enqueue(new Uint8Array(n).fill(7));
        await sleep(gapMs);
      }
      if (end) controller.close();
    },
  });
}

describe('readBody', () => {
  it('reads a body that arrives in pieces', async () => {
    const r = await readBody(paced([100, 200, 300], 5), limits);
    expect(r.ok && [r.body.byteLength, r.body.every((b) => b === 7)]).toEqual([600, true]);
  });

  it('cuts off a body that stalls for the idle limit', async () => {
    const t = Date.now();
    const r = await readBody(paced([8], 0, false), { ...limits, graceMs: 10_000, minBytesPerSecond: 1 });
    expect(r).toMatchObject({ ok: false, reason: 'too_slow', received: 8 });
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    expect(Date.now() - t).toBeLessThan(1_000);
  });

  it('cuts off a body that trickles below the minimum rate once the grace period is over', async () => {
    // 10 bytes every 100 ms (100 B/s) never idles 150 ms, but falls below 1,000 B/s after the 300 ms grace.
    const r = await readBody(paced(Array(50).fill(10), 100), limits);
    expect(r).toMatchObject({ ok: false, reason: 'too_slow' });
    if (!r.ok) expect(r.elapsedMs).toBeLessThan(700);
  });

  it('refuses a body over the cap as soon as it passes it, and a declared length over the cap at once', async () => {
    expect(await readBody(paced([600, 600, 600], 1), limits)).toMatchObject({ ok: false, reason: 'too_large', received: 1_200 });
    expect(await readBody(paced([10], 1, false), { ...limits, declared: 1_001 })).toMatchObject({ ok: false, reason: 'too_large', received: 0 });
  });

  it('reports a stream that breaks off', async () => {
    const broken = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new Uint8Array(5));
        await sleep(5);
        controller.error(new Error('connection reset'));
      },
    });
    expect(await readBody(broken, limits)).toMatchObject({ ok: false, reason: 'broken', received: 5 });
  });
});
