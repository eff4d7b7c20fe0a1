/**
 * @module The live round of a task, redrawn every second: slots taken, accepted against the goal,
 * rejected by code, and the time left to the deadline.
 */
import type { Task } from '../api.ts';
import { duration, h, ms, time } from '../dom.ts';

/** Assignments a round hands out: ceil(clientsPerRound × overSelection), as the round machine does. */
export function slots(rules: Task['rounds']): number {
  return Math.ceil(rules.clientsPerRound * rules.overSelection);
}

/** "in 1 min 05 s", "due now", "starts at the first assignment", or why the clock is stopped. */
export function deadlineText(task: Task, now: number): string {
  const r = task.currentRound;
  if (!r) return '—';
  if (r.status !== 'open') return r.status === 'closing' ? 'closing' : '—';
  if (task.status === 'paused') return 'clock stopped (task paused)';
  if (r.deadlineAt === null) return `starts at the first assignment (${duration(task.rounds.deadlineSeconds)})`;
  const left = (ms(r.deadlineAt) - now) / 1000;
  return left > 0 ? `in ${duration(left)}` : 'due now';
}

function field(name: string, label: string, ...value: (Node | string)[]): HTMLElement {
  return h('div', { class: 'field' }, h('dt', {}, label), h('dd', { 'data-field': name }, ...value));
}

/** The panel's content for `task` at time `now` (ms). */
export function liveRoundContent(task: Task, now: number): HTMLElement {
  const r = task.currentRound;
  if (!r) {
    const why =
      task.status === 'stopped'
        ? 'The task is stopped: no new rounds.'
        : task.status === 'paused'
          ? 'The task is paused.'
          : 'No round yet: the first check-in opens one.';
    return h('p', { 'data-field': 'no-round' }, why);
  }
  const goal = task.rounds.clientsPerRound;
  const codes = Object.entries(r.rejectedByCode).sort(([a], [b]) => a.localeCompare(b));
  return h(
    'div',
    {},
    h(
      'dl',
      { class: 'fields' },
      field('round', 'Round', String(r.round)),
      field('round-status', 'Status', h('span', { class: `badge ${r.status}` }, r.status)),
      field('base-version', 'Base version', String(r.baseVersion)),
      field('assigned', 'Slots taken', `${r.assigned} / ${slots(task.rounds)}`),
      field('accepted', 'Accepted', `${r.accepted} / ${goal}`),
      field('rejected', 'Rejected', String(r.rejected)),
      field('deadline', 'Deadline', deadlineText(task, now)),
      field('opened', 'Opened', time(r.openedAt)),
    ),
    h('progress', { max: goal, value: Math.min(r.accepted, goal), 'aria-label': `accepted ${r.accepted} of ${goal}` }),
    codes.length > 0
      ? h(
          'ul',
          { class: 'codes', 'data-field': 'rejected-by-code', 'aria-label': 'rejected by code' },
          ...codes.map(([code, n]) => h('li', {}, h('code', {}, code), ` ${n}`)),
        )
      : null,
  );
}
