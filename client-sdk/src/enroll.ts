/**
 * @module Self-enrollment: a device becomes a client of a task with a publishable enrollment key,
 * or with an ID token of the app's own sign-in, and gets its own client token. Used through
 * `FedgeClient.enroll`.
 */
import { FedgeError } from './errors.ts';
import { Http, type Logger } from './internal/http.ts';

/**
 * How a device enrolls: the task, and either the app's enrollment key (made by the operator with
 * `FedgeAdmin.createEnrollmentKey`, safe to ship in the app) or an ID token from the app's sign-in
 * (a provider the task trusts, see `FedgeAdmin.addIdentityProvider`).
 *
 * @example
 * const byKey: EnrollOptions = { baseUrl, taskId, enrollmentKey: 'ek_5d….…', label: 'pixel 9' };
 * const bySignIn: EnrollOptions = { baseUrl, taskId, idToken: await auth.currentUser.getIdToken() };
 */
export type EnrollOptions = {
  baseUrl: string;
  taskId: string;
  /** How the operator sees this device in the client list. */
  label?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  logger?: Logger;
} & ({ enrollmentKey: string; idToken?: never } | { idToken: string; enrollmentKey?: never });

/**
 * What enrollment returns: the device's client id and token. The SDK keeps them in memory only;
 * the app stores the token where it keeps credentials (the Keychain/Keystore through
 * `expo-secure-store` or `react-native-keychain` on phones; in a browser, IndexedDB or
 * `localStorage`, which page scripts can read, so keep the page free of third-party scripts or
 * enroll again per session).
 *
 * @example
 * const { client, credentials } = await FedgeClient.enroll({ baseUrl, taskId, enrollmentKey });
 * await SecureStore.setItemAsync('fedge-token', credentials.token);
 */
export interface EnrolledCredentials {
  clientId: string;
  taskId: string;
  /** Shown once: the server keeps only its hash. */
  token: string;
  /** When the token stops working (null: never); rotate it before with `client.rotateToken()`. */
  expiresAt: string | null;
  /** False when an ID token's user had a client already: the same client, with a new token (the old one stops working). */
  created: boolean;
}

/** Posts the enrollment; the caller builds the client from the credentials. */
export async function requestEnrollment(options: EnrollOptions): Promise<EnrolledCredentials> {
  if (!options.baseUrl || !options.taskId) throw new FedgeError('invalid_options', 'enroll needs baseUrl and taskId');
  if (!options.enrollmentKey === !options.idToken) throw new FedgeError('invalid_options', 'enroll needs an enrollmentKey or an idToken (one of them)');
  const f = options.fetch ?? globalThis.fetch;
  const http = new Http({
    baseUrl: `${options.baseUrl.replace(/\/+$/, '')}/v1`,
    token: '', // no bearer token: the key or ID token is the credential
    fetch: (input, init) => f(input, init),
    timeoutMs: options.timeoutMs ?? 60_000,
    maxRetries: 0,
    logger: options.logger,
    onTraffic: undefined,
  });
  const credential = options.enrollmentKey ? { key: options.enrollmentKey } : { idToken: options.idToken };
  // Not retried: a repeated key enrollment would make a second client.
  const res = await http.request({
    method: 'POST',
    path: `/tasks/${encodeURIComponent(options.taskId)}/enroll`,
    json: { ...credential, ...(options.label === undefined ? {} : { label: options.label }) },
    retry: false,
  });
  const body = (await res.json()) as Omit<EnrolledCredentials, 'created'>;
  return { clientId: body.clientId, taskId: body.taskId, token: body.token, expiresAt: body.expiresAt, created: res.status === 201 };
}
