/**
 * @module The strategy registry: a task's validated strategy configuration → a Strategy.
 */
import { fedAvg } from './fedavg.ts';
import { fedAvgM } from './fedavgm.ts';
import { fedProx } from './fedprox.ts';
import { fedOpt } from './fedopt.ts';
import { withNormBound } from './norm-bound.ts';
import type { Strategy } from './strategy.ts';

export type { Strategy, StrategyState } from './strategy.ts';

export type StrategyConfig =
  | { name: 'fedavg'; clipNorm?: number }
  | { name: 'fedprox'; mu: number; clipNorm?: number }
  | { name: 'fedavgm'; serverLearningRate: number; momentum: number; clipNorm?: number }
  | { name: 'fedadam' | 'fedyogi' | 'fedadagrad'; serverLearningRate: number; beta1: number; beta2: number; tau: number; clipNorm?: number };

export const STRATEGY_NAMES = ['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'] as const;

export function createStrategy(config: StrategyConfig): Strategy {
  let s: Strategy;
  switch (config.name) {
    case 'fedavg':
      s = fedAvg();
      break;
    case 'fedprox':
      s = fedProx(config.mu);
      break;
    case 'fedavgm':
      s = fedAvgM(config);
      break;
    default:
      s = fedOpt(config.name, config);
  }
  return config.clipNorm === undefined ? s : withNormBound(s, config.clipNorm);
}
