/**
 * @module One task: its actions (pause, resume, stop), the live round (polled every second), the
 * accuracy and loss charts, the version lineage, recent rounds and clients. Versions and charts
 * reload at a new version and every 10 s, rounds when the live round moves, clients every 15 s
 * and after a revoke.
 */
import { type Api, ApiError, type LifecycleAction, type Task } from '../api.ts';
import { chartFigure, metricCharts } from '../charts.ts';
import { count, fill, h } from '../dom.ts';
import type { ViewContext } from './context.ts';
import { liveRoundContent } from './live-round.ts';
import { clientsTable, roundsTable, versionsTable } from './task-tables.ts';

const ACTIONS: { action: LifecycleAction; label: string; allowed: (s: string) => boolean; confirm?: string }[] = [
  { action: 'pause', label: 'Pause', allowed: (s) => s === 'active' },
  { action: 'resume', label: 'Resume', allowed: (s) => s === 'paused' },
  {
    action: 'stop',
    label: 'Stop',
    allowed: (s) => s !== 'stopped',
    confirm: 'Stop this task for good? The open round ends by its rules and no new round opens. A stopped task cannot be resumed.',
  },
];

function section(id: string, title: string, ...content: Node[]): HTMLElement {
  return h('section', { id, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...content);
}

export function taskView(root: HTMLElement, api: Api, taskId: string, ctx: ViewContext): () => void {
  const title = h('h1', { tabindex: -1 }, 'Task');
  const meta = h('p', { class: 'muted' });
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'task actions' });
  const live = h('div', { 'data-panel': 'live-round' }, 'Loading…');
  const charts = h('div', { class: 'charts' });
  const versions = h('div');
  const rounds = h('div');
  const clients = h('div');
  root.replaceChildren(
    h('p', {}, h('a', { href: '#/' }, '← All tasks')),
    h('header', { class: 'task-head' }, h('div', {}, title, meta), actions),
    section('live', 'Live round', live),
    section('metrics', 'Per version: accuracy, loss, privacy spent', charts),
    section('versions', 'Versions', versions),
    section('rounds', 'Recent rounds', rounds),
    section('clients', 'Clients', clients),
  );

  let task: Task | null = null;
  let seenVersion = -1;
  let seenRound = '';
  let disposers: (() => void)[] = [];
  let stopped = false;

  const drawActions = (t: Task) =>
    fill(
      actions,
      ACTIONS.map((a) =>
        h(
          'button',
          {
            type: 'button',
            'data-action': a.action,
            class: a.action === 'stop' ? 'danger' : '',
            disabled: !a.allowed(t.status),
            onclick: async () => {
              if (a.confirm && !confirm(a.confirm)) return;
              try {
                await api.lifecycle(taskId, a.action);
                ctx.notice(`Task ${a.action === 'stop' ? 'stopped' : a.action === 'pause' ? 'paused' : 'resumed'}.`);
                await poll();
              } catch (e) {
                ctx.failed(e);
              }
            },
          },
          a.label,
        ),
      ),
    );

  // Versions (and their charts) are reloaded at a new version and every 10 s (evaluations of past
  // versions keep arriving); the rounds table at any move of the live round.
  const loadVersions = async () => {
    const vs = await api.versions(taskId);
    for (const d of disposers) d();
    const figures = metricCharts(vs).map(chartFigure);
    disposers = figures.map((f) => f.dispose);
    fill(
      charts,
      figures.length > 0 ? figures.map((f) => f.el) : h('p', { class: 'muted' }, 'No metrics yet: they appear when clients report training or evaluation.'),
    );
    fill(versions, versionsTable(taskId, vs, api, ctx));
  };
  const loadRounds = async () => {
    const rs = await api.rounds(taskId);
    fill(rounds, rs.length > 0 ? roundsTable(rs) : h('p', { class: 'muted' }, 'No rounds yet.'));
  };
  const loadClients = async () => {
    try {
      const cs = await api.clients(taskId);
      fill(clients, cs.length > 0 ? clientsTable(taskId, cs, api, ctx, () => void loadClients()) : h('p', { class: 'muted' }, 'No clients registered.'));
    } catch (e) {
      ctx.failed(e, clients);
    }
  };

  async function poll(): Promise<void> {
    try {
      task = await api.task(taskId);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        stopped = true;
        fill(live, h('p', { class: 'error' }, `No task "${taskId}" (${e.code}).`));
        return;
      }
      ctx.failed(e, live);
      return;
    }
    title.textContent = task.name;
    document.title = `${task.name} · fedge`;
    fill(
      meta,
      h('span', { class: `badge ${task.status}`, 'data-field': 'task-status' }, task.status),
      ` version ${task.currentVersion} · ${count(task.numParams)} parameters · ${task.strategy.name} · `,
      h('code', {}, task.id),
    );
    drawActions(task);
    fill(live, liveRoundContent(task, Date.now()));
    const r = task.currentRound;
    const roundKey = `${task.currentVersion}|${r?.round}|${r?.status}|${r?.accepted}|${r?.rejected}`;
    const reloads: Promise<void>[] = [];
    if (task.currentVersion !== seenVersion) {
      seenVersion = task.currentVersion;
      reloads.push(loadVersions().catch((e: unknown) => ctx.failed(e, versions)));
    }
    if (roundKey !== seenRound) {
      seenRound = roundKey;
      reloads.push(loadRounds().catch((e: unknown) => ctx.failed(e, rounds)));
    }
    await Promise.all(reloads);
  }

  let running = false;
  const tick = async () => {
    if (running || stopped) return;
    running = true;
    await poll();
    running = false;
  };
  void tick().then(() => title.focus());
  void loadClients();
  const refreshVersions = () => void loadVersions().catch((e: unknown) => ctx.failed(e, versions));
  const timers = [setInterval(tick, 1_000), setInterval(loadClients, 15_000), setInterval(refreshVersions, 10_000)];
  return () => {
    stopped = true;
    for (const t of timers) clearInterval(t);
    for (const d of disposers) d();
  };
}
