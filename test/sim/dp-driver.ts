/**
 * @module One round of a central-DP task in the simulation: the server, not the runner, picks the
 * participants (Poisson sampling at check-in). Every virtual client checks in; those it drew train
 * and submit; the round closes at its deadline with whatever arrived (a late update is a drop-out,
 * as on real devices). Returns the round's jobs' results and the version it published, if any.
 * Seen here: a participation now and then stalls for seconds in the client (no slow request in the
 * aggregator's log), so a deadline needs slack beyond the round's training time.
 */
import type { FedgeAdmin } from '../../client-sdk/src/admin.ts';
import type { Job, JobResult, VirtualClient } from './clients.ts';
import type { Pool } from './pool.ts';

/** Check-ins in flight at once (the aggregator's per-client rate limit is per client: one each per round). */
const CHECKIN_CONCURRENCY = 50;

export interface PoissonRound {
  /** Round number on the server. */
  round: number;
  sampled: number;
  results: JobResult[];
  /** The version the round published, or null (abandoned: nobody drawn, or every update late). */
  version: number | null;
}

export async function poissonRound(
  admin: FedgeAdmin,
  taskId: string,
  clients: readonly VirtualClient[],
  pool: Pool,
  seed: number,
  onClient?: (done: number, of: number) => void,
): Promise<PoissonRound> {
  const before = await admin.getTask(taskId);
  const round = before.currentRound?.round ?? 1;
  const drawn: VirtualClient[] = [];
  for (let i = 0; i < clients.length; i += CHECKIN_CONCURRENCY) {
    const answers = await Promise.all(clients.slice(i, i + CHECKIN_CONCURRENCY).map(async (c) => ({ c, r: await c.client.checkIn() })));
    for (const { c, r } of answers) {
      if (r.status === 'assigned' && r.round === round) drawn.push(c);
      // `already_submitted`: a participation of the last round that ran past its deadline checked
      // in again on its own, was drawn for this one and took part (as a device would).
      else if (r.status === 'retry_later' && r.reason !== 'not_sampled' && r.reason !== 'already_submitted')
        throw new Error(`check-in of client ${c.k} for round ${round}: ${r.reason}`);
    }
  }
  // A drawn client is assigned at once; one whose round ended before its job ran gives up instead of waiting to be drawn again.
  const jobs: Job[] = drawn.map((c) => ({ k: c.k, round, seed, maxWaitMs: 0 }));
  const ran = await pool.run(jobs, (done) => onClient?.(done, jobs.length));
  // An update that reached this round counts; one that arrived after its deadline (late), or that
  // went on into the next round, does not count here.
  const base = before.currentVersion;
  const results = ran.map((x): JobResult => (x.status === 'accepted' && x.baseVersion !== base ? { ...x, status: 'late' } : x));
  // The round ends at its deadline (the clock started at the first draw): wait for the next one to open.
  for (;;) {
    const t = await admin.getTask(taskId);
    if ((t.currentRound?.round ?? round) > round) {
      const rec = (await admin.listRounds(taskId, 5)).find((r) => r.round === round);
      return { round, sampled: drawn.length, results, version: rec?.resultVersion ?? null };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
