/**
 * @module `fedge versions ls|get`: a task's model versions with their lineage and metrics, and a
 * version downloaded as tfjs files (`model.json` + `weights.bin`) or one safetensors blob.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import type { ModelManifest } from '../protocol/messages.ts';
import { CliError, EXIT, shortTime, table } from './output.ts';
import { adminFor, type Context, handler, positiveInt } from './program.ts';

export function registerVersionCommands(program: Command, ctx: Context): void {
  const versions = program.command('versions').description("a task's model versions: list them, download one");

  versions
    .command('ls')
    .argument('<task>', 'task id')
    .option('--limit <n>', 'at most this many [50, ≤ 200]', positiveInt('--limit'), 50)
    .action(
      handler(ctx, async (g, taskId: string, flags: { limit: number }) => {
        const list = await adminFor(ctx, g).listVersions(taskId, { limit: flags.limit });
        return { json: list, human: table(list.map(versionRow), versionColumns(list)) };
      }),
    );

  versions
    .command('get')
    .description('download a version into a folder')
    .argument('<task>', 'task id')
    .argument('<version>', 'version number, or "current"')
    .addOption(
      new Option('--format <format>', 'tfjs (model.json + weights.bin, for tf.loadLayersModel) or safetensors')
        .choices(['tfjs', 'safetensors'])
        .default('tfjs'),
    )
    .option('-o, --out <dir>', 'folder to write into (created if missing)', '.')
    .action(
      handler(ctx, async (g, taskId: string, v: string, flags: { format: 'tfjs' | 'safetensors'; out: string }) => {
        const admin = adminFor(ctx, g);
        const manifest = await admin.getManifest(taskId, parseVersion(v));
        const { files } = await admin.downloadVersion(taskId, manifest.version, flags.format);
        if (flags.format === 'safetensors') {
          const blob = Object.values(files)[0]!;
          const hash = createHash('sha256').update(blob).digest('hex');
          if (hash !== manifest.contentHash)
            throw new CliError(
              'hash_mismatch',
              `version ${manifest.version}: SHA-256 ${hash}, manifest ${manifest.contentHash}; nothing written`,
              EXIT.unavailable,
            );
        }
        const dir = resolve(ctx.cwd, flags.out);
        await mkdir(dir, { recursive: true });
        const written: { path: string; bytes: number }[] = [];
        for (const [name, bytes] of Object.entries(files)) {
          const path = join(dir, name);
          await writeFile(path, bytes);
          written.push({ path, bytes: bytes.byteLength });
        }
        return {
          json: { taskId, version: manifest.version, format: flags.format, contentHash: manifest.contentHash, files: written },
          human: [`version ${manifest.version} (${flags.format}):`, ...written.map((f) => `  ${f.path}  ${f.bytes} bytes`)].join('\n'),
        };
      }),
    );
}

function parseVersion(v: string): number | 'current' {
  if (v === 'current') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new CliError('invalid_argument', `version must be a number ≥ 0 or "current", not "${v}"`);
  return n;
}

export const VERSION_COLUMNS: [string, string][] = [
  ['version', 'VERSION'],
  ['parentVersion', 'PARENT'],
  ['round', 'ROUND'],
  ['strategy', 'STRATEGY'],
  ['participants', 'CLIENTS'],
  ['numExamples', 'EXAMPLES'],
  ['accuracy', 'ACCURACY'],
  ['loss', 'LOSS'],
  ['hash', 'SHA-256'],
  ['createdAt', 'CREATED (UTC)'],
];

/** The columns of a version table: with ε (at δ) when a version was made under differential privacy. */
export function versionColumns(list: readonly ModelManifest[]): [string, string][] {
  if (!list.some((m) => m.privacy)) return VERSION_COLUMNS;
  const at = VERSION_COLUMNS.findIndex(([key]) => key === 'hash');
  return [...VERSION_COLUMNS.slice(0, at), ['epsilon', 'ε (δ)'], ...VERSION_COLUMNS.slice(at)];
}

/** ε as spent up to this version, with its δ (`2.41 (δ=0.00001)`), or null without DP. */
export function epsilonText(m: ModelManifest): string | null {
  return m.privacy ? `${m.privacy.epsilon.toFixed(2)} (δ=${m.privacy.delta})` : null;
}

/** A version as a table row: accuracy and loss from the clients' federated evaluation of it, else the server's metrics. */
export function versionRow(m: ModelManifest): Record<string, unknown> {
  const metrics = m.federatedEvaluation?.metrics ?? m.serverMetrics ?? {};
  return {
    version: m.version,
    parentVersion: m.parentVersion,
    round: m.round,
    strategy: m.strategy?.name ?? null,
    participants: m.participants,
    numExamples: m.numExamples,
    accuracy: metrics.accuracy ?? null,
    loss: metrics.loss ?? null,
    epsilon: epsilonText(m),
    hash: m.contentHash.slice(0, 12),
    createdAt: shortTime(m.createdAt),
  };
}
