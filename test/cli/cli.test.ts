// CLI: help, info (text and JSON), unknown commands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const bin = path.resolve(import.meta.dirname, '../../bin/shrink.js');
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: path.resolve(import.meta.dirname, '../..') });

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

test('shrink inspect lists parameters of a real checkpoint', () => {
  const r = run('inspect', 'data/models/stories260K', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.architecture, 'LlamaForCausalLM');
  assert.equal(j.parameters, 260032);
});

test('shrink generate continues a prompt greedily', () => {
  const r = run('generate', 'data/models/stories260K', '-p', 'Once upon a time', '-n', '12', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.match(j.text, /^Once upon a time, there was a little girl named Lily/);
  assert.equal(j.newTokens, 12);
});

test('bad flags and missing folders give one clear line', () => {
  const a = run('generate', 'data/models/stories260K', '--top-p', '7');
  assert.equal(a.status, 1);
  assert.equal(a.stderr.trim().split('\n').pop(), "shrink: --top-p must be a number in [0.000001, 1], got '7'");
  const b = run('inspect', 'no/such/dir');
  assert.equal(b.status, 1);
  assert.match(b.stderr, /model folder no\/such\/dir does not exist/);
});

test('shrink generate stops at the model context with a note; a prompt longer than the context is refused', () => {
  const sentence = 'Once upon a time, there was a little girl named Lily. ';
  const r = run('generate', 'data/models/stories260K', '-p', sentence.repeat(33), '-n', '40', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.ids.length, 512, 'prompt + new tokens fill the 512 positions');
  const prompt = 512 - j.newTokens;
  assert.ok(j.newTokens > 0 && j.newTokens < 40, `${j.newTokens} new tokens`);
  assert.equal(r.stderr, `shrink: stopped at the model's context limit of 512 positions (${prompt} prompt + ${j.newTokens} new tokens; -n asked for 40)\n`);
  const long = run('generate', 'data/models/stories260K', '-p', sentence.repeat(40), '-n', '5');
  assert.equal(long.status, 1);
  assert.equal(long.stderr, "shrink: generate: the prompt has 602 tokens, more than the model's context of 512 positions\n");
  assert.equal(long.stdout, '');
});
