/**
 * @module Who may train: `fedge clients ls|add|revoke|rotate` (registered clients and their
 * tokens) and `fedge keys ls|create|revoke` (enrollment keys that let devices enroll themselves).
 * Secrets (client tokens, enrollment keys) are printed once, on creation.
 */
import type { Command } from 'commander';
import { shortTime, table } from './output.ts';
import { adminFor, type Context, handler, positiveInt } from './program.ts';

export function registerAccessCommands(program: Command, ctx: Context): void {
  const clients = program.command('clients').description("a task's clients: list, add (prints its token once), revoke, rotate");

  clients
    .command('ls')
    .argument('<task>', 'task id')
    .option('--limit <n>', 'at most this many [50, ≤ 200]', positiveInt('--limit'), 50)
    .action(
      handler(ctx, async (g, taskId: string, flags: { limit: number }) => {
        const list = await adminFor(ctx, g).listClients(taskId, flags.limit);
        const rows = list.map((c) => ({ ...c, createdAt: shortTime(c.createdAt), expiresAt: shortTime(c.expiresAt) }));
        return {
          json: list,
          human: table(rows, [
            ['clientId', 'CLIENT'],
            ['label', 'LABEL'],
            ['status', 'STATUS'],
            ['createdAt', 'CREATED (UTC)'],
            ['expiresAt', 'EXPIRES (UTC)'],
          ]),
        };
      }),
    );

  clients
    .command('add')
    .description('register a client; its token is printed once (the server keeps only its hash)')
    .argument('<task>', 'task id')
    .option('--label <text>', 'a label to find it by (e.g. a device name)')
    .option('--expires-in <seconds>', 'token lifetime (default: none)', positiveInt('--expires-in', 60))
    .action(
      handler(ctx, async (g, taskId: string, flags: { label?: string; expiresIn?: number }) => {
        const creds = await adminFor(ctx, g).registerClient(taskId, flags.label, flags.expiresIn === undefined ? {} : { expiresInSeconds: flags.expiresIn });
        return { json: creds, human: credentialLines(creds) };
      }),
    );

  clients
    .command('revoke')
    .description('revoke a client for good: its token stops working at its next request')
    .argument('<task>', 'task id')
    .argument('<client>', 'client id')
    .action(
      handler(ctx, async (g, taskId: string, clientId: string) => {
        const c = await adminFor(ctx, g).revokeClient(taskId, clientId);
        return { json: c, human: `client ${c.clientId}: ${c.status}` };
      }),
    );

  clients
    .command('rotate')
    .description('give a client a new token (printed once); the old one stops working at once')
    .argument('<task>', 'task id')
    .argument('<client>', 'client id')
    .action(
      handler(ctx, async (g, taskId: string, clientId: string) => {
        const creds = await adminFor(ctx, g).rotateClientToken(taskId, clientId);
        return { json: creds, human: credentialLines(creds) };
      }),
    );

  const keys = program.command('keys').description("a task's enrollment keys: list, create (prints the key once), revoke");

  keys
    .command('ls')
    .argument('<task>', 'task id')
    .action(
      handler(ctx, async (g, taskId: string) => {
        const list = await adminFor(ctx, g).listEnrollmentKeys(taskId);
        const rows = list.map((k) => ({ ...k, createdAt: shortTime(k.createdAt), expiresAt: shortTime(k.expiresAt) }));
        return {
          json: list,
          human: table(rows, [
            ['id', 'KEY'],
            ['label', 'LABEL'],
            ['status', 'STATUS'],
            ['enrolled', 'ENROLLED'],
            ['maxClients', 'MAX'],
            ['createdAt', 'CREATED (UTC)'],
            ['expiresAt', 'EXPIRES (UTC)'],
          ]),
        };
      }),
    );

  keys
    .command('create')
    .description('create an enrollment key to ship inside an app; printed once')
    .argument('<task>', 'task id')
    .option('--label <text>', 'e.g. "ios app"')
    .option('--max-clients <n>', 'clients it may enroll [1000]', positiveInt('--max-clients'))
    .option('--expires-in <seconds>', 'key lifetime (default: none)', positiveInt('--expires-in', 60))
    .option('--client-token-ttl <seconds>', 'lifetime of the tokens of the clients it enrolls (default: none)', positiveInt('--client-token-ttl', 60))
    .action(
      handler(ctx, async (g, taskId: string, f: { label?: string; maxClients?: number; expiresIn?: number; clientTokenTtl?: number }) => {
        const key = await adminFor(ctx, g).createEnrollmentKey(taskId, {
          ...(f.label === undefined ? {} : { label: f.label }),
          ...(f.maxClients === undefined ? {} : { maxClients: f.maxClients }),
          ...(f.expiresIn === undefined ? {} : { expiresInSeconds: f.expiresIn }),
          ...(f.clientTokenTtl === undefined ? {} : { clientTokenTtlSeconds: f.clientTokenTtl }),
        });
        return { json: key, human: `key id: ${key.id}\nkey:    ${key.key}\n(the key is shown once: FedgeClient.enroll({ baseUrl, taskId, enrollmentKey }))` };
      }),
    );

  keys
    .command('revoke')
    .description('stop new enrollments with the key; the clients it enrolled keep working')
    .argument('<task>', 'task id')
    .argument('<key>', 'key id')
    .action(
      handler(ctx, async (g, taskId: string, keyId: string) => {
        const k = await adminFor(ctx, g).revokeEnrollmentKey(taskId, keyId);
        return { json: k, human: `key ${k.id}: ${k.status}` };
      }),
    );
}

function credentialLines(c: { clientId: string; token: string; expiresAt: string | null }): string {
  return `client:  ${c.clientId}\ntoken:   ${c.token}\nexpires: ${c.expiresAt ?? 'never'}\n(the token is shown once: hand it to that client)`;
}
