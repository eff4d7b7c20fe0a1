import { describe, expect, it } from 'vitest';
import {
  accept,
  applyDeadline,
  assign,
  assignAsync,
  assignmentCapacity,
  nextAlarmAt,
  openRound,
  published,
  type RoundRules,
  type RoundState,
} from './round-machine.ts';

const rules: RoundRules = { clientsPerRound: 3, minClients: 2, deadlineSeconds: 60, overSelection: 1.5, maxExamplesPerClient: 1000 };

function assigned(state: RoundState, now: number): RoundState {
  const d = assign(state, rules, now);
  if (d.kind !== 'assign') throw new Error(`expected assign, got ${d.reason}`);
  return d.state;
}

describe('round machine', () => {
  it('starts the deadline clock at the first assignment, not at opening', () => {
    const s0 = openRound(1, 0, 1_000);
    expect(s0.deadlineAt).toBeNull();
    expect(nextAlarmAt(s0, 1_000)).toBeNull();
    const s1 = assigned(s0, 5_000);
    expect(s1.deadlineAt).toBe(65_000);
    const s2 = assigned(s1, 9_000);
    expect(s2.deadlineAt).toBe(65_000);
    expect(s2.assigned).toBe(2);
    expect(nextAlarmAt(s2, 9_000)).toBe(65_000);
  });

  it('over-selects ceil(goal × overSelection) clients, then asks the rest to wait until the deadline', () => {
    expect(assignmentCapacity(rules)).toBe(5);
    let s = openRound(1, 0, 0);
    for (let i = 0; i < 5; i++) s = assigned(s, 10_000);
    const d = assign(s, rules, 30_000);
    expect(d).toEqual({ kind: 'wait', retryAfterMs: 40_000, reason: 'round_full' });
    // Near the deadline the retry-after never drops below a second.
    expect(assign(s, rules, 69_900)).toMatchObject({ retryAfterMs: 1_000 });
  });

  it('closes on the goal count', () => {
    let s = assigned(openRound(1, 0, 0), 0);
    s = accept(s, rules);
    s = accept(s, rules);
    expect(s.status).toBe('open');
    s = accept(s, rules);
    expect(s).toMatchObject({ status: 'closing', closeReason: 'goal_reached', accepted: 3 });
    expect(nextAlarmAt(s, 123)).toBe(123);
    expect(() => accept(s, rules)).toThrow(/closing/);
    expect(assign(s, rules, 0)).toMatchObject({ kind: 'wait', reason: 'round_closing' });
    const c = published(s, 500);
    expect(c).toMatchObject({ status: 'closed', closedAt: 500 });
    expect(published(c, 900)).toBe(c);
  });

  it('at the deadline closes with the minimum and abandons below it; applying it twice changes nothing', () => {
    let s = assigned(openRound(4, 2, 0), 0);
    s = accept(s, rules);
    expect(applyDeadline(s, rules, 59_999)).toBe(s);
    const abandoned = applyDeadline(s, rules, 60_000);
    expect(abandoned).toMatchObject({ status: 'abandoned', closeReason: 'below_minimum', closedAt: 60_000 });
    expect(applyDeadline(abandoned, rules, 70_000)).toBe(abandoned);

    const enough = accept(s, rules);
    const closing = applyDeadline(enough, rules, 61_000);
    expect(closing).toMatchObject({ status: 'closing', closeReason: 'deadline', accepted: 2 });
    expect(applyDeadline(closing, rules, 62_000)).toBe(closing);
  });

  it('never closes an empty round at its deadline, even with a minimum of zero', () => {
    const zeroMin = { ...rules, minClients: 0 };
    const s = assigned(openRound(1, 0, 0), 0);
    expect(applyDeadline(s, zeroMin, 60_000).status).toBe('abandoned');
  });

  it('asynchronous buffers assign without a cap or a deadline and close at their goal', () => {
    let s = openRound(1, 0, 0);
    for (let i = 0; i < 10; i++) {
      const d = assignAsync(s);
      if (d.kind !== 'assign') throw new Error('expected assign');
      s = d.state;
    }
    expect(s).toMatchObject({ assigned: 10, deadlineAt: null });
    expect(nextAlarmAt(s, 5)).toBeNull();
    for (let i = 0; i < 3; i++) s = accept(s, rules);
    expect(s.status).toBe('closing');
    expect(assignAsync(s)).toMatchObject({ kind: 'wait', reason: 'round_closing' });
  });

  it('refuses to publish a round that is not closing', () => {
    expect(() => published(openRound(1, 0, 0), 0)).toThrow(/only a closing round/);
  });
});
