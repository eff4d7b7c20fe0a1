/**
 * @module Group commit: accepted updates wait in memory (already folded into the running sum) and
 * are acknowledged only when the transaction holding their ledger rows, their Δ or a checkpoint of
 * the sum, and the new round state commits.
 *
 * A batch of one stores its Δ (chunked); a batch of several, or the CHECKPOINT_EVERY-th stored
 * update, writes a checkpoint of the sum instead and drops the updates it covers, so under load the
 * storage written per update falls below the update's own size. Under light load (the last commit
 * held one update, no other upload under way) a commit happens at once; otherwise accepts that
 * arrive within GROUP_COMMIT_DELAY_MS share one. A failed commit acknowledges nothing and the
 * object rebuilds its memory from storage.
 */
import type { EncodedView } from '#protocol/encoding.ts';
import type { UpdateAck } from '#protocol/messages.ts';
import type { RunningSum } from '../kernels/running-sum.ts';
import type { Faults } from './faults.ts';
import type { Ledger } from './ledger.ts';
import type { RoundStore } from './round-store.ts';

/** Checkpoint the running sum after this many stored updates. */
export const CHECKPOINT_EVERY = 16;
/** How long the first accept of a batch waits for others to join its commit, when other uploads are under way. */
const GROUP_COMMIT_DELAY_MS = 25;

/** An accepted update waiting for the group commit that makes it durable. */
export interface PendingAccept {
  ack: UpdateAck;
  /** The round (buffer) whose sum it joins: the ack's round, except for stale updates of asynchronous tasks. */
  generation: number;
  /** Its weight in the sum. */
  weight: number;
  metrics: Record<string, number> | null;
  /** DP tasks: whether the update was within the clip norm before clipping; null otherwise. */
  unclipped: boolean | null;
  /** The update as it joined the sum (float32, or the task's compressed encoding); null for a chunked update, whose chunks the range objects hold. */
  update: EncodedView | null;
  durable: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** What the group commit needs of the object that owns it. */
export interface CommitHost {
  readonly storage: DurableObjectStorage;
  readonly ledger: Ledger;
  readonly faults: Faults;
  store(): RoundStore;
  /** Whether the round keeps every update (update-based strategies) rather than a sum. */
  keepsUpdates(): boolean;
  /** The round's running sum, current with the accepts in memory. */
  sum(): RunningSum;
  /** The task state to persist with the batch (JSON). */
  stateJson(): string;
  /** After a failed commit: the state and the sum are reloaded from storage. */
  reload(): void;
}

export class GroupCommit {
  /** Accepted (summed in memory) but not yet committed. */
  private pending: PendingAccept[] = [];
  private flushScheduled = false;
  private lastBatchSize = 0;
  /** Uploads between arrival and acceptance (reading, hashing, validating): the company a commit may wait for. */
  ingesting = 0;

  private readonly host: CommitHost;

  constructor(host: CommitHost) {
    this.host = host;
  }

  get size(): number {
    return this.pending.length;
  }

  /** The pending accept of this client for its assigned round, if any. */
  find(round: number, clientId: string): PendingAccept | undefined {
    return this.pending.find((p) => p.ack.round === round && p.ack.clientId === clientId);
  }

  /** Whether this client has an update pending in this round (buffer). */
  inGeneration(generation: number, clientId: string): boolean {
    return this.pending.some((p) => p.generation === generation && p.ack.clientId === clientId);
  }

  /** Queues an accepted update; resolves once it is durable (rejects if its commit failed). */
  add(p: Omit<PendingAccept, 'durable' | 'resolve' | 'reject'>): Promise<void> {
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const durable = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    durable.catch(() => {}); // a failed commit is reported to whoever awaits it, not as unhandled
    this.pending.push({ ...p, durable, resolve, reject });
    this.schedule();
    return durable;
  }

  /** Commits now when there is no company to wait for (the last batch held one, nothing else arriving). */
  flushIfAlone(): void {
    if (this.ingesting === 0 && this.lastBatchSize <= 1 && this.pending.length > 0) this.flushNow();
  }

  /**
   * Persists the task state together with every pending accept and whatever `extra` writes, in one
   * transaction; then acknowledges the pending accepts. Every write of the task's state goes
   * through here, so the stored round state never counts an update whose ledger row is not stored
   * with it.
   */
  commit(extra?: () => void): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) this.lastBatchSize = batch.length;
    try {
      this.host.storage.transactionSync(() => {
        if (batch.length > 0) this.persist(batch);
        extra?.();
        this.host.ledger.set('task', this.host.stateJson());
      });
    } catch (e) {
      // Nothing of this batch is durable: forget the in-memory progress, rebuild from storage.
      this.host.reload();
      for (const p of batch) p.reject(e);
      throw e;
    }
    for (const p of batch) p.resolve();
  }

  private persist(batch: PendingAccept[]): void {
    this.host.faults.hit('commit');
    const { ledger } = this.host;
    for (const { ack, metrics, generation, weight, unclipped } of batch) {
      ledger.insert({
        round: generation,
        assignedRound: ack.round,
        clientId: ack.clientId,
        seq: ack.seq,
        bodySha256: ack.bodySha256,
        numExamples: ack.numExamples,
        metrics,
        ack: JSON.stringify(ack),
        acceptedAt: Date.parse(ack.acceptedAt),
        weight,
        unclipped,
      });
    }
    const round = batch[0]!.generation;
    // A ranged task's chunks are stored by its range objects: the ledger rows are all it keeps here.
    if (batch.some((p) => p.update === null)) return;
    const store = this.host.store();
    // Update-based strategies need every update at the close: store them all, never a sum.
    if (this.host.keepsUpdates()) {
      for (const p of batch) store.storeUpdate(round, p.ack.seq, p.update!);
      return;
    }
    if (batch.length === 1 && store.storedUpdates(round) + 1 < CHECKPOINT_EVERY) store.storeUpdate(round, batch[0]!.ack.seq, batch[0]!.update!);
    else store.writeCheckpoint(round, batch[batch.length - 1]!.ack.seq, this.host.sum());
  }

  /** Commits pending accepts soon, batching those that arrive meanwhile. */
  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setTimeout(() => {
      this.flushScheduled = false;
      this.flushNow();
    }, GROUP_COMMIT_DELAY_MS);
  }

  private flushNow(): void {
    if (this.pending.length === 0) return;
    try {
      this.commit();
    } catch (e) {
      console.error('group commit failed; its updates were not acknowledged:', e);
    }
  }
}
