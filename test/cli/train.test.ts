// `shrink train` end to end on a tiny random BERT (a few steps): it runs, reports the GLUE metric, size and latency
// as JSON, and rejects bad flags with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BertForMaskedLM, bertConfig, savePretrained } from '../../src/index.ts';

const root = path.resolve(import.meta.dirname, '../..');
const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root });

test('shrink train fine-tunes a BERT folder on SST-2 and reports accuracy, size, latency', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-bert-'));
  const vocab = fs.readFileSync(path.join(root, 'data/tokenizers/bert-base-uncased/vocab.txt'), 'utf8');
  const n = vocab.trimEnd().split('\n').length;
  const model = new BertForMaskedLM(bertConfig({ vocab_size: n, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, architectures: ['BertForMaskedLM'] }));
  savePretrained(model, dir);
  fs.writeFileSync(path.join(dir, 'vocab.txt'), vocab);
  const out = path.join(dir, 'run');
  const r = run('train', '-m', dir, '--task', 'sst2', '--steps', '3', '--batch-size', '8', '-o', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'sst2');
  assert.equal(j.metric, 'accuracy');
  assert.ok(j.score > 0.3 && j.score < 0.8);
  assert.equal(j.steps, 3);
  assert.ok(j.parameters > 0 && j.latencyMsPerExample > 0);
  // the fine-tuned folder evaluates on its own, to the same accuracy
  const e = run('eval', path.join(out, 'final'), '--task', 'sst2', '--json');
  assert.equal(e.status, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout).score, j.score);
  fs.rmSync(dir, { recursive: true });
});

test('shrink train rejects an unknown task', () => {
  const r = run('train', '--task', 'mnli', '--steps', '1');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--task must be one of sst2, mrpc, rte, cola, got 'mnli'/);
});

test('shrink eval --task ppl reproduces the stories260K reference NLL', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppl-'));
  const f = path.join(dir, 'story.txt');
  fs.writeFileSync(f, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her friends.\n');
  const r = run('eval', 'data/models/stories260K', '--task', 'ppl', '--text', f, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.tokens, 33); // 34 tokens without BOS → 33 predictions
  assert.ok(j.score > 1.2 && j.score < 1.5, `perplexity ${j.score}`);
  fs.rmSync(dir, { recursive: true });
});
