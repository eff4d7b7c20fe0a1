/**
 * @module The task list: every task, newest first, with its status and current version; refreshed
 * every 5 s.
 */
import type { Api } from '../api.ts';
import { count, fill, h, table, time } from '../dom.ts';
import type { ViewContext } from './context.ts';

export function tasksView(root: HTMLElement, api: Api, ctx: ViewContext): () => void {
  const body = h('div', { 'aria-busy': 'true' }, 'Loading tasks…');
  root.replaceChildren(h('h1', { tabindex: -1 }, 'Tasks'), body);
  const load = async () => {
    try {
      const tasks = await api.tasks();
      body.removeAttribute('aria-busy');
      if (tasks.length === 0) {
        fill(body, h('p', {}, 'No tasks yet. Create one with `fedge tasks create --model ./model.json` or POST /v1/tasks.'));
        return;
      }
      fill(
        body,
        table(
          'Tasks',
          ['Name', 'Status', 'Version', 'Parameters', 'Created', 'Id'],
          tasks.map((t) => [
            h('a', { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.name),
            h('span', { class: `badge ${t.status}` }, t.status),
            String(t.currentVersion),
            count(t.numParams),
            time(t.createdAt),
            h('code', {}, t.id),
          ]),
          { 'data-table': 'tasks' },
        ),
      );
    } catch (e) {
      ctx.failed(e, body);
    }
  };
  void load();
  const timer = setInterval(load, 5_000);
  return () => clearInterval(timer);
}
