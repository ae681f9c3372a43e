#!/usr/bin/env node
// Entry point of the `shrink` CLI.
// Installed from the package (which ships dist/ and no src/): runs the compiled dist/cli/main.js, plain JavaScript,
// no TypeScript loader. In the source checkout (src/ is there): runs src/cli/main.ts through tsx, so the tests and
// `npx shrink` in the repository always run the current source, never a stale dist/. SHRINK_CLI_DIST=1 runs dist/
// there too (after `npm run build`).
import { existsSync } from 'node:fs';

const src = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (process.env.SHRINK_CLI_DIST !== '1' && existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(src.href));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv.slice(2));
