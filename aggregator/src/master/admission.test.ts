import { describe, expect, it } from 'vitest';
import { ByteBudget } from './admission.ts';

describe('ByteBudget', () => {
  it('admits within the budget, queues beyond it in FIFO order, and grants as bytes are released', async () => {
    const budget = new ByteBudget({ budgetBytes: 10, maxWaitMs: 1_000, maxWaiters: 10 });
    const r1 = await budget.acquire(6);
    const r2 = await budget.acquire(4);
    expect(budget.bytesInUse).toBe(10);
    const order: string[] = [];
    const p3 = budget.acquire(5).then((r) => {
      order.push('third');
      return r;
    });
    const p4 = budget.acquire(1).then((r) => {
      order.push('fourth');
      return r;
    });
    expect(budget.waiting).toBe(2);
    r1!();
    r1!(); // releasing twice is harmless
    const [r3, r4] = await Promise.all([p3, p4]);
    expect(order).toEqual(['third', 'fourth']);
    expect(budget.bytesInUse).toBe(10);
    r2!();
    r3!();
    r4!();
    expect(budget.bytesInUse).toBe(0);
  });

  it('refuses after the wait limit or when the queue is full, and admits an oversized request alone', async () => {
    const budget = new ByteBudget({ budgetBytes: 10, maxWaitMs: 20, maxWaiters: 1 });
    const big = await budget.acquire(50);
    expect(big).not.toBeNull();
    const waiting = budget.acquire(1);
    expect(await budget.acquire(1)).toBeNull(); // queue full
    expect(await waiting).toBeNull(); // timed out
    big!();
    expect(await budget.acquire(10)).not.toBeNull();
  });
});
