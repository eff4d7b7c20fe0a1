import { describe, expect, it } from 'vitest';
import { autoShards, emptyBook, MAX_SHARDS, shardOf, slotBlock, syncBook, total } from './shards.ts';

describe('shardOf', () => {
  it('is stable and spreads random ids evenly', () => {
    expect(shardOf('c_0123', 8)).toBe(shardOf('c_0123', 8));
    expect(shardOf('anything', 1)).toBe(0);
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[shardOf(`c_${crypto.randomUUID().replaceAll('-', '')}`, 8)]++;
    // 1,000 expected per shard; 5 standard deviations (≈ 30 each) either side.
    for (const n of counts) expect(Math.abs(n - 1000)).toBeLessThan(150);
  });
});

describe('the shard count and slot blocks', () => {
  it('gives one shard per 1,000 assignments, at most MAX_SHARDS', () => {
    expect([autoShards(1), autoShards(1000), autoShards(1001), autoShards(10_000), autoShards(1e7)]).toEqual([1, 1, 2, 10, MAX_SHARDS]);
  });
  it('hands out a quarter share at a time, then smaller blocks as the round fills', () => {
    expect(slotBlock(10_000, 8)).toBe(313);
    expect(slotBlock(10_000, 8, 800)).toBe(50);
    expect(slotBlock(10_000, 8, 3)).toBe(1);
  });
});

describe('syncBook', () => {
  it('never grants past the capacity, and slots a shard gives back go to a shard that has clients', () => {
    const capacity = 10;
    let book = emptyBook(1, 2);
    // Shard 0 takes slots until the capacity is out; shard 1 gets none.
    let granted = 0;
    for (let i = 0; i < 20; i++) {
      const r = syncBook(book, 0, { round: 1, accepted: 0, holding: book.granted[0]!, wantsSlots: true }, capacity);
      book = r.book;
      granted += r.granted;
    }
    expect([granted, total(book.granted)]).toEqual([10, 10]);
    expect(syncBook(book, 1, { round: 1, accepted: 0, holding: 0, wantsSlots: true }, capacity).granted).toBe(0);
    // Shard 0 used 4 of them and reports: it keeps 4, and shard 1 can now have the other 6.
    book = syncBook(book, 0, { round: 1, accepted: 3, holding: 4, wantsSlots: false }, capacity).book;
    expect(book.granted).toEqual([4, 0]);
    expect(book.accepted).toEqual([3, 0]);
    let more = 0;
    for (let i = 0; i < 10; i++) {
      const r = syncBook(book, 1, { round: 1, accepted: 0, holding: book.granted[1]!, wantsSlots: true }, capacity);
      book = r.book;
      more += r.granted;
    }
    expect(more).toBe(6);
  });
  it('ignores a report of an earlier round, and never counts accepted updates down', () => {
    let book = syncBook(emptyBook(2, 2), 0, { round: 2, accepted: 5, holding: 5, wantsSlots: false }, 10).book;
    book = syncBook(book, 0, { round: 2, accepted: 4, holding: 5, wantsSlots: false }, 10).book;
    book = syncBook(book, 1, { round: 1, accepted: 9, holding: 9, wantsSlots: false }, 10).book;
    expect(book.accepted).toEqual([5, 0]);
    expect(book.granted).toEqual([5, 0]);
  });
});
