/**
 * @module What the master aggregator knows of its task: tensor layout, round rules, caps.
 * Plain data, stored in the Durable Object at task creation and never changed afterwards.
 */
import type { StrategyConfig } from '../strategies/index.ts';
import type { RoundRules } from './round-machine.ts';

export interface TensorSpec {
  name: string;
  shape: number[];
}

export interface TaskSpec {
  taskId: string;
  /** Tensors in wire order; an update's flat vector is their concatenation. */
  tensors: TensorSpec[];
  numParams: number;
  rules: RoundRules;
  /** Absent in tasks created before strategies existed: FedAvg. */
  strategy?: StrategyConfig;
}

/** Header allowance on top of the raw float32 bytes: JSON header, metadata, padding. */
const HEADER_ALLOWANCE_BYTES = 64 * 1024;
const PER_TENSOR_HEADER_BYTES = 256;

/** The largest update body the task accepts, derived from its model size. */
export function maxUpdateBytes(spec: Pick<TaskSpec, 'numParams' | 'tensors'>): number {
  return spec.numParams * 4 + HEADER_ALLOWANCE_BYTES + PER_TENSOR_HEADER_BYTES * spec.tensors.length;
}
