/**
 * @module Admission control for update bodies: a byte budget per isolate with a bounded FIFO wait.
 *
 * A request that does not fit waits (its body unread, so the client is held back by TCP flow
 * control rather than uploading into memory) until earlier bodies finish or `maxWaitMs` passes;
 * then it is refused with 429 + Retry-After. Waiting beats refusing at once: a refused client
 * re-uploads its whole body later, which under a long queue costs more than it saves.
 */

export interface AdmissionOptions {
  budgetBytes: number;
  maxWaitMs: number;
  maxWaiters: number;
}

interface Waiter {
  bytes: number;
  grant: () => void;
}

export class ByteBudget {
  private inUse = 0;
  private readonly waiters: Waiter[] = [];
  private readonly options: AdmissionOptions;

  constructor(options: AdmissionOptions) {
    this.options = options;
  }

  get bytesInUse(): number {
    return this.inUse;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Reserves `bytes`, waiting for room if needed. Resolves to a release function, or null when
   * the wait timed out or the queue is full. A single request larger than the budget is admitted
   * alone, so no size that passes the body cap can starve.
   */
  async acquire(bytes: number): Promise<(() => void) | null> {
    if (this.waiters.length === 0 && this.fits(bytes)) return this.take(bytes);
    if (this.waiters.length >= this.options.maxWaiters) return null;
    return new Promise((resolve) => {
      const waiter: Waiter = { bytes, grant: () => resolve(this.take(bytes)) };
      this.waiters.push(waiter);
      setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          resolve(null);
        }
      }, this.options.maxWaitMs);
    });
  }

  private fits(bytes: number): boolean {
    return this.inUse === 0 || this.inUse + bytes <= this.options.budgetBytes;
  }

  private take(bytes: number): () => void {
    this.inUse += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= bytes;
      while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) this.waiters.shift()!.grant();
    };
  }
}
