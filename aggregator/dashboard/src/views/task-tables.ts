/**
 * @module A task's tables: the version lineage (with downloads; its metrics are in the charts and
 * their data tables), recent rounds, and clients (with revoke).
 */
import type { Api, Client, Round, Version } from '../api.ts';
import { bytes, count, h, saveBlob, table, time } from '../dom.ts';
import type { ViewContext } from './context.ts';

function strategyText(v: Version): string {
  if (!v.strategy) return '—';
  const params = Object.entries(v.strategy.params).map(([k, p]) => `${k}=${p}`);
  return params.length > 0 ? `${v.strategy.name} (${params.join(', ')})` : v.strategy.name;
}

function privacyText(v: Version): HTMLElement | string {
  const p = v.privacy;
  if (!p) return '—';
  return h(
    'span',
    {
      'data-epsilon': String(p.epsilon),
      title: `${p.mode} DP, ${p.rounds} round(s): z = ${p.noiseMultiplier}, S = ${p.clipNorm}, q = ${p.samplingRate}; ${p.accountant}`,
    },
    `${p.epsilon.toFixed(2)} (${p.delta})`,
  );
}

export function versionsTable(taskId: string, versions: Version[], api: Api, ctx: ViewContext): HTMLElement {
  const download = (v: Version, format: 'safetensors' | 'tfjs') =>
    h(
      'button',
      {
        type: 'button',
        class: 'small',
        'data-download': `${v.version}:${format}`,
        'aria-label': `download version ${v.version} as ${format}`,
        onclick: async (event: Event) => {
          const button = event.currentTarget as HTMLButtonElement;
          button.disabled = true;
          try {
            for (const file of await api.download(taskId, v.version, format)) saveBlob(file.name, file.blob);
            ctx.notice(`Version ${v.version} downloaded (${format}).`);
          } catch (e) {
            ctx.failed(e);
          } finally {
            button.disabled = false;
          }
        },
      },
      format,
    );
  // Under differential privacy: ε spent up to each version, with its clip norm and noise.
  const dp = versions.some((v) => v.privacy);
  return table(
    'Versions',
    ['Version', 'Parent', 'Round', 'Strategy', ...(dp ? ['ε (δ)'] : []), 'Participants', 'Examples', 'Size', 'SHA-256', 'Created', 'Download'],
    versions.map((v) => [
      String(v.version),
      v.parentVersion === null ? '—' : String(v.parentVersion),
      v.round === null ? '—' : String(v.round),
      strategyText(v),
      ...(dp ? [privacyText(v)] : []),
      String(v.participants),
      count(v.numExamples),
      bytes(v.byteLength),
      h('code', { title: v.contentHash, 'data-hash': v.contentHash }, v.contentHash.slice(0, 12)),
      time(v.createdAt),
      h('span', { class: 'actions' }, download(v, 'safetensors'), download(v, 'tfjs')),
    ]),
    { 'data-table': 'versions' },
  );
}

export function roundsTable(rounds: Round[]): HTMLElement {
  return table(
    'Recent rounds',
    ['Round', 'Status', 'Accepted', 'Rejected', 'Examples', 'Result', 'Closed', 'Why'],
    rounds.map((r) => [
      String(r.round),
      h('span', { class: `badge ${r.status}` }, r.status),
      String(r.accepted),
      Object.keys(r.rejectedByCode).length > 0
        ? `${r.rejected} (${Object.entries(r.rejectedByCode)
            .map(([c, n]) => `${c} ${n}`)
            .join(', ')})`
        : String(r.rejected),
      r.numExamples === null ? '—' : count(r.numExamples),
      r.resultVersion === null ? '—' : `version ${r.resultVersion}`,
      time(r.closedAt),
      r.closeReason ?? '—',
    ]),
    { 'data-table': 'rounds' },
  );
}

export function clientsTable(taskId: string, clients: Client[], api: Api, ctx: ViewContext, onChange: () => void): HTMLElement {
  return table(
    'Clients',
    ['Client', 'Label', 'Status', 'Created', 'Expires', 'Enrolled with', ''],
    clients.map((c) => [
      h('code', {}, c.clientId),
      c.label ?? '—',
      h('span', { class: `badge ${c.status}` }, c.status),
      time(c.createdAt),
      time(c.expiresAt),
      c.enrollmentKeyId ? h('code', {}, c.enrollmentKeyId) : 'operator',
      c.status === 'revoked'
        ? ''
        : h(
            'button',
            {
              type: 'button',
              class: 'small danger',
              'data-revoke': c.clientId,
              'aria-label': `revoke client ${c.clientId}`,
              onclick: async () => {
                if (!confirm(`Revoke client ${c.clientId}${c.label ? ` (${c.label})` : ''}? Its token stops working at once, for good.`)) return;
                try {
                  await api.revokeClient(taskId, c.clientId);
                  ctx.notice(`Client ${c.clientId} revoked.`);
                  onChange();
                } catch (e) {
                  ctx.failed(e);
                }
              },
            },
            'Revoke',
          ),
    ]),
    { 'data-table': 'clients' },
  );
}
