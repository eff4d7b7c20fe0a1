/**
 * @module The base error of fedge's wire protocol and SDK. It lives beside the codes so the codec
 * (shared with the aggregator) throws it too; the SDK re-exports it with its subclasses.
 */
import type { FedgeErrorCode } from './codes.ts';

/**
 * Base class of every error the SDK throws. `code` is stable: branch on it, not on the message.
 *
 * @example
 * try {
 *   await client.participate({ xs, ys });
 * } catch (e) {
 *   if (e instanceof FedgeError && e.code === 'token_revoked') await reEnroll();
 *   else throw e;
 * }
 */
export class FedgeError extends Error {
  override readonly name: string = 'FedgeError';
  readonly code: FedgeErrorCode;
  constructor(code: FedgeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
