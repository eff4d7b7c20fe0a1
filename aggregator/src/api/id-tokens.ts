/**
 * @module Enrollment with the app's own sign-in: an ID token (a JWT from Auth0, Firebase, Clerk,
 * Cognito…) verified with `jose` against the issuer's JWKS, with its issuer, audience, expiry and
 * signature checked, each failure under its own code. One user (issuer + subject) is one client of
 * the task: its id is derived from them, so enrolling again returns the same client.
 */
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { providersFor } from '../db/enrollment.ts';
import type { IdentityProviderRow } from '../db/schema.ts';
import type { Db } from '../db/store.ts';
import { sha256Hex } from '../storage/weights.ts';
import { ApiError } from './errors.ts';

/** Asymmetric algorithms only: a shared-secret (HS*) token would need the secret here; `none` proves nothing. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** Clock skew tolerated on `exp`, `nbf` and `iat`, seconds. */
const CLOCK_TOLERANCE_SECONDS = 30;

/** One remote key set per JWKS URI and isolate: jose caches the keys and refetches on an unknown `kid` (at most every 30 s). */
const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
function keySet(uri: string): ReturnType<typeof createRemoteJWKSet> {
  let set = keySets.get(uri);
  if (!set) {
    if (keySets.size >= 256) keySets.delete(keySets.keys().next().value!);
    set = createRemoteJWKSet(new URL(uri), { timeoutDuration: 5_000 });
    keySets.set(uri, set);
  }
  return set;
}

/** A JWKS URI must be https, or http on a loopback host (local development and tests). */
export function jwksUriProblem(uri: string): string | null {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'jwksUri is not a URL';
  }
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return null;
  return 'jwksUri must be https (http only on 127.0.0.1 or localhost)';
}

export interface VerifiedIdentity {
  provider: IdentityProviderRow;
  /** `<issuer> <subject>`: who the token is about. */
  subject: string;
}

/** The identity an ID token proves for one of the task's trusted providers; an ApiError (401) otherwise. */
export async function verifyIdToken(db: Db, taskId: string, idToken: string): Promise<VerifiedIdentity> {
  let alg: string | undefined;
  let iss: unknown;
  let aud: unknown;
  try {
    alg = decodeProtectedHeader(idToken).alg;
    ({ iss, aud } = decodeJwt(idToken));
  } catch {
    throw new ApiError('id_token_invalid', 'not a JWT (header.payload.signature, base64url JSON)');
  }
  if (alg === undefined || alg.toLowerCase() === 'none') throw new ApiError('id_token_unsigned', 'the ID token is unsigned (alg "none"): it proves nothing');
  if (typeof iss !== 'string') throw new ApiError('id_token_wrong_issuer', 'the ID token names no issuer (iss)');
  const candidates = await providersFor(db, taskId, iss);
  if (candidates.length === 0) throw new ApiError('id_token_wrong_issuer', `issuer "${iss}" is not trusted by task "${taskId}"`);
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  const provider = candidates.find((p) => audiences.includes(p.audience));
  if (!provider) throw new ApiError('id_token_wrong_audience', `the ID token is not for this app (aud ${JSON.stringify(aud ?? null)})`);
  try {
    const { payload } = await jwtVerify(idToken, keySet(provider.jwksUri), {
      issuer: provider.issuer,
      audience: provider.audience,
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['sub', 'exp'],
    });
    if (!payload.sub) throw new ApiError('id_token_invalid', 'the ID token has an empty subject (sub)');
    return { provider, subject: `${provider.issuer} ${payload.sub}` };
  } catch (e) {
    throw e instanceof ApiError ? e : refusal(e);
  }
}

function refusal(e: unknown): Error {
  if (e instanceof errors.JWTExpired) return new ApiError('id_token_expired', 'the ID token expired: sign in again for a fresh one');
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'aud') return new ApiError('id_token_wrong_audience', 'the ID token is not for this app (aud)');
    if (e.claim === 'iss') return new ApiError('id_token_wrong_issuer', 'the ID token is from another issuer (iss)');
    return new ApiError('id_token_invalid', `claim "${e.claim}": ${e.message}`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed || e instanceof errors.JWKSNoMatchingKey)
    return new ApiError('id_token_bad_signature', "the ID token's signature does not verify with the issuer's keys");
  if (e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid || (e instanceof TypeError && /fetch/i.test(e.message)))
    return new ApiError('identity_provider_unavailable', `the issuer's keys could not be fetched: ${(e as Error).message}`);
  if (e instanceof errors.JOSEError) return new ApiError('id_token_invalid', e.message);
  return e instanceof Error ? e : new Error(String(e));
}

/** The client id of a user: one per task, issuer and subject, so enrolling again finds the same client. */
export async function clientIdOf(taskId: string, subject: string): Promise<string> {
  return `c_${(await sha256Hex(new TextEncoder().encode(`${taskId}\n${subject}`))).slice(0, 32)}`;
}
