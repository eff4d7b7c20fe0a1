/**
 * @module Key agreement and share encryption of secure aggregation, all through WebCrypto:
 * X25519 where the platform has it, P-256 ECDH otherwise (both peers must use the same curve: the
 * round's advertised keys say which), HKDF-SHA-256 to turn a shared secret into 256-bit keys, and
 * AES-256-GCM for the shares clients send each other through the server, with the round, the
 * sender and the recipient bound as associated data (a share replayed into another round or
 * re-addressed fails to decrypt).
 */

export type Curve = 'X25519' | 'P-256';

export interface KeyPair {
  curve: Curve;
  privateKey: CryptoKey;
  /** The raw public key as sent to peers (32 bytes for X25519, 65 uncompressed for P-256). */
  publicKey: Uint8Array;
}

type KeyAlgorithm = { name: 'X25519' } | { name: 'ECDH'; namedCurve: 'P-256' };

function algorithm(curve: Curve): KeyAlgorithm {
  return curve === 'X25519' ? { name: 'X25519' } : { name: 'ECDH', namedCurve: 'P-256' };
}

/**
 * A fresh key pair: X25519 if the platform supports it (or `curve` asks for it), else P-256.
 *
 * @example
 * const { publicKey } = await generateKeyPair(); // advertise publicKey for this round
 */
export async function generateKeyPair(curve?: Curve): Promise<KeyPair> {
  const curves: Curve[] = curve ? [curve] : ['X25519', 'P-256'];
  let last: unknown;
  for (const c of curves) {
    try {
      const pair = (await crypto.subtle.generateKey(algorithm(c), true, ['deriveBits'])) as CryptoKeyPair;
      const raw = (await crypto.subtle.exportKey('raw', pair.publicKey)) as ArrayBuffer;
      return { curve: c, privateKey: pair.privateKey, publicKey: new Uint8Array(raw) };
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`no key agreement curve available (${String(last)})`);
}

/** A private key from its PKCS #8 bytes (what `crypto.subtle.exportKey('pkcs8', …)` gave), for key agreement on `curve`. */
export function importPrivateKey(curve: Curve, pkcs8: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', pkcs8 as Uint8Array<ArrayBuffer>, algorithm(curve), false, ['deriveBits']);
}

const encoder = new TextEncoder();

/**
 * A 256-bit key shared with the holder of `theirPublicKey`: ECDH, then HKDF-SHA-256 with `info`
 * naming what the key is for (e.g. `fedge-secagg/mask/<task>/<round>`), so one agreement gives
 * independent keys for masks and for share encryption.
 *
 * @example
 * const maskSeed = await agree(mine, theirs.publicKey, `fedge-secagg/mask/${taskId}/${round}`);
 */
export async function agree(mine: KeyPair, theirPublicKey: Uint8Array, info: string): Promise<Uint8Array> {
  const theirs = await crypto.subtle.importKey('raw', theirPublicKey as Uint8Array<ArrayBuffer>, algorithm(mine.curve), false, []);
  const shared = await crypto.subtle.deriveBits(
    // Workers' types spell the member `$public`; every runtime reads `public` (the WebCrypto spec's name).
    { name: algorithm(mine.curve).name, public: theirs } as unknown as Parameters<SubtleCrypto['deriveBits']>[0],
    mine.privateKey,
    256,
  );
  const hkdfKey = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: encoder.encode(info) }, hkdfKey, 256);
  return new Uint8Array(bits);
}

/** What a share's ciphertext is bound to: a share for another round, sender or recipient does not decrypt. */
export function shareContext(taskId: string, round: number, sender: string, recipient: string): Uint8Array {
  return encoder.encode(JSON.stringify(['fedge-secagg/share', taskId, round, sender, recipient]));
}

/** AES-256-GCM of `plaintext` under `key` with `associatedData`: a 12-byte random nonce, then the ciphertext and tag. */
export async function seal(key: Uint8Array, plaintext: Uint8Array, associatedData: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, 'AES-GCM', false, ['encrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: associatedData as Uint8Array<ArrayBuffer> }, k, plaintext as Uint8Array<ArrayBuffer>),
  );
  const out = new Uint8Array(12 + ct.length);
  out.set(iv);
  out.set(ct, 12);
  return out;
}

/** Opens what `seal` made; throws when the key, the associated data or any byte differs. */
export async function open(key: Uint8Array, sealed: Uint8Array, associatedData: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, 'AES-GCM', false, ['decrypt']);
  return new Uint8Array(
    await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: sealed.subarray(0, 12) as Uint8Array<ArrayBuffer>, additionalData: associatedData as Uint8Array<ArrayBuffer> },
      k,
      sealed.subarray(12) as Uint8Array<ArrayBuffer>,
    ),
  );
}
