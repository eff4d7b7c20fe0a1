/**
 * @module Reading an update body from a stream into one buffer, within its cap and its time.
 *
 * A body that passes the cap is refused as soon as it does. One that stalls (no bytes for
 * `idleMs`) or trickles (fewer than `minBytesPerSecond` on average once `graceMs` has passed) is
 * cut off, so a client holding a reservation of the upload budget cannot keep it by sending
 * nothing: every upload either moves at a useful rate or ends.
 */

export interface BodyLimits {
  /** Largest body accepted, bytes. */
  cap: number;
  /** The declared Content-Length, if any (sizes the buffer; a larger declaration is refused at once). */
  declared: number | null;
  /** Longest wait for the next bytes, ms. */
  idleMs: number;
  /** Slowest average rate accepted once `graceMs` has passed, bytes per second. */
  minBytesPerSecond: number;
  graceMs: number;
  /** Where to read a body of the declared length (e.g. a staging slot of the running sum's memory); default a new buffer. */
  into?: ((byteLength: number) => Uint8Array | null) | undefined;
}

export type BodyRead = { ok: true; body: Uint8Array } | { ok: false; reason: 'too_large' | 'too_slow' | 'broken'; received: number; elapsedMs: number };

/** Reads a body into one buffer, or says why it stopped (and cancels the stream). */
export async function readBody(stream: ReadableStream<Uint8Array>, limits: BodyLimits, now: () => number = Date.now): Promise<BodyRead> {
  const start = now();
  const reader = stream.getReader();
  let len = 0;
  let last = start;
  let timedOut = false;
  const stop = async (reason: 'too_large' | 'too_slow' | 'broken', received: number): Promise<BodyRead> => {
    await reader.cancel().catch(() => {});
    return { ok: false, reason, received, elapsedMs: now() - start };
  };
  if (limits.declared !== null && limits.declared > limits.cap) return stop('too_large', 0);
  // The next bytes must come before the idle limit, and before the total falls below the rate.
  const deadline = () => Math.min(last + limits.idleMs, start + limits.graceMs + (len / limits.minBytesPerSecond) * 1000);
  // One watchdog, re-armed only when it fires early, rather than a timer raced against every read:
  // a cleared timer can outlive its clearTimeout, and a raced one would keep its chunk alive with it.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    timer = setTimeout(
      () => {
        if (now() < deadline()) return arm();
        timedOut = true;
        void reader.cancel().catch(() => {}); // the pending read resolves as done
      },
      Math.max(1, deadline() - now()),
    );
  };
  arm();
  try {
    let buf = (limits.declared !== null ? limits.into?.(limits.declared) : null) ?? new Uint8Array(limits.declared ?? 64 * 1024);
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch {
        return timedOut ? stop('too_slow', len) : stop('broken', len);
      }
      if (timedOut) return stop('too_slow', len);
      if (chunk.done) break;
      const value = chunk.value;
      if (len + value.byteLength > limits.cap) return stop('too_large', len + value.byteLength);
      if (len + value.byteLength > buf.byteLength) {
        const grown = new Uint8Array(Math.min(limits.cap, Math.max(buf.byteLength * 2, len + value.byteLength)));
        grown.set(buf.subarray(0, len));
        buf = grown;
      }
      buf.set(value, len);
      len += value.byteLength;
      last = now();
    }
    return { ok: true, body: len === buf.byteLength ? buf : buf.subarray(0, len) };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
