/**
 * @module The `fedge` command tree (commander): global options, how a command's answer is printed,
 * and the exit code of a run. Each command group lives in its own file beside this one.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { FedgeAdmin } from '../admin.ts';
import { registerAccessCommands } from './access.ts';
import { configPath, normalizeUrl, resolveTarget, type Target, writeProfile } from './config.ts';
import { CliError, EXIT, exitCodeOf, fields, formatError, type Io } from './output.ts';
import { registerTaskCommands } from './tasks.ts';
import { registerVersionCommands } from './versions.ts';
import { registerWatchCommand } from './watch.ts';

/** What a command runs with: where to write, the environment, and how to reach the platform. */
export interface Context {
  io: Io;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Fires on Ctrl-C: `watch` ends cleanly, a request in flight is cancelled. */
  signal: AbortSignal;
  /** The token's text, when `login` reads it from stdin. */
  readStdin: () => Promise<string>;
  fetch?: typeof fetch;
}

export interface Globals {
  url?: string;
  profile?: string;
  json: boolean;
  timeout: number;
}

/** What a command answers: its JSON for `--json`, and the text people read. */
export interface Answer {
  json: unknown;
  human: string;
}

/** Runs `fedge` with `argv` (without node and the script); resolves to the exit code. */
export async function runCli(argv: string[], ctx: Context): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage; // commander printed it
    const json = argv.includes('--json');
    ctx.io.err(formatError(e, json));
    return exitCodeOf(e);
  }
}

export function buildProgram(ctx: Context): Command {
  const program = new Command('fedge')
    .description('Operate a fedge platform: tasks, clients, enrollment keys, rounds and model versions.')
    .version(pkg.version, '-V, --version')
    .option('--url <url>', 'the platform (default: FEDGE_URL, the profile, http://127.0.0.1:8787)')
    .option('--profile <name>', 'a profile of the config file (default: FEDGE_PROFILE, "default")')
    .option('--json', 'answer in JSON (for scripts); errors as {"error": {code, status, message}} on stderr', false)
    .addOption(new Option('--timeout <seconds>', 'per-request timeout').default(120).argParser(positiveInt('--timeout')))
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.io.out(s.replace(/\n$/, '')), writeErr: (s) => ctx.io.err(s.replace(/\n$/, '')) })
    .addHelpText(
      'after',
      `
The admin token comes from FEDGE_ADMIN_TOKEN, the config file (fedge login), or, for a local URL,
./.dev.vars (what npm start writes); never from a flag. Config file: ${configPath(ctx.env)}

Exit codes: 0 done, 1 refused (400/413/422, a bad local file), 2 usage, 3 no token or 401/403,
4 not found, 5 conflict (409: the task's state does not allow it), 6 unavailable (try again).`,
    );

  program
    .command('login')
    .description('check an admin token against the platform and save it in a profile of the config file (token read from stdin)')
    .action(
      handler(ctx, async (g) => {
        const url = normalizeUrl(g.url ?? ctx.env.FEDGE_URL ?? 'http://127.0.0.1:8787');
        if (ctx.io.isTTY) ctx.io.err(`admin token for ${url} (input is read from stdin):`);
        const token = (await ctx.readStdin()).trim();
        if (!token) throw new CliError('missing_token', 'no token on stdin', EXIT.auth);
        const tasks = await adminFor(ctx, g, { url, token, tokenSource: 'config' }).listTasks({ limit: 1 });
        const name = g.profile ?? 'default';
        writeProfile(configPath(ctx.env), name, { url, token });
        return {
          json: { profile: name, url, config: configPath(ctx.env) },
          human: `logged in to ${url} as profile "${name}" (${tasks.length ? 'tasks visible' : 'no tasks yet'})`,
        };
      }),
    );

  program
    .command('whoami')
    .description('which platform and token source the other commands use, and whether the token works')
    .action(
      handler(ctx, async (g) => {
        const target = resolveTarget(g, ctx.env, ctx.cwd);
        await adminFor(ctx, g, target).listTasks({ limit: 1 });
        return {
          json: { url: target.url, tokenSource: target.tokenSource },
          human: fields([
            ['url', target.url],
            ['token from', target.tokenSource],
            ['token', 'accepted'],
          ]),
        };
      }),
    );

  registerTaskCommands(program, ctx);
  registerAccessCommands(program, ctx);
  registerVersionCommands(program, ctx);
  registerWatchCommand(program, ctx);
  return program;
}

/** A commander action that resolves the globals, runs `run`, and prints its answer. */
export function handler<A extends unknown[]>(ctx: Context, run: (g: Globals, ...args: A) => Promise<Answer | null>) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const g = cmd.optsWithGlobals() as Globals;
    const answer = await run(g, ...(args.slice(0, -1) as A));
    if (answer) ctx.io.out(g.json ? JSON.stringify(answer.json, null, 2) : answer.human);
  };
}

/** The SDK's admin client for the resolved platform (flags, environment, config). */
export function adminFor(ctx: Context, g: Globals, target: Target = resolveTarget(g, ctx.env, ctx.cwd)): FedgeAdmin {
  return new FedgeAdmin({
    baseUrl: target.url,
    token: target.token,
    timeoutMs: g.timeout * 1000,
    ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
  });
}

/** A commander argument parser for an integer ≥ `min`. */
export function positiveInt(name: string, min = 1): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

/** A commander argument parser for a finite number > 0. */
export function positiveNumber(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number > 0`);
    return n;
  };
}
