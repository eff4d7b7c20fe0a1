/**
 * @module How `fedge` answers: JSON for scripts (`--json`), aligned tables and key/value lines for
 * people, errors with the server's code on stderr, and exit codes that say what went wrong.
 */
import { APIConnectionError, APIError, FedgeError } from '../errors.ts';

/**
 * Exit codes of `fedge`, stable for scripts (the README's CLI section lists them).
 * `unavailable` is the one worth retrying.
 */
export const EXIT = {
  ok: 0,
  /** The server (400, 413, 422) or the CLI (a local file) refused the input. */
  refused: 1,
  /** Unknown command or option, missing or malformed argument. */
  usage: 2,
  /** No admin token, or the server answered 401 / 403. */
  auth: 3,
  /** 404: no such task, client, key or version. */
  notFound: 4,
  /** 409: the task's state does not allow it (e.g. deleting a task that is not stopped). */
  conflict: 5,
  /** Connection failed, timed out, 429 or 5xx: try again later. */
  unavailable: 6,
} as const;

/** Codes of failures the CLI finds itself (the server's codes are in protocol/codes.ts). */
export const CLI_ERROR_CODES = {
  invalid_argument: 'An option or argument has a value the command cannot use (the message names it).',
  missing_token: 'No admin token: none in FEDGE_ADMIN_TOKEN, the config file or (for a local URL) .dev.vars.',
  invalid_config: 'The config file is not the JSON `fedge login` writes.',
  invalid_model_file: 'The model.json (or a weights file it names) cannot be read or is not a tfjs Layers model.',
  confirmation_required: '`tasks delete` without `--yes` where no one can be asked.',
  hash_mismatch: "A downloaded safetensors blob does not match its manifest's SHA-256.",
} as const;

export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

/** An error of the CLI itself (bad option value, unreadable file), with its code and exit code. */
export class CliError extends Error {
  override readonly name: string = 'CliError';
  readonly code: CliErrorCode;
  readonly exitCode: number;
  constructor(code: CliErrorCode, message: string, exitCode: number = EXIT.usage) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** The exit code for an error thrown by a command. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CliError) return e.exitCode;
  if (e instanceof APIError) {
    if (e.status === 401 || e.status === 403) return EXIT.auth;
    if (e.status === 404) return EXIT.notFound;
    if (e.status === 409) return EXIT.conflict;
    if (e.status === 429 || e.status >= 500) return EXIT.unavailable;
    return EXIT.refused;
  }
  if (e instanceof APIConnectionError) return EXIT.unavailable;
  if (e instanceof FedgeError) return EXIT.refused;
  return EXIT.refused;
}

/** The error as `fedge` prints it: one line for people, or `{ error: { code, status, message } }` with `--json`. */
export function formatError(e: unknown, json: boolean): string {
  const code = e instanceof FedgeError || e instanceof CliError ? e.code : 'internal_error';
  const status = e instanceof APIError ? e.status : null;
  // APIError's message starts with "<status> <code>: "; people get it once.
  const raw = e instanceof Error ? e.message : String(e);
  const message = e instanceof APIError ? raw.replace(`${e.status} ${e.code}: `, '') : raw;
  if (json) return JSON.stringify({ error: { code, status, message } });
  return `fedge: error [${code}]${status ? ` (HTTP ${status})` : ''}: ${message}`;
}

/** Where a command writes: stdout for its answer, stderr for errors and progress. */
export interface Io {
  /** A line of the answer (a newline is added). */
  out: (text: string) => void;
  /** Raw text to stdout, for redrawing a line in place. */
  write: (raw: string) => void;
  err: (text: string) => void;
  /** stdout is a terminal (live redraws, colours off otherwise). */
  isTTY: boolean;
}

/** Columns aligned with two spaces, a header row, `-` for null. Numbers right-aligned. */
export function table(rows: Record<string, unknown>[], columns: [key: string, header: string][]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((r) => columns.map(([k]) => cell(r[k])));
  const numeric = columns.map(([k]) => rows.every((r) => r[k] === null || r[k] === undefined || typeof r[k] === 'number'));
  const widths = columns.map(([, h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map(([, h]) => h)), ...cells.map(line)].join('\n');
}

/** `key: value` lines with the keys aligned. */
export function fields(entries: [string, unknown][]): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`).join('\n');
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** `YYYY-MM-DD HH:MM` (UTC) of an ISO time or epoch ms, for tables. */
export function shortTime(t: string | number | null): string | null {
  if (t === null) return null;
  return new Date(t).toISOString().slice(0, 16).replace('T', ' ');
}

/** `[██████░░░░]` of width `width` for done/total. */
export function bar(done: number, total: number, width = 20): string {
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}
