/**
 * @module FedProx: FedAvg aggregation, with a proximal term in every client's local objective.
 *
 * Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith. "Federated Optimization in Heterogeneous
 * Networks." MLSys 2020. Clients minimise F(w) + μ/2·‖w − w_global‖² (the SDK's training loop, with
 * μ sent as the plan's `proximalMu`); the server averages as FedAvg does.
 */
import { fedAvg } from './fedavg.ts';
import type { Strategy } from './strategy.ts';

export function fedProx(mu: number): Strategy {
  return { ...fedAvg('fedprox'), params: { mu }, proximalMu: mu };
}
