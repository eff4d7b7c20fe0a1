import { describe, expect, it } from 'vitest';
import { byteRange } from './ranges.ts';

describe('byteRange', () => {
  it('reads one bytes= range: start-end, start-, the last N bytes, clipped to the blob', () => {
    expect(byteRange('bytes=0-99', 1000)).toEqual({ start: 0, end: 99 });
    expect(byteRange('bytes=500-', 1000)).toEqual({ start: 500, end: 999 });
    expect(byteRange('bytes=-100', 1000)).toEqual({ start: 900, end: 999 });
    expect(byteRange('bytes=-5000', 1000)).toEqual({ start: 0, end: 999 });
    expect(byteRange('bytes=990-5000', 1000)).toEqual({ start: 990, end: 999 });
    expect(byteRange(' bytes=1-1 ', 1000)).toEqual({ start: 1, end: 1 });
  });

  it('sends the whole blob for no header, another unit, several ranges or a malformed one', () => {
    for (const h of [undefined, '', 'items=0-1', 'bytes=0-1,5-6', 'bytes=-', 'bytes=5-2', 'bytes=a-b', 'bytes 0-1']) expect(byteRange(h, 1000)).toBeNull();
  });

  it('is unsatisfiable from the end on, or for an empty suffix', () => {
    expect(byteRange('bytes=1000-', 1000)).toBe('unsatisfiable');
    expect(byteRange('bytes=5000-6000', 1000)).toBe('unsatisfiable');
    expect(byteRange('bytes=-0', 1000)).toBe('unsatisfiable');
  });
});
