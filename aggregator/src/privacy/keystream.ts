/**
 * @module Reproducible secure noise: uniforms from the ChaCha20 keystream (RFC 8439, @noble/ciphers)
 * of a 256-bit seed drawn from `crypto.getRandomValues`.
 *
 * A round's close may run more than once (an alarm retried after a crash between writing the blob
 * and recording it). Fresh noise on a retry would be a second release of the same sum: a different
 * blob, privacy the accountant never counted. So the close draws its seed once, stores it with the
 * round, and expands it here; every attempt adds the same noise and writes the same bytes. The seed
 * is deleted with the round's data once the version is published; nobody outside the object sees it.
 */
import { chacha20 } from '@noble/ciphers/chacha.js';
import { type UniformSource, uniformFromWords } from '#protocol/dp.ts';

const BLOCKS_PER_REFILL = 1024; // 64 KiB of keystream
const NONCE = new Uint8Array(12); // each seed keys one stream: a fixed nonce is safe

export class KeystreamUniform implements UniformSource {
  private readonly key: Uint8Array;
  private readonly bytes = new Uint8Array(BLOCKS_PER_REFILL * 64);
  private readonly words = new Uint32Array(this.bytes.buffer);
  private pos = this.words.length;
  private counter = 0;

  constructor(seed: Uint8Array) {
    if (seed.length !== 32) throw new RangeError(`a keystream seed is 32 bytes, got ${seed.length}`);
    this.key = seed.slice();
  }

  next(): number {
    if (this.pos + 2 > this.words.length) {
      this.bytes.fill(0);
      chacha20(this.key, NONCE, this.bytes, this.bytes, this.counter);
      this.counter += BLOCKS_PER_REFILL;
      this.pos = 0;
    }
    const a = this.words[this.pos++]!;
    return uniformFromWords(a, this.words[this.pos++]!);
  }
}

/** A fresh 256-bit seed from the platform's secure source. */
export function newSeed(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}
