/**
 * @module The strategy registry: a task's validated strategy configuration → a Strategy.
 */
import { fedAvg } from './fedavg.ts';
import { fedAvgM } from './fedavgm.ts';
import { fedBuff } from './fedbuff.ts';
import { fedOpt } from './fedopt.ts';
import { fedProx } from './fedprox.ts';
import { withNormBound } from './norm-bound.ts';
import { krumStrategy, medianStrategy, trimmedMeanStrategy } from './robust-strategies.ts';
import type { Strategy } from './strategy.ts';

export type { Strategy, StrategyState } from './strategy.ts';

export type StrategyConfig =
  | { name: 'fedavg'; clipNorm?: number }
  | { name: 'fedprox'; mu: number; clipNorm?: number }
  | { name: 'fedavgm'; serverLearningRate: number; momentum: number; clipNorm?: number }
  | { name: 'fedadam' | 'fedyogi' | 'fedadagrad'; serverLearningRate: number; beta1: number; beta2: number; tau: number; clipNorm?: number }
  | { name: 'median'; clipNorm?: number }
  | { name: 'trimmedmean'; beta: number; clipNorm?: number }
  | { name: 'krum'; f: number; m: number; clipNorm?: number }
  | { name: 'fedbuff'; bufferSize: number; stalenessExponent: number; maxStaleness: number; serverLearningRate: number; clipNorm?: number };

export const STRATEGY_NAMES = ['fedavg', 'fedprox', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'median', 'trimmedmean', 'krum', 'fedbuff'] as const;
export { type AsyncStrategy, type FedBuffParams, isAsync, stalenessWeight } from './fedbuff.ts';
export { isRobust, MAX_ROBUST_UPDATES, type RangeReader, type RobustStrategy } from './robust-strategies.ts';

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
    case 'median':
      s = medianStrategy();
      break;
    case 'trimmedmean':
      s = trimmedMeanStrategy(config.beta);
      break;
    case 'krum':
      s = krumStrategy(config.f, config.m);
      break;
    case 'fedbuff':
      s = fedBuff(config);
      break;
    default:
      s = fedOpt(config.name, config);
  }
  if (config.clipNorm === undefined) return s;
  return withNormBound(s, config.clipNorm);
}
