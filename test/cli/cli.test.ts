// CLI: help, info (text and JSON), unknown commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const bin = path.resolve(import.meta.dirname, '../../bin/shrink.js');
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('shrink --help lists commands', () => {
  const r = run('--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Usage: shrink/);
  assert.match(r.stdout, /info/);
});

test('shrink info --json reports the backend', () => {
  const r = run('info', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.ok(j.backend === 'native' || j.backend === 'ref');
  assert.equal(typeof j.threads, 'number');
});

test('an unknown command fails with a message', () => {
  const r = run('frobnicate');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});
