/**
 * @module The masks of secure aggregation: a pseudorandom generator keyed by a 256-bit seed,
 * AES-256 in counter mode through WebCrypto (the same bytes in browsers, Node, workerd and React
 * Native with the documented Web Crypto polyfill), read as little-endian 32-bit words: elements of
 * Z/2³²Z, the ring the masked sums live in. A public implementation seeds NumPy's Mersenne Twister
 * with a 32-bit value (2³² possible masks: enumerable); here every mask is keyed by 256 bits that
 * come from an ECDH agreement or from `crypto.getRandomValues`, and the keystream is a block cipher's.
 */

const COUNTER_BLOCK = new Uint8Array(16); // nonce 0, counter from 0: each key expands one stream

/**
 * `length` mask words from `seed` (32 bytes). The same seed always gives the same words.
 *
 * @example
 * const mask = await expandMask(seed, model.numParams); // Uint32Array, uniform over Z/2³²Z
 */
export async function expandMask(seed: Uint8Array, length: number): Promise<Uint32Array<ArrayBuffer>> {
  if (seed.length !== 32) throw new RangeError(`a mask seed is 32 bytes, got ${seed.length}`);
  if (!(Number.isInteger(length) && length >= 0)) throw new RangeError(`mask length must be a whole number, got ${length}`);
  const key = await crypto.subtle.importKey('raw', seed as Uint8Array<ArrayBuffer>, { name: 'AES-CTR' }, false, ['encrypt']);
  const stream = await crypto.subtle.encrypt({ name: 'AES-CTR', counter: COUNTER_BLOCK, length: 64 }, key, new Uint8Array(length * 4));
  // A Uint32Array reads the platform's byte order: little-endian on every platform fedge runs on
  // (x86-64, ARM64, WebAssembly), which the known-answer tests pin down.
  return new Uint32Array(stream);
}

/** target = target + sign · mask (mod 2³²), in place. */
export function addMask(target: Uint32Array, mask: Uint32Array, sign: 1 | -1): void {
  if (mask.length !== target.length) throw new RangeError(`mask of ${mask.length} words for a vector of ${target.length}`);
  if (sign === 1) for (let i = 0; i < target.length; i++) target[i] = (target[i]! + mask[i]!) >>> 0;
  else for (let i = 0; i < target.length; i++) target[i] = (target[i]! - mask[i]!) >>> 0;
}
