// SHRINK_REQUIRE_NATIVE=1 (set by .ci/run): a missing or broken addon must fail the backend registry and the native
// tests instead of falling back to `ref` / skipping. Checked in child processes pointed at a missing addon file
// (SHRINK_NATIVE_ADDON), with and without the variable; and .ci/run must set it before `npm test`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function child(env: Record<string, string | undefined>) {
  const e: NodeJS.ProcessEnv = { ...process.env, SHRINK_BACKEND: '' };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete e[k];
  else e[k] = v;
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/backend/require-native-child.ts'], { cwd: root, env: e, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { skip: { ok?: unknown; error?: string }; backend: { ok?: unknown; error?: string } };
}

const MISSING = path.join(root, 'build', 'no-such-dir', 'shrink_native.node');

test('requireNative(SHRINK_REQUIRE_NATIVE=1,addon=missing): the registry and the native tests fail', () => {
  const r = child({ SHRINK_REQUIRE_NATIVE: '1', SHRINK_NATIVE_ADDON: MISSING });
  assert.match(r.skip.error ?? '', /SHRINK_REQUIRE_NATIVE=1 but the native addon not available .*no-such-dir/);
  assert.match(r.backend.error ?? '', /SHRINK_REQUIRE_NATIVE=1 but the native addon did not load/);
});

test('requireNative(SHRINK_REQUIRE_NATIVE=unset,addon=missing): native tests skip with the reason, ref runs', () => {
  const r = child({ SHRINK_REQUIRE_NATIVE: undefined, SHRINK_NATIVE_ADDON: MISSING });
  assert.match(String(r.skip.ok), /native addon not available .*no-such-dir/);
  assert.equal(r.backend.ok, 'ref');
});

test('.ci/run exports SHRINK_REQUIRE_NATIVE=1 before npm test and runs exactly npm ci and npm test', () => {
  const lines = readFileSync(path.join(root, '.ci/run'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const req = lines.indexOf('export SHRINK_REQUIRE_NATIVE=1');
  assert.ok(req >= 0, '.ci/run must export SHRINK_REQUIRE_NATIVE=1');
  assert.ok(req < lines.indexOf('npm test'), 'before npm test');
  assert.deepEqual(lines.filter((l) => l.startsWith('npm ')), ['npm ci', 'npm test']);
});

test('setNumThreads(n=1024|0|1.5) throws a clear error; MAX_THREADS is accepted', async () => {
  const { setNumThreads, getNumThreads, MAX_THREADS } = await import('../../src/backend/registry.ts');
  assert.equal(MAX_THREADS, 256);
  for (const n of [1024, MAX_THREADS + 1, 0, -1, 1.5, NaN]) assert.throws(() => setNumThreads(n), /setNumThreads: the thread count must be an integer in \[1, 256\]/, String(n));
  const saved = getNumThreads();
  setNumThreads(MAX_THREADS); // accepted (a no-op on ref)
  setNumThreads(saved);
  assert.equal(getNumThreads(), saved);
});

test('setNumThreads(env=SHRINK_THREADS=1024): rejected when the addon loads', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/backend/require-native-child.ts'], { cwd: root, env: { ...process.env, SHRINK_THREADS: '1024', SHRINK_BACKEND: '' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { backend: { ok?: unknown; error?: string } };
  // without the addon the variable is not read (ref has no pool): then the backend is simply ref
  if (out.backend.error === undefined) assert.equal(out.backend.ok, 'ref', 'SHRINK_THREADS=1024 was accepted by the native backend');
  else assert.match(out.backend.error, /SHRINK_THREADS must be an integer in \[1, 256\], got '1024'/);
});
