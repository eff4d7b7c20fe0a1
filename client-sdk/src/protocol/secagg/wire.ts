/**
 * @module Secure aggregation's messages on the wire, shared by the SDK and the aggregator: JSON
 * with binary fields as base64 (standard alphabet, padded), and the masked input as raw
 * little-endian 32-bit words. Each decoder checks the shape and refuses anything else with a
 * `WireError`, which the aggregator answers with `invalid_secagg_message`.
 */
import type { Curve } from './keys.ts';
import type { Advertisement, Revealed, SealedShares } from './protocol.ts';

export class WireError extends Error {
  override readonly name = 'WireError';
}

/** `POST …/secagg/keys`: the client's two public keys. */
export interface KeysMessage {
  curve: Curve;
  cPublic: string;
  sPublic: string;
}

/** A neighbour's advertised keys, as `GET …/secagg/roster` lists them. */
export interface RosterEntry extends KeysMessage {
  id: string;
}

/** `POST …/secagg/shares`: one sealed pair of shares per neighbour. */
export interface SharesMessage {
  shares: { to: string; sealed: string }[];
}

/** `POST …/secagg/reveal`: the shares the unmask request asked for. */
export interface RevealMessage {
  seedShares: Record<string, string>;
  keyShares: Record<string, string>;
}

/**
 * What a poll of a phase answers: `wait` (the phase has not started; come back after
 * `retryAfterSeconds`) or the phase's data.
 */
export type PhaseAnswer<T> = { status: 'wait'; retryAfterSeconds: number } | ({ status: 'ready' } & T);

export type RosterAnswer = PhaseAnswer<{ k: number; t: number; neighbours: RosterEntry[] }>;
export type InboxAnswer = PhaseAnswer<{ shares: { from: string; sealed: string }[] }>;
export type UnmaskAnswer = PhaseAnswer<{ survivors: string[]; dropped: string[] }>;

const CURVES: readonly Curve[] = ['X25519', 'P-256'];
/** X25519 public keys are 32 bytes; uncompressed P-256 points 65. */
const PUBLIC_KEY_BYTES: Record<Curve, number> = { X25519: 32, 'P-256': 65 };
/** A sealed pair: 12-byte IV, two Shamir shares of ≤ 33 + ≤ 140 bytes, 2-byte length, 16-byte tag. */
export const MAX_SEALED_BYTES = 512;
/** A Shamir share of a 32-byte seed or a PKCS#8 key (≤ 138 bytes) plus its 1-byte x coordinate. */
export const MAX_SHARE_BYTES = 256;

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(s: unknown, what: string, maxBytes: number): Uint8Array {
  if (typeof s !== 'string' || s.length > Math.ceil(maxBytes / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0)
    throw new WireError(`${what} must be base64 of at most ${maxBytes} bytes`);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function object(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new WireError(`${what} must be a JSON object`);
  return x as Record<string, unknown>;
}

function only(o: Record<string, unknown>, keys: readonly string[], what: string): void {
  const extra = Object.keys(o).filter((k) => !keys.includes(k));
  if (extra.length) throw new WireError(`${what} has unknown field(s) ${extra.join(', ')}`);
}

export function encodeKeys(a: Advertisement): KeysMessage {
  return { curve: a.curve, cPublic: toBase64(a.cPublic), sPublic: toBase64(a.sPublic) };
}

/** A keys message, checked: a known curve and public keys of its length. */
export function decodeKeys(x: unknown, id: string): Advertisement {
  const o = object(x, 'the keys message');
  only(o, ['curve', 'cPublic', 'sPublic'], 'the keys message');
  if (!CURVES.includes(o.curve as Curve)) throw new WireError(`curve must be one of ${CURVES.join(', ')}`);
  const curve = o.curve as Curve;
  const n = PUBLIC_KEY_BYTES[curve];
  const cPublic = fromBase64(o.cPublic, 'cPublic', n);
  const sPublic = fromBase64(o.sPublic, 'sPublic', n);
  if (cPublic.length !== n || sPublic.length !== n) throw new WireError(`${curve} public keys are ${n} bytes`);
  if (toBase64(cPublic) === toBase64(sPublic)) throw new WireError('cPublic and sPublic must be two different keys');
  return { id, curve, cPublic, sPublic };
}

export function encodeShares(sealed: readonly SealedShares[]): SharesMessage {
  return { shares: sealed.map((s) => ({ to: s.to, sealed: toBase64(s.sealed) })) };
}

/** A shares message from `from`, checked: exactly one sealed pair for each of `neighbours`. */
export function decodeShares(x: unknown, from: string, neighbours: readonly string[]): SealedShares[] {
  const o = object(x, 'the shares message');
  only(o, ['shares'], 'the shares message');
  if (!Array.isArray(o.shares)) throw new WireError('shares must be an array');
  const want = new Set(neighbours);
  const out: SealedShares[] = [];
  for (const [i, raw] of o.shares.entries()) {
    const s = object(raw, `shares[${i}]`);
    only(s, ['to', 'sealed'], `shares[${i}]`);
    if (typeof s.to !== 'string' || !want.has(s.to)) throw new WireError(`shares[${i}].to is not one of this client's neighbours, or appears twice`);
    want.delete(s.to);
    out.push({ from, to: s.to, sealed: fromBase64(s.sealed, `shares[${i}].sealed`, MAX_SEALED_BYTES) });
  }
  if (want.size) throw new WireError(`no shares for neighbour(s) ${[...want].join(', ')}: a client shares with every neighbour at once`);
  return out;
}

export function encodeReveal(r: Revealed): RevealMessage {
  const map = (m: Record<string, Uint8Array>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, toBase64(v)]));
  return { seedShares: map(r.seedShares), keyShares: map(r.keyShares) };
}

/** A reveal from `from`, checked: shares only of the survivors and dropped clients it was asked about. */
export function decodeReveal(x: unknown, from: string, asked: { survivors: readonly string[]; dropped: readonly string[] }): Revealed {
  const o = object(x, 'the reveal message');
  only(o, ['seedShares', 'keyShares'], 'the reveal message');
  const part = (field: 'seedShares' | 'keyShares', allowed: readonly string[]) => {
    const m = object(o[field] ?? {}, field);
    const out: Record<string, Uint8Array> = {};
    for (const [id, v] of Object.entries(m)) {
      if (!allowed.includes(id)) throw new WireError(`${field} names ${id}, which the unmask request did not ask about`);
      out[id] = fromBase64(v, `${field}.${id}`, MAX_SHARE_BYTES);
    }
    return out;
  };
  return { from, seedShares: part('seedShares', asked.survivors), keyShares: part('keyShares', asked.dropped) };
}

/** The masked input's body: its words, little-endian. */
export function encodeMasked(words: Uint32Array): Uint8Array {
  const out = new Uint8Array(words.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i]!, true);
  return out;
}

/** A masked input of exactly `length` words from its body. */
export function decodeMasked(body: Uint8Array, length: number): Uint32Array {
  if (body.length !== length * 4) throw new WireError(`a masked input of this task is ${length} words (${length * 4} bytes), got ${body.length} bytes`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}
