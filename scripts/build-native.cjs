#!/usr/bin/env node
// Builds the native addon (native/*.cc → build/Release/shrink_native.node) with node-gyp during `npm ci`.
// node-gyp only builds offline when it is given the running Node's headers, so pass --nodedir=<prefix of
// process.execPath> when npm_config_nodedir is unset (Node ships its headers beside its binary).
// A failed build is not fatal: Shrink then runs on the plain TypeScript `ref` backend and says so once. Except with
// SHRINK_REQUIRE_NATIVE=1 (CI): then it fails `npm ci` (and the registry and the native tests fail too).
//
// --check-portable: instead of building, compiles every native/*.cc with -fsyntax-only -DSHRINK_NO_X86, i.e. as a
// non-x86 target (arm64…) sees it: no <immintrin.h>, no AVX2 code (native/simd.h). Needs g++ (or $CXX).
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const prefix = path.resolve(path.dirname(process.execPath), '..');
const force = process.argv.includes('--force');
if (process.env.SHRINK_SKIP_NATIVE_BUILD === '1' && !force) {
  console.log('shrink: SHRINK_SKIP_NATIVE_BUILD=1, not building the native addon');
  process.exit(0);
}

function findNodeGyp() {
  // Inside npm lifecycle scripts node-gyp is on PATH; elsewhere use the copy bundled with npm.
  const bundled = [
    path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].find((p) => existsSync(p));
  if (bundled) return [process.execPath, [bundled]];
  return ['node-gyp', []];
}

if (process.argv.includes('--check-portable')) {
  const { readdirSync } = require('node:fs');
  const cxx = process.env.CXX || 'g++';
  const includes = [path.join(prefix, 'include', 'node'), require('node-addon-api').include_dir];
  let failed = 0;
  for (const f of readdirSync(path.join(root, 'native')).filter((n) => n.endsWith('.cc')).sort()) {
    const args = ['-fsyntax-only', '-std=c++17', '-Wall', '-Wextra', '-DSHRINK_NO_X86', '-DNAPI_DISABLE_CPP_EXCEPTIONS', '-DNAPI_VERSION=8', ...includes.map((i) => `-I${i}`), path.join('native', f)];
    const c = spawnSync(cxx, args, { cwd: root, stdio: 'inherit' });
    if (c.status !== 0) failed++;
    console.log(`shrink: portable (non-x86) syntax check of native/${f}: ${c.status === 0 ? 'ok' : 'FAILED'}`);
  }
  process.exit(failed ? 1 : 0);
}

const [cmd, pre] = findNodeGyp();
const args = [...pre, 'rebuild', `--jobs=${process.env.JOBS || 'max'}`];
if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
if (r.status !== 0) {
  if (process.env.SHRINK_REQUIRE_NATIVE === '1') {
    console.error('shrink: the native addon did not build and SHRINK_REQUIRE_NATIVE=1: failing.');
    process.exit(r.status || 1);
  }
  console.warn('shrink: the native addon did not build; Shrink will run on the TypeScript reference backend (slow).');
  if (force) process.exit(r.status ?? 1);
}
