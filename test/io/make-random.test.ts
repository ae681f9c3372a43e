// shrink make-random: a random-weight Llama checkpoint of a given configuration, sharded, that loads and runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fromPretrained, Tensor, noGrad, LlamaForCausalLM } from '../../src/index.ts';
import { llamaConfig } from '../../src/models/llama/config.ts';
import { llamaTensors, makeRandomCheckpoint } from '../../src/io/make-random.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { run } from '../cli/helpers.ts';

const config = { model_type: 'llama', vocab_size: 100, hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, initializer_range: 0.05, tie_word_embeddings: false };

test('make-random: every LlamaForCausalLM tensor, sharded by bytes with an index; loads, runs, and is reproducible', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mkrand-'));
  try {
    const a = makeRandomCheckpoint(config, path.join(dir, 'a'), { shards: 3, dtype: 'bf16', seed: 7 });
    // the same names and shapes as the model class, nothing more
    const model = new LlamaForCausalLM(llamaConfig(config as never));
    const expected = [...model.stateDict()].map(([n, t]) => [n, t.shape]).sort();
    assert.deepEqual(llamaTensors(config).map(([n, s]) => [n, s]).sort(), expected);
    const params = expected.reduce((s, [, sh]) => s + (sh as number[]).reduce((x, y) => x * y, 1), 0);
    assert.equal(a.parameters, params);
    assert.equal(a.bytes, 2 * params);
    assert.deepEqual(a.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'a', 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, a.bytes);
    assert.deepEqual(new Set(Object.values(index.weight_map)).size, 3);
    // each shard holds what the index says, in BF16; the norms are 1, the matrices N(0, 0.05²)
    const sizes = a.files.map((f) => fs.statSync(path.join(dir, 'a', f)).size);
    assert.ok(Math.max(...sizes) < 2.2 * Math.min(...sizes), `shards of similar size: ${sizes}`);
    for (const f of a.files) {
      const st = SafetensorsFile.open(path.join(dir, 'a', f));
      for (const name of st.keys()) assert.equal(index.weight_map[name], f);
    }
    const loaded = fromPretrained<LlamaForCausalLM>(path.join(dir, 'a'));
    const sd = loaded.stateDict();
    assert.ok(Array.from(sd.get('model.norm.weight')!.data).every((v) => v === 1));
    const w = Array.from(sd.get('model.layers.1.mlp.down_proj.weight')!.data);
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    const sd2 = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
    assert.ok(Math.abs(mean) < 0.005 && Math.abs(sd2 - 0.05) < 0.005, `mean ${mean}, std ${sd2}`);
    const logits = noGrad(() => loaded.forward({ inputIds: Tensor.from(Int32Array.from([1, 5, 9, 3]), { shape: [1, 4] }) }).logits);
    assert.deepEqual(logits.shape, [1, 4, 100]);
    assert.ok(Array.from(logits.data).every(Number.isFinite));
    // the same seed gives the same bytes; fp32 and one file: model.safetensors, no index
    const b = makeRandomCheckpoint(config, path.join(dir, 'b'), { shards: 3, dtype: 'bf16', seed: 7 });
    for (const f of b.files) assert.ok(fs.readFileSync(path.join(dir, 'a', f)).equals(fs.readFileSync(path.join(dir, 'b', f))), f);
    const c = makeRandomCheckpoint(config, path.join(dir, 'c'), { dtype: 'fp32' });
    assert.deepEqual(fs.readdirSync(path.join(dir, 'c')).sort(), ['config.json', 'model.safetensors']);
    assert.equal(fs.statSync(path.join(dir, 'c', 'model.safetensors')).size > 4 * params, true);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'c', 'config.json'), 'utf8')).torch_dtype, 'float32');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink make-random: from a config.json; bad configs and flags are one line before any work', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mkrand-cli-'));
  try {
    const cfg = path.join(dir, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify(config));
    const r = run('make-random', cfg, '-o', path.join(dir, 'm'), '--shards', '2', '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).files.length, 2);
    assert.ok(fromPretrained(path.join(dir, 'm')));
    const again = run('make-random', cfg, '-o', path.join(dir, 'm'));
    assert.equal(again.status, 1);
    assert.match(again.stderr, /exists.*--force/);
    fs.writeFileSync(path.join(dir, 'bert.json'), JSON.stringify({ ...config, model_type: 'bert' }));
    const cases: [string[], string][] = [
      [[path.join(dir, 'bert.json')], `shrink: make-random: config.json model_type must be 'llama', got "bert"`],
      [[cfg, '--dtype', 'int4'], 'shrink: make-random: --dtype must be bf16 or fp32, got int4'],
      [[cfg, '--shards', '99'], 'shrink: make-random: --shards must be an integer from 1 to 21 (the number of tensors), got 99'],
      [[path.join(dir, 'none.json')], `shrink: make-random: ${path.join(dir, 'none.json')}: no such file (expected a config.json or a folder holding one)`],
    ];
    for (const [args, msg] of cases) {
      const x = run('make-random', ...args, '-o', path.join(dir, 'x'));
      assert.equal(x.status, 1, args.join(' '));
      assert.equal(x.stderr.trim(), msg);
      assert.ok(!fs.existsSync(path.join(dir, 'x')));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
