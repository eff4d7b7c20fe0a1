/**
 * @module A task's differential-privacy configuration: the schema that validates it at task creation
 * (also the OpenAPI document's), and the checks of how it fits the strategy and round rules.
 */
// zod as @hono/zod-openapi extends it (see strategies/config.ts).
import { z } from '@hono/zod-openapi';

const noiseMultiplier = z.number().min(0.1).max(100).describe('z: the Gaussian noise standard deviation is z × the clip norm');
const clipNorm = z.number().positive().max(1e6).describe("S: each client's update is clipped to this L2 norm");
const delta = z.number().gt(0).max(0.01).default(1e-5).describe('δ of the (ε, δ) guarantee; pick it well below 1 / the number of clients');
const epsilonBudget = z
  .number()
  .positive()
  .max(1000)
  .optional()
  .describe('The task finishes before a round whose release would take ε (at δ) above this budget');

export const CentralPrivacySchema = z
  .strictObject({
    mode: z.literal('central'),
    noiseMultiplier,
    clipNorm: clipNorm.describe('S: the clip norm (with adaptive clipping, its starting value)'),
    clipping: z
      .enum(['server', 'client'])
      .default('server')
      .describe(
        "Where updates are clipped: 'server' (the aggregator clips what it receives) or 'client' (the SDK clips; the aggregator refuses any update above S)",
      ),
    samplingRate: z
      .number()
      .gt(0)
      .max(1)
      .describe('q: each client that checks in is taken into a round with this probability, independently (Poisson sampling, as the accountant assumes)'),
    adaptiveClipping: z
      .strictObject({
        targetQuantile: z.number().min(0.01).max(0.99).default(0.5).describe('γ: the quantile of update norms the clip norm follows'),
        learningRate: z.number().positive().max(1).default(0.2).describe('η_C of the geometric update'),
        countNoise: z
          .number()
          .positive()
          .max(1e6)
          .optional()
          .describe('σ_b, the noise on the count of unclipped clients (default: rounds.clientsPerRound / 20)'),
      })
      .optional()
      .describe('Adaptive clipping (Andrew et al. 2021): the clip norm follows a quantile of the update norms'),
    delta,
    epsilonBudget,
  })
  .describe(
    'DP-FedAvg (McMahan et al. 2018): Poisson-sampled clients, clipped updates with equal weights, Gaussian noise on the sum, the sum divided by rounds.clientsPerRound (the expected number of participants); rounds close at their deadline',
  );

export const LocalPrivacySchema = z
  .strictObject({ mode: z.literal('local'), noiseMultiplier, clipNorm, delta, epsilonBudget })
  .describe('Local DP: each client clips its update to S and adds Gaussian noise of σ = z·S on the device; the server never sees an un-noised update');

/** A task's privacy configuration; unknown modes and out-of-range parameters are `invalid_privacy`. */
export const PrivacyConfigSchema = z.discriminatedUnion('mode', [CentralPrivacySchema, LocalPrivacySchema]);

export type PrivacyConfig = z.output<typeof PrivacyConfigSchema>;
export type CentralPrivacy = z.output<typeof CentralPrivacySchema>;
export type PrivacyInput = z.input<typeof PrivacyConfigSchema>;

/** Strategies whose close is a mean step: noise on the sum bounds every client's influence on it. */
const MEAN_STRATEGIES = new Set(['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad']);

/**
 * Why central DP cannot run with this strategy (a message for `invalid_strategy`), or null. Local DP
 * fits every strategy: each update is private before the server sees it, and the rest is post-processing.
 */
export function strategyMisfit(privacy: PrivacyConfig, strategy: { name: string; params: Readonly<Record<string, unknown>> }): string | null {
  if (privacy.mode === 'local') return null;
  if (strategy.params.clipNorm !== undefined)
    return 'strategy.clipNorm and privacy.clipNorm both clip: with privacy, leave strategy.clipNorm out (privacy.clipNorm is the clip the guarantee rests on)';
  if (strategy.name === 'fedbuff')
    return 'FedBuff folds stale updates from earlier rounds into each buffer and weighs them by staleness: no privacy analysis of that is implemented, so DP-FedAvg refuses it; use a synchronous strategy';
  if (!MEAN_STRATEGIES.has(strategy.name))
    return `${strategy.name} selects individual updates or coordinates (a robust rule), so one client's influence on the result is not bounded by the clip norm and Gaussian noise on it gives no guarantee; use one of ${[...MEAN_STRATEGIES].join(', ')}`;
  return null;
}
