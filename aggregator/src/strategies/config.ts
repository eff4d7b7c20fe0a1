/**
 * @module A task's strategy configuration: the schema that validates it at task creation (also
 * the OpenAPI document's), and the type derived from it, so the two cannot drift apart.
 */
// zod as @hono/zod-openapi extends it (with `.openapi()`): schemas built before that extension ran
// lack the method, and which module loads first depends on the bundle's import order.
import { z } from '@hono/zod-openapi';

const clipNorm = z.number().positive().max(1e6).optional().describe('Norm bounding (Sun et al. 2019): clip each update to this L2 norm before it is summed');
const fedOptFields = {
  serverLearningRate: z.number().positive().max(10).default(0.01),
  beta2: z.number().min(0).lt(1).default(0.99),
  tau: z.number().positive().max(1).default(1e-3),
  clipNorm,
};

/** A task's aggregation strategy and its parameters, with their defaults; unknown names and out-of-range parameters are refused. */
export const StrategyConfigSchema = z.discriminatedUnion('name', [
  z.strictObject({ name: z.literal('fedavg'), clipNorm }).describe('FedAvg (McMahan et al. 2017)'),
  z
    .strictObject({ name: z.literal('fedprox'), mu: z.number().positive().max(100).default(0.01), clipNorm })
    .describe('FedProx (Li et al. 2020): FedAvg aggregation; clients add μ/2·‖w − w_global‖² to their local loss'),
  z
    .strictObject({
      name: z.literal('fedavgm'),
      serverLearningRate: z.number().positive().max(10).default(1),
      momentum: z.number().min(0).lt(1).default(0.9),
      clipNorm,
    })
    .describe('FedAvg with server momentum (Hsu et al. 2019)'),
  z.strictObject({ name: z.literal('fedadam'), beta1: z.number().min(0).lt(1).default(0.9), ...fedOptFields }).describe('FedAdam (Reddi et al. 2021)'),
  z.strictObject({ name: z.literal('fedyogi'), beta1: z.number().min(0).lt(1).default(0.9), ...fedOptFields }).describe('FedYogi (Reddi et al. 2021)'),
  z.strictObject({ name: z.literal('fedadagrad'), beta1: z.number().min(0).lt(1).default(0), ...fedOptFields }).describe('FedAdagrad (Reddi et al. 2021)'),
  z.strictObject({ name: z.literal('median'), clipNorm }).describe('Coordinate-wise median (Yin et al. 2018); at most 100 clients per round'),
  z
    .strictObject({
      name: z.literal('trimmedmean'),
      beta: z.number().min(0).lt(0.5).optional().describe('Trim ⌊β·k⌋ values from each end of each coordinate (default 0.1)'),
      f: z.number().int().min(0).max(49).optional().describe('Or trim a declared f values from each end, in every round; needs minClients > 2f'),
      clipNorm,
    })
    .refine((s) => s.beta === undefined || s.f === undefined, 'give beta or f, not both')
    .describe('Coordinate-wise trimmed mean (Yin et al. 2018); at most 100 clients per round'),
  z
    .strictObject({
      name: z.literal('krum'),
      f: z.number().int().min(0).max(48).default(1),
      m: z.number().int().min(1).max(100).default(1),
      weighting: z
        .enum(['equal', 'examples'])
        .default('equal')
        .describe("How the m selected updates are averaged: 'equal' weights (the paper's rule) or by example count ('examples', as Flower's Krum does)"),
      clipNorm,
    })
    .describe('Krum (m = 1) / Multi-Krum (Blanchard et al. 2017), tolerating f Byzantine clients; needs minClients > 2f + 2 and m ≤ minClients − f'),
  z
    .strictObject({
      name: z.literal('fedbuff'),
      bufferSize: z.number().int().min(1).max(10_000).default(10),
      stalenessExponent: z.number().min(0).max(10).default(0.5),
      maxStaleness: z.number().int().min(0).max(1000).default(10),
      serverLearningRate: z.number().positive().max(10).default(1),
      clipNorm,
    })
    .describe(
      'FedBuff (Nguyen et al. 2022): asynchronous; a version every bufferSize updates, each weighted by (1 + staleness)^−stalenessExponent; rounds.* are ignored',
    ),
]);

/** The strategy of a task created without one, and of tasks stored before strategies existed. */
export const DEFAULT_STRATEGY = { name: 'fedavg' } as const;

/** A configuration as validated, defaults filled in. */
export type StrategyConfig = z.output<typeof StrategyConfigSchema>;
/** A configuration as written, defaults left out. */
export type StrategyInput = z.input<typeof StrategyConfigSchema>;
