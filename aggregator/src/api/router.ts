/**
 * @module The router factory every route module uses, so all share one validation-error hook.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from './auth.ts';
import { ApiError } from './errors.ts';

/** An OpenAPIHono whose failed validations raise `invalid_request` with the zod issues in the message. */
export function newRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
        const only = (field: string) => result.target === 'json' && result.error.issues.every((i) => i.path[0] === field);
        const code = only('strategy') ? 'invalid_strategy' : only('privacy') ? 'invalid_privacy' : 'invalid_request';
        throw new ApiError(code, `${result.target} is invalid: ${issues}`);
      }
    },
  });
}
