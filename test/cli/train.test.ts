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
  // …and classifies a sentence with the task's label names from config.json
  const p = run('predict', path.join(out, 'final'), 'a gorgeous , witty , seductive movie .', '--json');
  assert.equal(p.status, 0, p.stderr);
  const pj = JSON.parse(p.stdout);
  assert.equal(pj.task, 'classify');
  assert.deepEqual(pj.scores.map((s: { label: string }) => s.label), ['negative', 'positive']);
  assert.ok(Math.abs(pj.scores[0].score + pj.scores[1].score - 1) < 1e-9);
  assert.equal(pj.label, pj.scores[0].score > pj.scores[1].score ? 'negative' : 'positive');
  const pt = run('predict', path.join(out, 'final'), 'fine', '--pair', 'good');
  assert.equal(pt.status, 0, pt.stderr);
  assert.match(pt.stdout, /^\| label \| score \|\n\| --- \| --- \|\n\| negative( \*)? \| 0\.\d{4} \|\n\| positive( \*)? \| 0\.\d{4} \|\n$/);
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

test('shrink predict fills masks with the top-k tokens of a masked LM', () => {
  const r = run('predict', 'data/models/bert-teacher', 'the movie was [MASK] and the acting was [MASK] .', '-k', '3', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'fill-mask');
  assert.equal(j.predictions.length, 2);
  for (const m of j.predictions) {
    assert.equal(m.candidates.length, 3);
    const s = m.candidates.map((c: { score: number }) => c.score);
    assert.ok(s[0] >= s[1] && s[1] >= s[2] && s[0] < 1 && s[2] > 0);
    for (const c of m.candidates) assert.ok(c.sequence.startsWith('the movie was'), c.sequence);
  }
  const none = run('predict', 'data/models/bert-teacher', 'no mask here');
  assert.equal(none.status, 1);
  assert.equal(none.stderr, "shrink: fill-mask: the text has no [MASK] token: 'no mask here'\n");
});

test('shrink predict generates with a causal LM', () => {
  const r = run('predict', 'data/models/stories260K', 'Once upon a time', '-n', '8', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'generate');
  assert.equal(j.newTokens, 8);
  assert.match(j.text, /^Once upon a time, there was a little girl/);
});

test('shrink pretrain --arch gpt2|llama trains a causal LM on Tiny Shakespeare that loads, evaluates and generates', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clm-'));
  for (const arch of ['gpt2', 'llama']) {
    const out = path.join(dir, arch);
    const r = run('pretrain', '--arch', arch, '--steps', '30', '--hidden', '32', '--layers', '1', '--heads', '2', '--seq-len', '32', '--batch-size', '8', '--lr', '3e-3', '-o', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.vocabSize, 512);
    assert.ok(j.finalLoss < Math.log(512) - 0.4, `${arch}: loss ${j.finalLoss} did not fall below uniform`);
    assert.ok(j.heldOutPerplexity < 300, `${arch}: held-out perplexity ${j.heldOutPerplexity}`);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).model_type, arch);
    const e = run('eval', out, '--task', 'ppl', '--text', 'data/tinyshakespeare/input.txt', '--max-tokens', '600', '--json');
    assert.equal(e.status, 0, e.stderr);
    assert.ok(JSON.parse(e.stdout).score < 400);
    const g = run('predict', out, 'ROMEO:', '-n', '4', '--json');
    assert.equal(g.status, 0, g.stderr);
    assert.equal(JSON.parse(g.stdout).newTokens, 4);
  }
  const bad = run('pretrain', '--arch', 't5', '-o', dir);
  assert.equal(bad.stderr, "shrink: --arch must be bert, gpt2 or llama, got 't5'\n");
  const noOut = run('pretrain', '--arch', 'gpt2');
  assert.equal(noOut.stderr, 'shrink: --arch gpt2 needs --out <dir>\n');
  fs.rmSync(dir, { recursive: true });
});
