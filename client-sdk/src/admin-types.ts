/**
 * @module What the operator's enrollment calls return (FedgeAdmin): enrollment keys and identity providers.
 */

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
