/**
 * @module The strategy registry: a task's validated strategy configuration → a Strategy.
 */

import { type StrategyConfig, StrategyConfigSchema, type StrategyInput } from './config.ts';
import { fedAvg } from './fedavg.ts';
import { fedAvgM } from './fedavgm.ts';
import { fedBuff } from './fedbuff.ts';
import { fedOpt } from './fedopt.ts';
import { fedProx } from './fedprox.ts';
import { krum } from './krum.ts';
import { median } from './median.ts';
import { withNormBound } from './norm-bound.ts';
import type { Strategy } from './strategy.ts';
import { trimmedMeanStrategy } from './trimmed-mean.ts';

export { DEFAULT_STRATEGY, type StrategyConfig, StrategyConfigSchema, type StrategyInput } from './config.ts';
export { stalenessWeight } from './fedbuff.ts';
export type { RangeReader, RoundInput, Strategy, StrategyState, SumInput, UpdatesInput } from './strategy.ts';
export { MAX_UPDATES_PER_ROUND } from './update-based.ts';

export const STRATEGY_NAMES = ['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'median', 'trimmedmean', 'krum', 'fedbuff'] as const;

/**
 * The strategy a configuration describes. The configuration is parsed first, so defaults are filled
 * in (tasks stored before a parameter existed get its default) and a bad one throws.
 *
 * @example
 * createStrategy({ name: 'krum', f: 2, m: 5 }).params; // { f: 2, m: 5, weighting: 'equal' }
 */
export function createStrategy(input: StrategyInput): Strategy {
  const config = StrategyConfigSchema.parse(input);
  const s = base(config);
  return config.clipNorm === undefined ? s : withNormBound(s, config.clipNorm);
}

function base(config: StrategyConfig): Strategy {
  switch (config.name) {
    case 'fedavg':
      return fedAvg();
    case 'fedprox':
      return fedProx(config.mu);
    case 'fedavgm':
      return fedAvgM(config);
    case 'median':
      return median();
    case 'trimmedmean':
      return trimmedMeanStrategy(config.f !== undefined ? { f: config.f } : { beta: config.beta ?? 0.1 });
    case 'krum':
      return krum(config);
    case 'fedbuff':
      return fedBuff(config);
    default:
      return fedOpt(config.name, config);
  }
}
