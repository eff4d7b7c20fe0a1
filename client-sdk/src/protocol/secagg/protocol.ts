/**
 * @module The SecAgg+ round (Bell et al. CCS 2020, over Bonawitz et al. CCS 2017), one client's
 * side and the server's, as pure steps on messages (no transport): advertise keys → share keys →
 * masked input → unmask. The aggregator drives them as sub-phases of a round; here they can also
 * run in one process, which the tests do.
 *
 * Client u holds two key pairs (c: encrypting shares, s: pairwise masks) and a random 256-bit seed
 * bᵤ. It Shamir-splits bᵤ and its s private key among its k neighbours (threshold t), each pair of
 * shares sealed for that neighbour. Its masked input is yᵤ = xᵤ + PRG(bᵤ) + Σ_{v∈N(u)} ±PRG(sᵤᵥ)
 * (mod 2³²; + when u < v, − otherwise), so the pairwise masks cancel in the sum. For the unmasking
 * the server names the survivors (who sent a masked input) and the dropped (who shared keys but
 * did not): a client reveals its shares of bᵥ for survivors and of sᵥ for the dropped, never both
 * for the same v (the double-reveal guard: both would give away v's input).
 */
import { combine, split } from 'shamir-secret-sharing';
import { agree, type Curve, generateKeyPair, importPrivateKey, type KeyPair, open, seal, shareContext } from './keys.ts';
import { addMask, expandMask } from './prg.ts';

export interface Advertisement {
  id: string;
  curve: Curve;
  /** Public key for sealing shares. */
  cPublic: Uint8Array;
  /** Public key for the pairwise masks. */
  sPublic: Uint8Array;
}

/** A sealed pair of shares from `from` for `to`. */
export interface SealedShares {
  from: string;
  to: string;
  sealed: Uint8Array;
}

/** Which secrets the server asks a client to reveal shares of. */
export interface UnmaskRequest {
  survivors: string[];
  dropped: string[];
}

export interface Revealed {
  from: string;
  /** Shares of bᵥ, by survivor v. */
  seedShares: Record<string, Uint8Array>;
  /** Shares of v's pairwise-mask private key, by dropped v. */
  keyShares: Record<string, Uint8Array>;
}

/** Thrown by a client asked to reveal what would expose a peer: both of its secrets, or one it never held. */
export class SecAggRefusal extends Error {
  override readonly name = 'SecAggRefusal';
  readonly code: 'double_reveal' | 'not_a_neighbour' | 'bad_share';
  constructor(code: 'double_reveal' | 'not_a_neighbour' | 'bad_share', message: string) {
    super(message);
    this.code = code;
  }
}

const info = (taskId: string, round: number, what: string) => `fedge-secagg/${what}/${taskId}/${round}`;

/** One client's state through a SecAgg+ round. */
export class SecAggClient {
  private c!: KeyPair;
  private s!: KeyPair;
  private seed = crypto.getRandomValues(new Uint8Array(32));
  private peers = new Map<string, Advertisement>();
  private neighbours: string[] = [];
  /** Shares this client holds for its neighbours: v → { seed share, key share }. */
  private held = new Map<string, { seed: Uint8Array; key: Uint8Array }>();
  /** What it has revealed so far, per peer (the guard spans requests). */
  private revealed = new Map<string, 'seed' | 'key'>();

  readonly id: string;
  readonly taskId: string;
  readonly round: number;

  constructor(id: string, taskId: string, round: number) {
    this.id = id;
    this.taskId = taskId;
    this.round = round;
  }

  /** Step 1: the two public keys. */
  async advertise(curve?: Curve): Promise<Advertisement> {
    this.c = await generateKeyPair(curve);
    this.s = await generateKeyPair(this.c.curve);
    return { id: this.id, curve: this.c.curve, cPublic: this.c.publicKey, sPublic: this.s.publicKey };
  }

  /** Step 2: shares of bᵤ and of the s private key for each neighbour, sealed for it. */
  async shareKeys(roster: readonly Advertisement[], neighbours: readonly string[], t: number): Promise<SealedShares[]> {
    for (const a of roster) this.peers.set(a.id, a);
    this.neighbours = [...neighbours];
    const sPrivate = new Uint8Array((await crypto.subtle.exportKey('pkcs8', this.s.privateKey)) as ArrayBuffer);
    const k = neighbours.length;
    const [seedShares, keyShares] = await Promise.all([split(this.seed, k, t), split(sPrivate, k, t)]);
    return Promise.all(
      neighbours.map(async (v, i) => {
        const key = await agree(this.c, this.peer(v).cPublic, info(this.taskId, this.round, 'share'));
        const plain = encodePair(seedShares[i]!, keyShares[i]!);
        return { from: this.id, to: v, sealed: await seal(key, plain, shareContext(this.taskId, this.round, this.id, v)) };
      }),
    );
  }

  /**
   * Step 3: opens the shares sent to it, then masks `input` (quantized words). The pairwise masks
   * are with the neighbours whose shares arrived (those that completed step 2): a neighbour that
   * dropped before sharing left no shares to remove its mask with, so none is added.
   */
  async maskedInput(input: Uint32Array, inbox: readonly SealedShares[]): Promise<Uint32Array> {
    const shared: string[] = [];
    for (const m of inbox) {
      if (m.to !== this.id || !this.neighbours.includes(m.from))
        throw new SecAggRefusal('not_a_neighbour', `shares from ${m.from} are not for this client's neighbourhood`);
      const key = await agree(this.c, this.peer(m.from).cPublic, info(this.taskId, this.round, 'share'));
      let plain: Uint8Array;
      try {
        plain = await open(key, m.sealed, shareContext(this.taskId, this.round, m.from, this.id));
      } catch {
        throw new SecAggRefusal('bad_share', `the shares from ${m.from} do not open for this task, round and recipient`);
      }
      if (this.held.has(m.from)) throw new SecAggRefusal('bad_share', `two sets of shares from ${m.from}`);
      this.held.set(m.from, decodePair(plain));
      shared.push(m.from);
    }
    const y = input.slice();
    addMask(y, await expandMask(this.seed, y.length), 1);
    for (const v of shared) {
      const s = await agree(this.s, this.peer(v).sPublic, info(this.taskId, this.round, 'mask'));
      addMask(y, await expandMask(s, y.length), this.id < v ? 1 : -1);
    }
    return y;
  }

  /** Step 4: the shares the server asks for, unless that would reveal both secrets of any peer. */
  unmask(request: UnmaskRequest): Revealed {
    const out: Revealed = { from: this.id, seedShares: {}, keyShares: {} };
    const both = request.survivors.filter((v) => request.dropped.includes(v));
    if (both.length) throw new SecAggRefusal('double_reveal', `asked for both secrets of ${both.join(', ')}`);
    for (const [list, kind] of [
      [request.survivors, 'seed'],
      [request.dropped, 'key'],
    ] as const) {
      for (const v of list) {
        if (v === this.id) continue;
        const held = this.held.get(v);
        if (!held) continue; // not a neighbour, or its shares never arrived: nothing to reveal
        const before = this.revealed.get(v);
        if (before && before !== kind) throw new SecAggRefusal('double_reveal', `already revealed ${v}'s ${before} share; refusing its ${kind} share`);
        this.revealed.set(v, kind);
        (kind === 'seed' ? out.seedShares : out.keyShares)[v] = held[kind];
      }
    }
    return out;
  }

  private peer(v: string): Advertisement {
    const a = this.peers.get(v);
    if (!a) throw new SecAggRefusal('not_a_neighbour', `no advertised keys for ${v}`);
    return a;
  }
}

/**
 * Where {@link unmaskSum} removes masks: `words` is the survivors' masked sum, changed in place
 * (the aggregator's Wasm ModularSum). Without one, unmaskSum works on a copy with prg.addMask.
 */
export interface ModularAccumulator {
  readonly words: Uint32Array;
  add(mask: Uint32Array, sign: 1 | -1): void;
}

/**
 * The server's unmasking: Σ yᵤ over the survivors, minus their self masks (bᵤ rebuilt from t
 * shares each) and the pairwise masks they shared with dropped neighbours (each dropped v's s key
 * rebuilt from t shares, then agreed with the survivor's public key). Throws when a secret has
 * fewer than t shares: the round must abort, with nothing published.
 */
export async function unmaskSum(args: {
  taskId: string;
  round: number;
  t: number;
  roster: readonly Advertisement[];
  /** The graph restricted to the clients that shared keys (pairwise masks exist only there). */
  neighbours: ReadonlyMap<string, readonly string[]>;
  /** The survivors' masked vectors, or (`sum`, `survivors`) their sum already taken (an accumulator: unmasked in place). */
  masked?: ReadonlyMap<string, Uint32Array>;
  sum?: Uint32Array | ModularAccumulator;
  survivors?: readonly string[];
  dropped: readonly string[];
  revealed: readonly Revealed[];
}): Promise<Uint32Array> {
  const { taskId, round, t } = args;
  const survivors = args.masked ? [...args.masked.keys()] : [...(args.survivors ?? [])];
  let acc: ModularAccumulator;
  if (args.masked) {
    acc = copyAccumulator(new Uint32Array(args.masked.get(survivors[0]!)!.length));
    for (const y of args.masked.values()) acc.add(y, 1);
  } else if (args.sum instanceof Uint32Array) acc = copyAccumulator(args.sum.slice());
  else if (args.sum) acc = args.sum;
  else throw new TypeError('unmaskSum needs the masked vectors or their sum');
  const length = acc.words.length;
  const alive = new Set(survivors);
  const sharesOf = (v: string, kind: 'seedShares' | 'keyShares') => args.revealed.flatMap((r) => (r[kind][v] ? [r[kind][v]!] : []));
  for (const u of survivors) {
    const shares = sharesOf(u, 'seedShares');
    if (shares.length < t) throw new Error(`only ${shares.length} shares of ${u}'s seed, fewer than t = ${t}: abort the round`);
    acc.add(await expandMask(await combine(shares.slice(0, t)), length), -1);
  }
  const byId = new Map(args.roster.map((a) => [a.id, a]));
  for (const v of args.dropped) {
    const shares = sharesOf(v, 'keyShares');
    if (shares.length < t) throw new Error(`only ${shares.length} shares of dropped ${v}'s key, fewer than t = ${t}: abort the round`);
    const pkcs8 = await combine(shares.slice(0, t));
    const curve = byId.get(v)!.curve;
    const vKeys: KeyPair = { curve, privateKey: await importPrivateKey(curve, pkcs8), publicKey: byId.get(v)!.sPublic };
    for (const u of args.neighbours.get(v) ?? []) {
      if (!alive.has(u)) continue;
      const s = await agree(vKeys, byId.get(u)!.sPublic, info(taskId, round, 'mask'));
      // u added +PRG(s) when u < v, −PRG(s) otherwise; remove it.
      acc.add(await expandMask(s, length), u < v ? -1 : 1);
    }
  }
  return acc.words;
}

function copyAccumulator(words: Uint32Array): ModularAccumulator {
  return { words, add: (mask, sign) => addMask(words, mask, sign) };
}

function encodePair(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + a.length + b.length);
  new DataView(out.buffer).setUint16(0, a.length);
  out.set(a, 2);
  out.set(b, 2 + a.length);
  return out;
}

function decodePair(p: Uint8Array): { seed: Uint8Array; key: Uint8Array } {
  const n = new DataView(p.buffer, p.byteOffset).getUint16(0);
  return { seed: p.slice(2, 2 + n), key: p.slice(2 + n) };
}
