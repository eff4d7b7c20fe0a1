/**
 * @module The sign-in form: the admin token in a password field, checked against the API before it
 * is kept (in sessionStorage, for this tab only). The form never submits natively, so the token
 * cannot end up in a URL or a server log.
 */
import { Api, ApiError } from '../api.ts';
import { h } from '../dom.ts';

/** Renders the form into `root`; `onSignedIn` gets the checked API handle and token. */
export function signInView(root: HTMLElement, message: string | null, onSignedIn: (api: Api, token: string) => void): () => void {
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    'aria-describedby': 'token-help signin-error',
  });
  const error = h('p', { id: 'signin-error', class: 'error', role: 'alert' }, message ?? '');
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card signin', method: 'post', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to fedge'),
    h('label', { for: 'token' }, 'Admin token'),
    input,
    h(
      'p',
      { id: 'token-help', class: 'muted' },
      'The ADMIN_TOKEN secret (locally in .dev.vars) or an operator token minted by POST /v1/admin/tokens. It is kept for this tab only.',
    ),
    error,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    submit.disabled = true;
    error.textContent = '';
    const api = new Api(token);
    try {
      await api.tasks(1);
      onSignedIn(api, token);
    } catch (e) {
      error.textContent =
        e instanceof ApiError && e.isAuth ? `The platform refused this token (${e.code}).` : `Could not sign in: ${e instanceof Error ? e.message : String(e)}`;
      input.select();
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  root.replaceChildren(form);
  input.focus();
  return () => {};
}
