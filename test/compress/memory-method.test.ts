/** `memory.trime` on the bundled stories260K Llama and a tiny GPT-2; datastores (build, validation, kNN-LM / cache eval). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compress, fromPretrained, Tensor } from '../../src/index.ts';
import { lmTaskData } from '../../src/compress/tasks.ts';
import { lastFfnInput } from '../../src/compress/memory/method.ts';
import { buildDatastore, evalWithMemory, loadDatastore } from '../../src/compress/memory/datastore.ts';
import { tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';
import { expectThrows } from '../harness/expect.ts';

const MODEL = path.join(import.meta.dirname, '../../data/models/stories260K');
const TEXT = path.join(import.meta.dirname, '../../data/tinystories-samples/stories260K-samples.txt');

test('the TRIME key is the last block\'s FFN norm (GPT-2 ln_2, Llama post_attention_layernorm)', () => {
  assert.equal(lastFfnInput(tinyGpt2()), 'transformer.h.1.ln_2');
  assert.equal(lastFfnInput(tinyLlama()), 'model.layers.1.post_attention_layernorm');
});

for (const variant of ['local', 'long', 'ext'] as const)
  test(`memory.trime ${variant}: CE warm-up, then the TRIME loss; hooks removed at the end`, () => {
    const model = fromPretrained(MODEL);
    const task = lmTaskData(MODEL, TEXT, { batchSize: 4, maxLength: 64 });
    const r = compress.runRecipe(model, { train: { steps: 3, lr: 1e-4, batch_size: 4, max_length: 64, task_weight: 0, warmup: 0 }, steps: [{ method: 'memory.trime', variant, ce_warmup: 1 }] }, { task });
    const h = r.history[0]!;
    assert.ok(h[0]!.parts!['memory.trime.ce'] !== undefined);
    assert.ok(h[2]!.parts!['memory.trime.trime'] !== undefined);
    assert.ok(Number.isFinite(h[2]!.loss!));
    if (variant === 'long') assert.equal(r.steps[0]!.segments, 4);
    // no hook left: a plain forward sees the full rows
    const x = Tensor.from(Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 500), { shape: [1, 64] });
    assert.deepEqual((model as unknown as { forward(i: object): { logits: Tensor } }).forward({ inputIds: x }).logits.shape, [1, 64, 512]);
  });

test('memory.trime checks its options and the stage', () => {
  const model = fromPretrained(MODEL);
  const task = lmTaskData(MODEL, TEXT, { batchSize: 2, maxLength: 64 });
  expectThrows(() => compress.runRecipe(model, { train: { steps: 1 }, steps: [{ method: 'memory.trime' }] }, { task }), 'task_weight');
  expectThrows(() => compress.runRecipe(model, { train: { steps: 1, task_weight: 0 }, steps: [{ method: 'memory.trime', variant: 'global' }] }, { task }), "'variant'");
  expectThrows(() => compress.runRecipe(model, { train: { steps: 1, task_weight: 0 }, steps: [{ method: 'memory.trime', variant: 'local', segments: 2 }] }, { task }), "'segments'");
});

test('datastore: build, validate on load, kNN-LM and cache perplexity', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-ds-'));
  try {
    const out = path.join(dir, 'ds');
    const b = buildDatastore(MODEL, TEXT, out, { blockSize: 64, maxTokens: 640 });
    assert.equal(b.count, 10 * 63);
    assert.equal(b.dim, 64);
    assert.equal(fs.statSync(path.join(out, 'keys.f16')).size, b.count * 64 * 2);
    const ds = loadDatastore(out, { modelDir: MODEL, dim: 64 });
    assert.equal(ds.meta.count, b.count);
    // a store over the evaluated text itself retrieves each token's own key: kNN-LM must help a lot there
    const r = evalWithMemory(MODEL, TEXT, { blockSize: 64, maxTokens: 640, datastore: ds, k: 16, lambda: 0.25, cache: { size: 500, theta: 0.3, lambda: 0.1 } });
    assert.equal(r.tokens, b.count);
    assert.ok(r.knnPerplexity! < r.perplexity, `${r.knnPerplexity} < ${r.perplexity}`);
    assert.ok(Number.isFinite(r.cachePerplexity!));
    // HNSW search finds the exact neighbours on this small store
    const q = ds.keys.subarray(5 * 64, 6 * 64);
    const exact = Array.from(ds.search(q, 8));
    ds.useHnsw();
    assert.equal(ds.search(q, 8)[0], exact[0]);
    // validation
    expectThrows(() => loadDatastore(out, { dim: 32 }), 'dimension 64', '32');
    expectThrows(() => loadDatastore(out, { modelDir: path.join(import.meta.dirname, '../data/fixtures/seed1/llama') }), 'another model');
    fs.truncateSync(path.join(out, 'vals.i32'), 8);
    expectThrows(() => loadDatastore(out), 'vals.i32 has 8 bytes');
    const meta = JSON.parse(fs.readFileSync(path.join(out, 'datastore.json'), 'utf8'));
    fs.writeFileSync(path.join(out, 'datastore.json'), JSON.stringify({ ...meta, keyDtype: 'int8' }));
    expectThrows(() => loadDatastore(out), "key dtype 'int8'");
    expectThrows(() => loadDatastore(dir), 'no datastore.json');
    expectThrows(() => buildDatastore(MODEL, TEXT, out, { maxTokens: 100 }), 'not empty');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: shrink datastore build, then shrink eval -t ppl:<file> --datastore … --cache', async () => {
  const { buildProgram } = await import('../../src/cli/main.ts');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-ds-cli-'));
  try {
    const out = path.join(dir, 'ds');
    let buf = '';
    await buildProgram((s) => void (buf += s)).parseAsync(['datastore', 'build', MODEL, '--corpus', TEXT, '-o', out, '--max-tokens', '300', '--block-size', '64', '--json'], { from: 'user' });
    const b = JSON.parse(buf);
    assert.equal(b.count, 4 * 63 + 43); // four full windows of 64 and the last 44 tokens
    buf = '';
    await buildProgram((s) => void (buf += s)).parseAsync(['eval', MODEL, '-t', `ppl:${TEXT}`, '--block-size', '64', '--max-tokens', '300', '--datastore', out, '--lambda', '0.25', '--knn-temp', '1', '--k', '8', '--cache', '--json'], { from: 'user' });
    const r = JSON.parse(buf);
    assert.equal(r.tokens, b.count);
    assert.ok(r.knnPerplexity < r.perplexity && Number.isFinite(r.cachePerplexity));
    await assert.rejects(buildProgram(() => {}).parseAsync(['eval', MODEL, '-t', `ppl:${TEXT}`, '--k', '8'], { from: 'user' }), /--k applies to --datastore/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
