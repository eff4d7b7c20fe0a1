// Node runs the app's TypeScript as is (type stripping) with the installed package: node run.mjs '<config JSON>'.
import { runRound } from './app.ts';

const outcome = await runRound(JSON.parse(process.argv[2]));
process.stdout.write(`${JSON.stringify(outcome)}\n`);
