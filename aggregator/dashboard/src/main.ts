/**
 * @module The fedge dashboard's shell: sign-in, hash routes (`#/` the task list, `#/tasks/{id}` a
 * task; no token ever in them), the session (the admin token in sessionStorage, this tab only),
 * notices and sign-out. Served as static assets by the platform at /dashboard/.
 */
import { Api, ApiError } from './api.ts';
import { h } from './dom.ts';
import { signInView } from './views/signin.ts';
import { taskView } from './views/task.ts';
import { tasksView } from './views/tasks.ts';

const TOKEN_KEY = 'fedge.dashboard.adminToken';
const main = document.getElementById('main')!;
const signOutButton = document.getElementById('signout') as HTMLButtonElement;
const noticeBox = document.getElementById('notice')!;

let api: Api | null = null;
let dispose: () => void = () => {};
let noticeTimer: ReturnType<typeof setTimeout> | undefined;

function notice(text: string, kind: 'info' | 'error' = 'info'): void {
  noticeBox.textContent = text;
  noticeBox.className = `notice ${kind}`;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    noticeBox.textContent = '';
    noticeBox.className = 'notice';
  }, 8_000);
}

function failed(error: unknown, where?: HTMLElement): void {
  if (error instanceof ApiError && error.isAuth) {
    signOut(`The platform no longer accepts this token (${error.code}). Sign in again.`);
    return;
  }
  const text = error instanceof ApiError ? `${error.message} (${error.code})` : error instanceof Error ? error.message : String(error);
  if (where) where.replaceChildren(h('p', { class: 'error', role: 'alert' }, text));
  else notice(text, 'error');
}

function signOut(message: string | null = null): void {
  sessionStorage.removeItem(TOKEN_KEY);
  api = null;
  render(message);
}

function render(message: string | null = null): void {
  dispose();
  signOutButton.hidden = api === null;
  if (!api) {
    dispose = signInView(main, message, (signedIn, token) => {
      sessionStorage.setItem(TOKEN_KEY, token);
      api = signedIn;
      render();
    });
    return;
  }
  const ctx = { failed, notice };
  const m = /^#\/tasks\/([^/]+)$/.exec(location.hash);
  dispose = m ? taskView(main, api, decodeURIComponent(m[1]!), ctx) : tasksView(main, api, ctx);
}

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) api = new Api(saved);
signOutButton.addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', () => render());
render();
