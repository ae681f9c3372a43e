#!/usr/bin/env node
// Builds the published package: src/**/*.ts → dist/ (ESM JavaScript + .d.ts) with tsc -p tsconfig.build.json,
// after emptying dist/. `npm run build`; `npm pack`/`npm publish` run it as `prepack`.
//
// --prepare (the `prepare` script): npm runs `prepare` both in this repository's own `npm ci`/`npm install` and
// when another project installs this folder (`npm i /path/to/shrink`, which links it) or a git URL. Only the
// latter needs dist/: here the tests, benches and bin/shrink.js run src/ through tsx. So with --prepare it builds
// only when npm was started outside this folder (INIT_CWD elsewhere), and `npm ci` + `npm test` stay as they were:
// no compile step that a half-edited file elsewhere in src/ could fail.
'use strict';
const { spawnSync } = require('node:child_process');
const { rmSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
if (process.argv.includes('--prepare')) {
  const initCwd = process.env.INIT_CWD ? path.resolve(process.env.INIT_CWD) : null;
  if (initCwd === null || initCwd === root) process.exit(0);
}

let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch {
  console.error('shrink-lm: building dist/ needs the devDependency typescript: run `npm ci` in ' + root + ' first');
  process.exit(1);
}
const started = Date.now();
rmSync(path.join(root, 'dist'), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  console.error(`shrink-lm: tsc -p tsconfig.build.json failed (exit ${r.status ?? r.signal}); dist/ is incomplete`);
  process.exit(r.status || 1);
}
console.error(`shrink-lm: built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
