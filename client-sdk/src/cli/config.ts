/**
 * @module Which platform `fedge` talks to and with which admin token: flags, the environment, a
 * config file of named profiles (`fedge login` writes it, mode 0600), and for a local URL the
 * `.dev.vars` that `npm start` writes. The token is never taken from a flag, so it stays out of
 * shell history and process lists.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseEnv } from 'node:util';
import { CliError, EXIT } from './output.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8787';

/** What `fedge login` stores: one `{ url, token }` per profile name. */
export interface ConfigFile {
  profiles: Record<string, { url: string; token: string }>;
}

export interface Target {
  url: string;
  token: string;
  /** Where the token came from, for `fedge whoami` and error messages. */
  tokenSource: 'FEDGE_ADMIN_TOKEN' | 'config' | '.dev.vars';
}

type Env = Record<string, string | undefined>;

/** `FEDGE_CONFIG`, else `$XDG_CONFIG_HOME/fedge/config.json`, else `~/.config/fedge/config.json`. */
export function configPath(env: Env): string {
  if (env.FEDGE_CONFIG) return env.FEDGE_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'fedge', 'config.json');
}

export function readConfig(path: string): ConfigFile {
  if (!existsSync(path)) return { profiles: {} };
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as ConfigFile;
    if (typeof parsed?.profiles !== 'object' || parsed.profiles === null) throw new Error('no "profiles" object');
    return parsed;
  } catch (e) {
    throw new CliError('invalid_config', `${path}: ${(e as Error).message}`, EXIT.usage);
  }
}

/** Adds or replaces a profile, keeping the others; the file is readable by its owner only. */
export function writeProfile(path: string, name: string, profile: { url: string; token: string }): void {
  const config = readConfig(path);
  config.profiles[name] = profile;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

/**
 * The platform URL and admin token, first found wins:
 * - URL: `--url`, `FEDGE_URL`, the profile's, then http://127.0.0.1:8787;
 * - token: `FEDGE_ADMIN_TOKEN`; the profile's, only when the URL is the profile's own (a token is
 *   never sent to another platform); for a local URL, `ADMIN_TOKEN` of `./.dev.vars`.
 */
export function resolveTarget(options: { url?: string | undefined; profile?: string | undefined }, env: Env, cwd: string): Target {
  const profileName = options.profile ?? env.FEDGE_PROFILE ?? 'default';
  const profile = readConfig(configPath(env)).profiles[profileName];
  if (options.profile && !profile)
    throw new CliError('invalid_argument', `no profile "${options.profile}" in ${configPath(env)} (fedge login --profile ${options.profile})`);
  const url = normalizeUrl(options.url ?? env.FEDGE_URL ?? profile?.url ?? DEFAULT_URL);
  if (env.FEDGE_ADMIN_TOKEN) return { url, token: env.FEDGE_ADMIN_TOKEN, tokenSource: 'FEDGE_ADMIN_TOKEN' };
  if (profile && normalizeUrl(profile.url) === url) return { url, token: profile.token, tokenSource: 'config' };
  const devVars = join(cwd, '.dev.vars');
  if (isLocal(url) && existsSync(devVars)) {
    const token = parseEnv(readFileSync(devVars, 'utf8')).ADMIN_TOKEN;
    if (token) return { url, token, tokenSource: '.dev.vars' };
  }
  throw new CliError('missing_token', `no admin token for ${url}: set FEDGE_ADMIN_TOKEN, or run \`fedge login --url ${url}\``, EXIT.auth);
}

export function normalizeUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new CliError('invalid_argument', `not a URL: ${raw}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CliError('invalid_argument', `not an http(s) URL: ${raw}`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

function isLocal(url: string): boolean {
  const host = new URL(url).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}
