/** Types for local-server.mjs (plain ESM run directly by node). */

/** The repository root (where wrangler.jsonc lives). */
export declare const REPO_ROOT: string;
/** Default local state folder (D1, R2, Durable Objects): `<repo>/.fedge-state`. */
export declare const DEFAULT_STATE_DIR: string;
export declare const DEFAULT_PORT: number;

export type OutputSink = (text: string, stream: 'stdout' | 'stderr') => void;

export interface LocalServerOptions {
  /** Default 8787. */
  port?: number;
  /** Default 127.0.0.1. */
  ip?: string;
  /** Folder for D1, R2 and Durable Object data (`--persist-to`); default `<repo>/.fedge-state`. */
  stateDir?: string;
  /**
   * The ADMIN_TOKEN secret. Given, it reaches wrangler through a private temporary env file (the
   * repo's .dev.vars is then not read); omitted, the token in `<repo>/.dev.vars` is used (generated on first use).
   */
  adminToken?: string;
  /** Apply D1 migrations before serving; default true. */
  migrate?: boolean;
  /** Receives wrangler's output; default: forwarded to this process's stdout/stderr. */
  onOutput?: OutputSink;
  /** Default 120000. */
  readyTimeoutMs?: number;
  /** More `wrangler dev` flags. */
  extraArgs?: string[];
  /** More environment for the wrangler children. */
  env?: Record<string, string>;
}

export interface LocalServer {
  /** e.g. http://127.0.0.1:8787 (the API is under /v1). */
  url: string;
  port: number;
  /** Absolute. */
  stateDir: string;
  adminToken: string;
  /** wrangler's process id (leader of its process group on POSIX). */
  pid: number;
  /** From the call to healthy, migrations included. */
  startupMs: number;
  /** Resolves with wrangler's exit code when it ends, for any reason. */
  exited: Promise<number | null>;
  /** SIGTERM to wrangler, wait for a clean exit (workerd included), SIGKILL the group after 10 s; idempotent. */
  stop(): Promise<void>;
}

/** Starts `wrangler dev` (migrations first) and resolves once `/v1/health` answers 200; cleans up if startup fails. */
export declare function startLocalServer(opts?: LocalServerOptions): Promise<LocalServer>;

/** WRANGLER_SEND_METRICS=false, CLOUDFLARE_CF_FETCH_ENABLED=false, WRANGLER_HIDE_BANNER=true. */
export declare function offlineEnv(): Record<string, string>;
/** 32 random bytes, base64url. */
export declare function generateAdminToken(): string;
/** Reads ADMIN_TOKEN from `.dev.vars` (default `<repo>/.dev.vars`), adding a fresh one when missing. */
export declare function ensureAdminToken(devVarsPath?: string): { token: string; created: boolean; path: string };
/** A TCP port that was free a moment ago. */
export declare function findFreePort(host?: string): Promise<number>;
/** Runs one wrangler command to completion, stdin closed (never prompts). */
export declare function runWrangler(args: string[], opts?: { cwd?: string; onOutput?: OutputSink; env?: Record<string, string> }): Promise<void>;
/** `wrangler d1 migrations apply DB --local --persist-to <stateDir>`, non-interactive. */
export declare function applyMigrations(opts?: { stateDir?: string; cwd?: string; onOutput?: OutputSink }): Promise<void>;
/** Polls `GET <url>/v1/health` until 200. */
export declare function waitForHealth(
  url: string,
  opts?: { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal; isAlive?: () => boolean },
): Promise<void>;
/** Whether any non-zombie process of the process group led by `pgid` is still running (POSIX; on Windows: the pid). */
export declare function processGroupAlive(pgid: number): boolean;
