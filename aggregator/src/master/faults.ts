/**
 * @module Fault injection: the points where a test can make the aggregator fail as a crash there
 * would. One object the Durable Object holds; production code only calls `hit`, which does nothing
 * unless a test armed the point (through `runInDurableObject`).
 */

export type FaultPoint = 'commit' | 'after_blob' | 'after_d1' | 'seal';

export class Faults {
  private readonly armed = new Map<FaultPoint, 'once' | 'always'>();

  /** Makes the next `hit(point)` throw (every one, with `always`). */
  arm(point: FaultPoint, times: 'once' | 'always' = 'once'): void {
    this.armed.set(point, times);
  }

  hit(point: FaultPoint): void {
    const mode = this.armed.get(point);
    if (!mode) return;
    if (mode === 'once') this.armed.delete(point);
    throw new Error(`injected fault at ${point}`);
  }
}
