/**
 * @module The master aggregator's SQLite: versioned schema migrations, the task's stored state,
 * assignments, the exactly-once ledger and rejection counts.
 *
 * Migrations run in order in the object's constructor, each once past the version recorded in the
 * `meta` table; the first, which creates that table, is idempotent and runs every time. Every
 * migration also upgrades a database made before versions were recorded.
 */
import type { UpdateAck } from '#protocol/messages.ts';

/** A stored acknowledgement, as the API sends it: ones stored before times were ISO strings carry `acceptedAt` in ms. */
export function parseStoredAck(json: string): UpdateAck {
  const ack = JSON.parse(json) as Omit<UpdateAck, 'acceptedAt'> & { acceptedAt: string | number };
  return { ...ack, acceptedAt: typeof ack.acceptedAt === 'number' ? new Date(ack.acceptedAt).toISOString() : ack.acceptedAt };
}

export type LedgerRow = {
  client_id: string;
  num_examples: number;
  metrics: string | null;
  accepted_at: number;
};

/** An accepted update's ledger row, as the group commit writes it. */
export interface AcceptRow {
  /** The round (buffer) it counts in. */
  round: number;
  /** The round it was assigned (its retries' key; differs from `round` for stale updates of asynchronous tasks). */
  assignedRound: number;
  clientId: string;
  seq: number;
  bodySha256: string;
  numExamples: number;
  metrics: Record<string, number> | null;
  ack: string;
  acceptedAt: number;
  weight: number;
  /** DP tasks: whether the update's norm was ≤ the round's clip norm before clipping (adaptive clipping counts these); null otherwise. */
  unclipped: boolean | null;
}

const MIGRATIONS: ((sql: SqlStorage) => void)[] = [
  // 1: the first schema.
  (sql) =>
    sql.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS assignments (round INTEGER NOT NULL, client_id TEXT NOT NULL, assigned_at INTEGER NOT NULL, PRIMARY KEY (round, client_id));
      CREATE TABLE IF NOT EXISTS ledger (
        round INTEGER NOT NULL, client_id TEXT NOT NULL, seq INTEGER NOT NULL, body_sha256 TEXT NOT NULL,
        num_examples INTEGER NOT NULL, metrics TEXT, ack TEXT NOT NULL, accepted_at INTEGER NOT NULL,
        PRIMARY KEY (round, client_id));
      CREATE UNIQUE INDEX IF NOT EXISTS ledger_seq ON ledger (round, seq);
      CREATE TABLE IF NOT EXISTS update_chunks (round INTEGER NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (round, seq, idx));
      CREATE TABLE IF NOT EXISTS checkpoint_chunks (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS rejections (round INTEGER NOT NULL, code TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (round, code));
      CREATE TABLE IF NOT EXISTS strategy_chunks (name TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (name, idx));
    `),
  // 2: asynchronous tasks: the round a client was assigned (the key its retries use) and the update's weight.
  (sql) => {
    const columns = columnsOf(sql, 'ledger');
    if (!columns.has('assigned_round')) sql.exec(`ALTER TABLE ledger ADD COLUMN assigned_round INTEGER`);
    if (!columns.has('weight')) sql.exec(`ALTER TABLE ledger ADD COLUMN weight REAL`);
    sql.exec(`CREATE INDEX IF NOT EXISTS ledger_assigned ON ledger (assigned_round, client_id)`);
  },
  // 3: differential privacy: each client's Poisson draw per round, and whether its update was within the clip norm.
  (sql) => {
    sql.exec(
      `CREATE TABLE IF NOT EXISTS sampling (round INTEGER NOT NULL, client_id TEXT NOT NULL, selected INTEGER NOT NULL, PRIMARY KEY (round, client_id))`,
    );
    if (!columnsOf(sql, 'ledger').has('unclipped')) sql.exec(`ALTER TABLE ledger ADD COLUMN unclipped INTEGER`);
  },
  // 4: secure aggregation (secagg-round.ts): advertised keys, who shared, the sealed shares, masked vectors, revealed shares.
  (sql) =>
    sql.exec(`
      CREATE TABLE IF NOT EXISTS secagg_keys (round INTEGER NOT NULL, client_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (round, client_id));
      CREATE TABLE IF NOT EXISTS secagg_shared (round INTEGER NOT NULL, client_id TEXT NOT NULL, body_sha256 TEXT NOT NULL, PRIMARY KEY (round, client_id));
      CREATE TABLE IF NOT EXISTS secagg_shares (round INTEGER NOT NULL, recipient TEXT NOT NULL, sender TEXT NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (round, recipient, sender));
      CREATE TABLE IF NOT EXISTS secagg_masked (round INTEGER NOT NULL, client_id TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (round, client_id, idx));
      CREATE TABLE IF NOT EXISTS secagg_reveals (round INTEGER NOT NULL, client_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (round, client_id));
    `),
];

function columnsOf(sql: SqlStorage, table: string): Set<string> {
  return new Set(
    sql
      .exec<{ name: string }>(`PRAGMA table_info(${table})`)
      .toArray()
      .map((c) => c.name),
  );
}

export class Ledger {
  private readonly sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.sql = sql;
  }

  /** Brings the schema up to date; returns the version it is at. */
  migrate(): number {
    // The meta table holds the version, so migration 1 (which creates it) always runs first.
    MIGRATIONS[0]!(this.sql);
    const from = Number(this.get('schema_version') ?? 1);
    for (let v = from; v < MIGRATIONS.length; v++) MIGRATIONS[v]!(this.sql);
    if (from !== MIGRATIONS.length) this.set('schema_version', String(MIGRATIONS.length));
    return MIGRATIONS.length;
  }

  /** A `meta` value (JSON text), or undefined. */
  get(key: string): string | undefined {
    return this.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value;
  }

  set(key: string, value: string): void {
    this.sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, key, value);
  }

  delete(key: string): void {
    this.sql.exec(`DELETE FROM meta WHERE key = ?`, key);
  }

  assign(round: number, clientId: string, at: number): void {
    this.sql.exec(`INSERT INTO assignments (round, client_id, assigned_at) VALUES (?, ?, ?)`, round, clientId, at);
  }

  isAssigned(round: number, clientId: string): boolean {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM assignments WHERE round = ? AND client_id = ?`, round, clientId).one().n > 0;
  }

  /** Whether the client holds any assignment (the live round's, or a recent buffer's in asynchronous tasks). */
  hasAssignment(clientId: string): boolean {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM assignments WHERE client_id = ?`, clientId).one().n > 0;
  }

  /** Whether a committed update of this client counts in this round (whatever round it was assigned). */
  hasUpdateIn(round: number, clientId: string): boolean {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ledger WHERE round = ? AND client_id = ?`, round, clientId).one().n > 0;
  }

  /** The accepted update of a client for the round it was assigned, for answering a retry. */
  prior(assignedRound: number, clientId: string): { body_sha256: string; ack: UpdateAck } | undefined {
    // Two indexed lookups (rows from before assigned_round existed have it null), not a scan of the round's ledger.
    const row = this.sql
      .exec<{ body_sha256: string; ack: string }>(
        `SELECT body_sha256, ack FROM ledger WHERE (assigned_round = ? AND client_id = ?) OR (assigned_round IS NULL AND round = ? AND client_id = ?)`,
        assignedRound,
        clientId,
        assignedRound,
        clientId,
      )
      .toArray()[0];
    return row && { body_sha256: row.body_sha256, ack: parseStoredAck(row.ack) };
  }

  insert(r: AcceptRow): void {
    this.sql.exec(
      `INSERT INTO ledger (round, client_id, seq, body_sha256, num_examples, metrics, ack, accepted_at, assigned_round, weight, unclipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      r.round,
      r.clientId,
      r.seq,
      r.bodySha256,
      r.numExamples,
      r.metrics ? JSON.stringify(r.metrics) : null,
      r.ack,
      r.acceptedAt,
      r.assignedRound,
      r.weight,
      r.unclipped === null ? null : Number(r.unclipped),
    );
  }

  /** How many of the round's accepted updates were within the clip norm before clipping (DP tasks). */
  unclippedIn(round: number): number {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ledger WHERE round = ? AND unclipped = 1`, round).one().n;
  }

  /** A DP task's Poisson draw for this client in this round, or undefined before it was drawn. */
  sampling(round: number, clientId: string): boolean | undefined {
    const row = this.sql.exec<{ selected: number }>(`SELECT selected FROM sampling WHERE round = ? AND client_id = ?`, round, clientId).toArray()[0];
    return row === undefined ? undefined : row.selected === 1;
  }

  /** Records the draw, once: a client cannot draw again by checking in again. */
  recordSampling(round: number, clientId: string, selected: boolean): void {
    this.sql.exec(`INSERT INTO sampling (round, client_id, selected) VALUES (?, ?, ?)`, round, clientId, Number(selected));
  }

  /** The round's accepted updates, in acceptance order. */
  rowsOf(round: number): LedgerRow[] {
    return this.sql.exec<LedgerRow>(`SELECT client_id, num_examples, metrics, accepted_at FROM ledger WHERE round = ? ORDER BY seq`, round).toArray();
  }

  /** The round's clients with their weights in the sum and example counts, in acceptance order. */
  weightsOf(round: number): { client_id: string; weight: number; num_examples: number }[] {
    return this.sql
      .exec<{ client_id: string; weight: number; num_examples: number }>(
        `SELECT client_id, coalesce(weight, num_examples) AS weight, num_examples FROM ledger WHERE round = ? ORDER BY seq`,
        round,
      )
      .toArray();
  }

  /** The round's updates accepted after `afterSeq`, with their weights in the sum, in acceptance order. */
  after(round: number, afterSeq: number): { seq: number; num_examples: number; weight: number | null }[] {
    return this.sql
      .exec<{ seq: number; num_examples: number; weight: number | null }>(
        `SELECT seq, num_examples, weight FROM ledger WHERE round = ? AND seq > ? ORDER BY seq`,
        round,
        afterSeq,
      )
      .toArray();
  }

  countRejection(round: number, code: string): void {
    this.sql.exec(`INSERT INTO rejections (round, code, n) VALUES (?, ?, 1) ON CONFLICT (round, code) DO UPDATE SET n = n + 1`, round, code);
  }

  rejectionsOf(round: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.sql.exec<{ code: string; n: number }>(`SELECT code, n FROM rejections WHERE round = ?`, round)) out[r.code] = r.n;
    return out;
  }

  /**
   * After a round: drops its assignments and rejection counts, and ledger rows older than
   * `ledgerRoundsKept` rounds (so a retry whose acknowledgement was lost still gets it).
   * Asynchronous tasks still take updates assigned up to `keepAssignedRounds` rounds ago: their
   * assignments and ledger rows stay.
   */
  clearRound(round: number, keepAssignedRounds: number, ledgerRoundsKept: number): void {
    this.sql.exec(`DELETE FROM assignments WHERE round <= ?`, round - keepAssignedRounds);
    this.sql.exec(`DELETE FROM ledger WHERE round <= ?`, round - Math.max(ledgerRoundsKept, keepAssignedRounds + 1));
    this.sql.exec(`DELETE FROM rejections WHERE round <= ?`, round);
    this.sql.exec(`DELETE FROM sampling WHERE round <= ?`, round);
  }

  /** An abandoned round's updates were discarded: no retry may be answered with their acknowledgements. */
  /** Drops the secure-aggregation rows of rounds up to `round` (keys, shares, masked vectors, reveals). */
  clearSecAgg(round: number): void {
    for (const table of ['secagg_keys', 'secagg_shared', 'secagg_shares', 'secagg_masked', 'secagg_reveals'])
      this.sql.exec(`DELETE FROM ${table} WHERE round <= ?`, round);
  }

  forgetRound(round: number): void {
    this.sql.exec(`DELETE FROM ledger WHERE round = ?`, round);
  }
}
