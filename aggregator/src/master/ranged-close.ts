/**
 * @module The close of a ranged task's round (ranges.ts), at the master: the deadline, then every
 * range object sums its accepted chunks and steps the strategy on its slice; they write the new
 * version's parts into one R2 multipart upload (the master writes only the header, inside part 1,
 * and the short last part); the master completes it, hashes the file as a stream, and records the
 * version as an unsharded close does.
 *
 * Idempotent like `publish`: the upload's id is kept with the task state, a range's output is
 * computed once per version, a part written again replaces itself, and a version already assembled
 * (the object exists) is only hashed and recorded.
 */
import type { UpdateEncoding } from '#protocol/encoding.ts';
import { MODEL_META } from '#protocol/messages.ts';
import { hexOf, type StoredBlob } from '../storage/weights.ts';
import { DEFAULT_STRATEGY } from '../strategies/index.ts';
import { type KrumParams, type KrumSelection, krumSelection } from '../strategies/krum.ts';
import { abandon, type CloseHost, record } from './publish.ts';
import type { PartJob, RangeClose, RangeWork } from './range-aggregator.ts';
import { CLOSE_PARALLEL, rangeBounds, rangedKey, versionHeader } from './ranges.ts';
import * as machine from './round-machine.ts';

/** What the master calls on a range object (RangeAggregator's RPC methods). */
export interface RangeCalls {
  compute(job: RangeClose): Promise<{ carry: Uint8Array }>;
  writePart(args: PartJob): Promise<R2UploadedPart>;
  advance(round: number, version: number | null): Promise<void>;
  distanceParts(round: number, clientIds: string[], length: number, encoding: UpdateEncoding): Promise<Float64Array>;
}

export interface RangedHost extends CloseHost {
  range(index: number): RangeCalls;
}

/** The alarm of a ranged master: applies the deadline, then publishes or abandons a round that ended. */
export async function closeRanged(host: RangedHost, now: number): Promise<void> {
  let task = host.state()!;
  const deadline = machine.applyDeadline(task.state, task.spec.rules, now);
  if (deadline !== task.state) {
    host.setState({ ...task, state: deadline });
    host.commits.commit();
    task = host.state()!;
  }
  const { round, status } = task.state;
  if (status === 'abandoned') {
    await abandon(host);
    await tellRanges(host, round, null);
    return;
  }
  if (status !== 'closing') return;
  const { spec } = task;
  const version = task.latestVersion + 1;
  const clients = host.ledger.weightsOf(round).map((r) => ({ clientId: r.client_id, weight: r.weight, numExamples: r.num_examples }));
  const numExamples = clients.reduce((a, c) => a + c.numExamples, 0);
  const baseOffset = await dataOffset(host.env.MODELS, task.latestKey);
  const encoding = spec.updateEncoding ?? 'float32';
  const strategy = host.strategy();
  const selection = strategy.keeps === 'updates' && !strategy.coordinateWise ? await krumAcrossRanges(host, round, clients, encoding) : undefined;
  const blob = await assembleRanged(host, version, ({ start }) => ({
    kind: 'sum',
    round,
    clients,
    numExamples,
    encoding,
    strategy: spec.strategy ?? DEFAULT_STRATEGY,
    selection,
    base: { key: task.latestKey, offset: baseOffset + start * 4 },
  }));
  host.faults.hit('after_blob');
  await record(host, { blob, numExamples, privacy: null, strategyState: null });
  await tellRanges(host, round, version);
}

/**
 * Version `version` of a ranged task, assembled in R2: each range object computes its slice
 * (`work`), then writes its part of one multipart upload; the master adds the short last part, if
 * any, completes the upload and hashes the file as a stream. A version already assembled (the
 * object exists) is only hashed. The upload's id is kept with the task state, so a retry resumes it.
 */
export async function assembleRanged(
  host: Pick<RangedHost, 'env' | 'state' | 'setState' | 'commits' | 'range'>,
  version: number,
  work: (bounds: { start: number; end: number }) => RangeWork,
): Promise<StoredBlob> {
  const { spec } = host.state()!;
  const layout = spec.ranges!;
  const bucket = host.env.MODELS;
  const key = rangedKey(spec.taskId, version);
  if ((await bucket.head(key)) === null) {
    const head = versionHeader(spec.tensors, { [MODEL_META.task]: spec.taskId, [MODEL_META.version]: String(version) });
    const partBytes = layout.params * 4;
    if (head.length >= partBytes) throw new Error(`the version header (${head.length} bytes) does not fit in one part (${partBytes})`);
    const task = host.state()!;
    let uploadId = task.publishing?.version === version ? task.publishing.uploadId : null;
    if (uploadId === null) {
      uploadId = (await bucket.createMultipartUpload(key, { httpMetadata: { contentType: 'application/octet-stream' } })).uploadId;
      host.setState({ ...host.state()!, publishing: { version, uploadId } });
      host.commits.commit();
    }
    const bounds = Array.from({ length: layout.count }, (_, k) => rangeBounds(layout, spec.numParams, k));
    const geometry = { version, partBytes, headBytes: head.length };
    const carries = await eachLimited(layout.count, CLOSE_PARALLEL, (k) =>
      host.range(k).compute({ ...geometry, work: work(bounds[k]!), length: bounds[k]!.end - bounds[k]!.start }),
    );
    const parts = await eachLimited(layout.count, CLOSE_PARALLEL, (k) =>
      host.range(k).writePart({
        ...geometry,
        length: bounds[k]!.end - bounds[k]!.start,
        key,
        uploadId: uploadId!,
        partNumber: k + 1,
        prefix: k === 0 ? head : carries[k - 1]!.carry,
      }),
    );
    const upload = bucket.resumeMultipartUpload(key, uploadId);
    const last = carries[layout.count - 1]!.carry;
    if (last.length > 0) parts.push(await upload.uploadPart(layout.count + 1, last));
    await upload.complete(parts);
  }
  return hashObject(bucket, key);
}

/**
 * Krum on a ranged task: every range's squared distances between the round's chunks, added piece
 * by piece in parameter order (as one object adds its stored pieces', so the same bits), then the
 * scores and the selection, which the ranges average in the close's second pass.
 */
async function krumAcrossRanges(
  host: RangedHost,
  round: number,
  clients: { clientId: string; numExamples: number }[],
  encoding: UpdateEncoding,
): Promise<KrumSelection> {
  const { spec } = host.state()!;
  const strategy = host.strategy();
  if (strategy.name !== 'krum') throw new Error(`${strategy.name} does not work range by range`);
  const layout = spec.ranges!;
  const ids = clients.map((c) => c.clientId);
  const parts = await eachLimited(layout.count, CLOSE_PARALLEL, (k) => {
    const { start, end } = rangeBounds(layout, spec.numParams, k);
    return host.range(k).distanceParts(round, ids, end - start, encoding);
  });
  const kk = ids.length * ids.length;
  const dist = new Float64Array(kk);
  for (const p of parts) for (let off = 0; off < p.length; off += kk) for (let i = 0; i < kk; i++) dist[i]! += p[off + i]!;
  return krumSelection(
    dist,
    strategy.params as unknown as KrumParams,
    clients.map((c) => c.numExamples),
  );
}

/** Where the float32 data of a stored version starts: after its 8-byte length and header. */
async function dataOffset(bucket: R2Bucket, key: string): Promise<number> {
  const head = await bucket.get(key, { range: { offset: 0, length: 8 } });
  if (!head) throw new Error(`base weights ${key} missing from R2`);
  const view = new DataView(await head.arrayBuffer());
  return 8 + Number(view.getBigUint64(0, true));
}

/** The SHA-256 of a stored object, read as a stream (nothing holds the whole file). */
async function hashObject(bucket: R2Bucket, key: string): Promise<StoredBlob> {
  const object = await bucket.get(key);
  if (!object) throw new Error(`assembled version ${key} missing from R2`);
  const digest = new crypto.DigestStream('SHA-256');
  await object.body.pipeTo(digest);
  const contentHash = hexOf(new Uint8Array(await digest.digest));
  return { key, contentHash, byteLength: object.size };
}

/** Tells every range object the round is over (best effort: one that misses it drops the chunks when the next round's come). */
async function tellRanges(host: RangedHost, round: number, version: number | null): Promise<void> {
  const count = host.state()!.spec.ranges!.count;
  await eachLimited(count, count, (k) =>
    host
      .range(k)
      .advance(round, version)
      .catch(() => {}),
  );
}

/** `call` for 0 … n−1, at most `limit` at a time, its answers in index order. */
export async function eachLimited<T>(n: number, limit: number, call: (index: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await call(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}
