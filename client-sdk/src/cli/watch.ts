/**
 * @module `fedge watch TASK`: the task's live round (a progress bar of accepted updates against the
 * round's goal, rejections by code, time to the deadline) and a line per published version. On a
 * terminal the round line is redrawn in place; piped, a line is printed when something changes;
 * with `--json`, one JSON event per line (`round`, `version`, `end`). It ends on Ctrl-C, when the
 * task is stopped and its last round is over, or at `--until-version`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { LiveRound } from '../admin-types.ts';
import type { ModelManifest } from '../protocol/messages.ts';
import { bar } from './output.ts';
import { adminFor, type Context, handler, positiveInt } from './program.ts';
import { versionRow } from './versions.ts';

export type WatchEnd = 'interrupted' | 'task_stopped' | 'version_reached';

export function registerWatchCommand(program: Command, ctx: Context): void {
  program
    .command('watch')
    .description("a live view of the task's rounds and versions, until Ctrl-C, the task stops, or --until-version")
    .argument('<task>', 'task id')
    .option('--interval <ms>', 'poll interval [1000]', positiveInt('--interval', 100), 1000)
    .option('--until-version <v>', 'end once this version is published', positiveInt('--until-version', 0))
    .action(
      handler(ctx, async (g, taskId: string, flags: { interval: number; untilVersion?: number }) => {
        const admin = adminFor(ctx, g);
        const json = g.json;
        const live = ctx.io.isTTY && !json;
        // Live: the round line is redrawn in place and a version line pushes it down.
        const emit = (event: Record<string, unknown>, text: string, keep: boolean) => {
          if (live) ctx.io.write(`\r\x1b[2K${text}${keep ? '\n' : ''}`);
          else ctx.io.out(json ? JSON.stringify(event) : text);
        };
        let task = await admin.getTask(taskId);
        const goal = task.rounds.clientsPerRound;
        if (!json) ctx.io.out(`task ${task.id} "${task.name}" · ${task.strategy.name} · version ${task.currentVersion} · ${task.status}`);
        let version = task.currentVersion;
        let lastState = '';
        let end: WatchEnd | null = null;
        for (;;) {
          if (task.currentVersion > version) {
            const published = await admin.listVersions(taskId, { limit: Math.min(200, task.currentVersion - version) });
            for (const m of published.reverse()) emit({ event: 'version', ...m }, versionLine(m), true);
            version = task.currentVersion;
          }
          // Piped or JSON: a line when the round changes (the deadline is a time, so it changes only when set).
          const state = JSON.stringify([task.status, version, task.currentRound]);
          if (live || state !== lastState)
            emit(
              { event: 'round', status: task.status, version, round: task.currentRound },
              roundLine(task.status, task.currentRound, goal, Date.now()),
              false,
            );
          lastState = state;
          if (flags.untilVersion !== undefined && version >= flags.untilVersion) end = 'version_reached';
          else if (task.status === 'stopped' && !roundRunning(task.currentRound)) end = 'task_stopped';
          else if (ctx.signal.aborted) end = 'interrupted';
          if (end) break;
          await sleep(flags.interval, undefined, { signal: ctx.signal }).catch(() => {});
          if (ctx.signal.aborted) {
            end = 'interrupted';
            break;
          }
          task = await admin.getTask(taskId);
        }
        if (live) ctx.io.write('\n');
        emit({ event: 'end', reason: end, version }, `watch ended: ${end.replace('_', ' ')} (version ${version})`, true);
        return null;
      }),
    );
}

/** Whether the round can still publish: closing, or open with clients assigned (what a stopped task waits for). */
function roundRunning(r: LiveRound | null): boolean {
  return r !== null && (r.status === 'closing' || (r.status === 'open' && r.assigned > 0));
}

function versionLine(m: ModelManifest): string {
  const r = versionRow(m);
  const accuracy = r.accuracy === null ? '' : `, accuracy ${Number(r.accuracy).toFixed(4)}`;
  const loss = r.loss === null ? '' : `, loss ${Number(r.loss).toFixed(4)}`;
  const epsilon = r.epsilon === null ? '' : `, ε ${r.epsilon}`;
  return `version ${m.version} published: round ${r.round}, ${m.participants} clients, ${m.numExamples} examples${accuracy}${loss}${epsilon}`;
}

/** The round as one line: `round 4 [####----] 4/10 accepted · 1 rejected (invalid_update 1) · 6 assigned · deadline in 52 s`. */
export function roundLine(status: string, r: LiveRound | null, goal: number, now: number): string {
  if (!r) return status === 'stopped' ? 'stopped: no open round' : `${status}: no open round yet`;
  const rejected = r.rejected
    ? ` · ${r.rejected} rejected (${Object.entries(r.rejectedByCode)
        .map(([code, n]) => `${code} ${n}`)
        .join(', ')})`
    : '';
  const clock =
    status === 'paused'
      ? ' · deadline clock stopped'
      : r.deadlineAt === null
        ? ' · deadline clock not started'
        : ` · deadline in ${Math.max(0, Math.ceil((Date.parse(r.deadlineAt) - now) / 1000))} s`;
  const state = status === 'active' ? '' : `${status} · `;
  return `${state}round ${r.round} ${bar(r.accepted, goal)} ${r.accepted}/${goal} accepted${rejected} · ${r.assigned} assigned${r.status === 'open' ? clock : ` · ${r.status}`}`;
}
