/**
 * @module A task's secure-aggregation settings: the schema that validates them at task creation
 * (also the OpenAPI document's), what they fix for every round (the quantization the clients use),
 * and the checks of how they fit the strategy, the privacy setting and the round rules.
 */
// zod as @hono/zod-openapi extends it (see strategies/config.ts).
import { z } from '@hono/zod-openapi';
import type { ClientSecAgg } from '#protocol/messages.ts';
import { secAggParams } from '#protocol/secagg/graph.ts';
import { fractionBits } from '#protocol/secagg/quantize.ts';
import type { PrivacyConfig } from '../privacy/config.ts';
import { assignmentCapacity, type RoundRules } from './round-machine.ts';

/**
 * Fewest fraction bits a task may quantize with. Below 12, a coordinate's rounding step 2^−f is
 * above 2.4e-4 of the clip range: a configuration that leaves fewer bits (n · c too near 2³¹) is
 * overflow-prone in the sense that matters, and is refused at task creation.
 */
export const MIN_FRACTION_BITS = 12;

export const SecureAggregationSchema = z
  .strictObject({
    clipRange: z.number().positive().max(1e6).default(1).describe('c: each coordinate of Δ is clipped to [−c, c] before it is quantized to Z/2³²'),
    neighbours: z
      .number()
      .int()
      .min(2)
      .max(10_000)
      .optional()
      .describe('k: neighbours each client masks and shares with (default: min(n − 1, 2⌈log₂ n⌉ + 2), even; n = the clients that advertised keys)'),
    threshold: z
      .number()
      .int()
      .min(2)
      .max(10_000)
      .optional()
      .describe("t: shares that rebuild a client's secret (default ⌊k/2⌋ + 1, a majority of its neighbourhood)"),
    phaseSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(30)
      .describe(
        'Deadline of each key phase (advertise keys, share keys, unmask), from its start; the masked-input phase ends at the round deadline (rounds.deadlineSeconds after the first assignment) or phaseSeconds after it starts, whichever is later',
      ),
  })
  .describe(
    'Secure aggregation (SecAgg+, Bell et al. 2020): clients mask their quantized updates so that the aggregator learns only their sum; a round runs as four phases (advertise keys, share keys, masked input, unmask) and tolerates clients that drop out between them',
  );

export type SecureAggregation = z.output<typeof SecureAggregationSchema>;

/**
 * n, the most clients a round's sum may hold: the round's assignment capacity, ceil(clientsPerRound
 * × overSelection); under central DP, where every Poisson-drawn client joins and clientsPerRound is
 * the expected count μ, ceil(μ + 10√μ + 10), which a binomial draw of mean μ exceeds with
 * probability below 10⁻²⁰ (a Chernoff bound); the round turns away (round_full) any drawn client past it.
 */
export function secAggCapacity(rules: RoundRules, privacy: PrivacyConfig | undefined): number {
  if (privacy?.mode !== 'central') return assignmentCapacity(rules);
  const mu = rules.clientsPerRound;
  return Math.ceil(mu + 10 * Math.sqrt(mu) + 10);
}

/** f for the task: the largest with n · max(c, 1) · 2^f < 2³¹, n = {@link secAggCapacity} (the weight coordinate sums up to n · 2^f). */
export function taskFractionBits(s: SecureAggregation, rules: RoundRules, privacy: PrivacyConfig | undefined): number {
  return fractionBits(secAggCapacity(rules, privacy), Math.max(1, s.clipRange));
}

export function clientSecAgg(s: SecureAggregation, rules: RoundRules, privacy: PrivacyConfig | undefined): ClientSecAgg {
  return {
    clipRange: s.clipRange,
    fractionBits: taskFractionBits(s, rules, privacy),
    maxExamples: rules.maxExamplesPerClient,
    phaseSeconds: s.phaseSeconds,
  };
}

/**
 * Why a task cannot run secure aggregation as configured (a message for `invalid_secure_aggregation`),
 * or null: the strategy must aggregate a sum, the round must hold at least 3 clients, k and t must
 * fit the round, and n · c must leave at least MIN_FRACTION_BITS bits below 2³¹.
 */
export function secAggMisfit(
  s: SecureAggregation,
  strategy: { name: string; keeps: 'sum' | 'updates'; asynchronous?: unknown },
  rules: RoundRules,
  privacy: PrivacyConfig | undefined,
): string | null {
  if (strategy.keeps === 'updates')
    return `${strategy.name} needs every individual update, which secure aggregation hides from the server by design; use a mean strategy (fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad)`;
  if (strategy.asynchronous)
    return `${strategy.name} folds single updates into its buffer as they arrive; secure aggregation reveals only the sum of a synchronous round: use a synchronous strategy`;
  if (privacy?.mode === 'central' && privacy.clipping !== 'client')
    return "central DP with secure aggregation needs privacy.clipping = 'client': the aggregator sees only the sum, so it cannot clip the updates in it";
  if (privacy?.mode === 'central' && privacy.adaptiveClipping)
    return "adaptive clipping with secure aggregation is not supported: it needs each client's clipped-or-not bit, which the masked sum does not carry; use a fixed clipNorm";
  const n = secAggCapacity(rules, privacy);
  if (n < 3) return `a round assigns ceil(clientsPerRound × overSelection) = ${n} clients; secure aggregation needs at least 3`;
  if (rules.minClients < 3)
    return `rounds.minClients is ${rules.minClients}; secure aggregation needs at least 3 survivors (with 2, each would learn the other's update from the sum)`;
  try {
    secAggParams(n, { ...(s.neighbours ? { k: s.neighbours } : {}), ...(s.threshold ? { t: s.threshold } : {}) });
  } catch (e) {
    return `neighbours/threshold do not fit a round of ${n} clients: ${(e as Error).message}`;
  }
  const f = taskFractionBits(s, rules, privacy);
  if (f < MIN_FRACTION_BITS)
    return `${n} clients × clipRange ${s.clipRange} leave ${f} fraction bits below the modulus 2³² (n · c · 2^f < 2³¹); at least ${MIN_FRACTION_BITS} are needed: lower clipRange or the round's size`;
  return null;
}
