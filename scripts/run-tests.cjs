#!/usr/bin/env node
// Runs the test suites on node's built-in test runner (CI reads its closing summary).
// Usage: node scripts/run-tests.cjs [dir-or-file ...]   (default: every test/**/*.test.ts except test/slow)
'use strict';
const { spawnSync } = require('node:child_process');
const { readdirSync, statSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
function collect(p, out, includeSlow) {
  const st = statSync(p);
  if (st.isFile()) {
    if (p.endsWith('.test.ts')) out.push(path.relative(root, p));
    return;
  }
  for (const e of readdirSync(p).sort()) {
    if (!includeSlow && e === 'slow' && p === path.join(root, 'test')) continue;
    collect(path.join(p, e), out, includeSlow);
  }
}
const args = process.argv.slice(2);
const targets = args.length ? args.map((a) => path.resolve(root, a)) : [path.join(root, 'test')];
const files = [];
for (const t of targets) collect(t, files, args.length > 0);
if (files.length === 0) {
  console.error(`run-tests: no test files under ${args.join(' ') || 'test/'}`);
  process.exit(1);
}
const conc = process.env.SHRINK_TEST_CONCURRENCY || '2';
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${conc}`, ...files], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
