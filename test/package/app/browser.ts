// The browser build of the app: bundled from the installed package, exposes runRound to the test.
import { runRound } from './app.js';

(globalThis as unknown as { fedgeApp: unknown }).fedgeApp = { runRound };
document.body.dataset.ready = '1';
