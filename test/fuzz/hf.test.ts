// Fuzzing contract for Hugging Face folders (issue #23; see test/fuzz/safetensors.test.ts for "Shrink's own error"):
// readConfig / findWeights / loadWeights / fromPretrained on config.json + model.safetensors or a sharded index
// either succeed or throw a ShrinkError naming the folder or file (fromPretrained may also pass through a plain
// Error from src/models, which is outside these files). A config describing a model far larger than its weights
// is refused before the model is built. Long runs: `npm run fuzz -- hf --cases 100000`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { ShrinkError } from '../../src/io/errors.ts';
import { readConfig, writePretrained, loadWeights } from '../../src/io/hf.ts';
import { fromPretrained } from '../../src/models/registry.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { Rng } from '../../fuzz/mutate.ts';
import { hfTarget, runCase, writeCase } from '../../fuzz/readers.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-fuzz-hf-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const SEED = 23;
const isShrink = (re: RegExp) => (e: unknown) => e instanceof ShrinkError && re.test(e.message);

test('round trip: any JSON object config and tensors written by writePretrained read back identical', () => {
  const key = fc.string({ maxLength: 8 }).filter((k) => !/^(vocab_size|hidden_size|num_|intermediate|max_position|type_vocab|head_dim|n_|model_type|architectures)/.test(k));
  fc.assert(
    fc.property(fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6, noNullPrototype: true }), fc.array(fc.float({ noNaN: true }), { maxLength: 6 }), (config, vals) => {
      const dir = path.join(tmp, 'rt');
      writePretrained(dir, { config, tensors: { w: Tensor.from(vals, { shape: [vals.length] }) } });
      assert.deepEqual(readConfig(dir), JSON.parse(JSON.stringify(config)));
      assert.deepEqual(Array.from(loadWeights(dir).get('w')!.data), vals.map((v) => Math.fround(v)));
    }),
    { numRuns: 100, seed: SEED },
  );
});

test('mutated model folders (config.json, weights, sharded index): valid or a ShrinkError naming the folder', () => {
  const seeds = hfTarget.seeds();
  for (const s of seeds) assert.equal(runCase(hfTarget, s), null);
  fc.assert(fc.property(fc.integer(), (seed) => {
    const r = runCase(hfTarget, hfTarget.mutate(new Rng(seed), seeds));
    assert.equal(r, null, r ?? '');
  }), { numRuns: 200, seed: SEED });
});

test('config.json claiming a model far larger than its weights is refused before the model is built', () => {
  const seeds = hfTarget.seeds();
  const cfg = JSON.parse(Buffer.from(seeds[0]!['config.json']!).toString());
  for (const [field, value] of [['num_hidden_layers', 2 ** 31 - 1], ['vocab_size', 2 ** 30], ['hidden_size', 1.5], ['num_attention_heads', '2'], ['model_type', '__proto__'], ['architectures', ['constructor']]] as const) {
    const dir = writeCase({ ...seeds[0]!, 'config.json': Buffer.from(JSON.stringify({ ...cfg, [field]: value })) }, 'claim');
    const p = path.join(dir, 'config.json');
    assert.throws(() => fromPretrained(dir), isShrink(new RegExp(`^${p.replace(/[/.]/g, '\\$&')}: .*`)), field);
    assert.throws(() => readConfig(dir), (e: unknown) => e instanceof ShrinkError && (field === 'num_hidden_layers' ? /justify/ : field === 'vocab_size' ? /SHRINK_MAX_TENSOR_BYTES/ : new RegExp(`"${field}"`)).test(e.message), field);
  }
});

test('sharded index: hostile weight_map names and a directory in place of config.json are ShrinkErrors', () => {
  const seeds = hfTarget.seeds();
  const sharded = seeds.find((s) => 'model.safetensors.index.json' in s)!;
  for (const wm of ['{"__proto__": "x.safetensors"}', '{"a": "../model.safetensors"}', '[]', '{"a": null}']) {
    const dir = writeCase({ ...sharded, 'model.safetensors.index.json': Buffer.from(`{"weight_map": ${wm}}`) }, 'index');
    assert.throws(() => loadWeights(dir), (e: unknown) => e instanceof ShrinkError && e.message.includes(dir), wm);
  }
  const dir = writeCase({ ...seeds[0]!, 'config.json': new Uint8Array(0) }, 'cfgdir');
  fs.rmSync(path.join(dir, 'config.json'));
  fs.mkdirSync(path.join(dir, 'config.json'));
  assert.throws(() => readConfig(dir), isShrink(/config\.json: not a regular file/));
});
