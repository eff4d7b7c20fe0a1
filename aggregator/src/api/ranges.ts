/**
 * @module Byte ranges of version downloads (RFC 9110 §14): one `bytes=` range per request, so a
 * client resumes a download that broke off, or fetches a large version in pieces.
 */

/** Inclusive byte positions of a range. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The one range a `Range` header asks of a blob of `size` bytes; null to send the whole blob (no
 * header, or one this server ignores as RFC 9110 allows: not `bytes=`, malformed, or several
 * ranges); 'unsatisfiable' when it starts at or past the end (416).
 */
export function byteRange(header: string | undefined, size: number): ByteRange | null | 'unsatisfiable' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    // A suffix: the last N bytes.
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  if (end < start) return null; // last-pos before first-pos: invalid, ignored
  return { start, end };
}
