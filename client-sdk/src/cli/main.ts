#!/usr/bin/env node
/**
 * @module The `fedge` executable: runs the command tree with this process's stdio, environment and
 * Ctrl-C, and exits with the command's code (see output.ts `EXIT`). A second Ctrl-C exits at once.
 */
import { text } from 'node:stream/consumers';
import { runCli } from './program.ts';

const interrupt = new AbortController();
process.on('SIGINT', () => {
  if (interrupt.signal.aborted) process.exit(130);
  interrupt.abort();
});

process.exitCode = await runCli(process.argv.slice(2), {
  io: {
    out: (s) => process.stdout.write(`${s}\n`),
    write: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(`${s}\n`),
    isTTY: process.stdout.isTTY === true,
  },
  env: process.env,
  cwd: process.cwd(),
  signal: interrupt.signal,
  readStdin: () => text(process.stdin),
});
