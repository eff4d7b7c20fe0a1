/**
 * @module What the operator's calls return (FedgeAdmin): task summaries, enrollment keys and identity providers.
 */
import type { TensorManifestEntry, TrainingPlan } from './protocol/messages.ts';

/**
 * A line of the task list (`FedgeAdmin.listTasks`).
 *
 * @example
 * for (const t of await admin.listTasks()) console.log(t.id, t.name, t.status, t.currentVersion);
 */
export interface TaskSummary {
  id: string;
  name: string;
  status: 'active' | 'paused' | 'stopped';
  numParams: number;
  currentVersion: number;
  createdAt: string;
}

/**
 * A task's open (or closing) round as `getTask` shows it live; times in ISO 8601 (UTC).
 *
 * @example
 * const { currentRound: r } = await admin.getTask(taskId);
 * if (r) console.log(`round ${r.round}: ${r.accepted} accepted, deadline ${r.deadlineAt ?? 'not started'}`);
 */
export interface LiveRound {
  round: number;
  status: 'open' | 'closing' | 'closed' | 'abandoned';
  baseVersion: number;
  openedAt: string;
  /** When the round closes by its deadline (ms); null until a first client is assigned (the deadline clock starts then). */
  deadlineAt: string | null;
  assigned: number;
  accepted: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
}

/**
 * A task as `FedgeAdmin.getTask` shows it: its settings (with the server's defaults filled in) and
 * its live round.
 *
 * @example
 * const task = await admin.getTask(taskId);
 * console.log(task.status, task.currentVersion, task.rounds.clientsPerRound, task.strategy.name);
 */
export interface Task extends TaskSummary {
  tensors: TensorManifestEntry[];
  rounds: { clientsPerRound: number; minClients: number; deadlineSeconds: number; overSelection: number; maxExamplesPerClient: number };
  plan: TrainingPlan;
  strategy: { name: string; [param: string]: number | string };
  maxUpdateBytes: number;
  maxClients: number;
  currentRound: LiveRound | null;
  modelTopology: Record<string, unknown>;
}

/**
 * A publishable enrollment key of a task (`key` only when it is created: shown once).
 *
 * @example
 * const { key } = await admin.createEnrollmentKey(taskId, { label: 'android app', maxClients: 50_000 });
 * // ship `key` inside the app: FedgeClient.enroll({ baseUrl, taskId, enrollmentKey: key })
 */
export interface EnrollmentKey {
  id: string;
  taskId: string;
  label: string | null;
  status: 'active' | 'expired' | 'revoked';
  maxClients: number;
  enrolled: number;
  clientTokenTtlSeconds: number | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  key?: string;
}

/**
 * An identity provider a task trusts: devices enroll with its ID tokens (one user, one client).
 *
 * @example
 * await admin.addIdentityProvider(taskId, {
 *   issuer: 'https://securetoken.google.com/my-project',
 *   audience: 'my-project',
 *   jwksUri: 'https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com',
 * });
 */
export interface IdentityProvider {
  id: string;
  taskId: string;
  issuer: string;
  audience: string;
  jwksUri: string;
  label: string | null;
  status: 'active' | 'revoked';
  clientTokenTtlSeconds: number | null;
  createdAt: string;
  revokedAt: string | null;
}
