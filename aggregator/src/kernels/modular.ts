/**
 * @module The modular kernel of secure aggregation: adding masked vectors in Z/2³²Z.
 */

/** target[i] = target[i] + src[i] (mod 2³²) for i < src.length (target may be longer: a chunk's window). */
export function addWords(target: Uint32Array, src: Uint32Array): void {
  if (src.length > target.length) throw new RangeError(`${src.length} words into a window of ${target.length}`);
  for (let i = 0; i < src.length; i++) target[i] = (target[i]! + src[i]!) >>> 0;
}
