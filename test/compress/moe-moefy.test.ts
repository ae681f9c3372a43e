// moe.moefy: balanced k-means clusters, exactness of the split (all experts active = the dense FFN) on BERT and
// GPT-2, the method through a recipe (router trained on calibration tokens, top-k at inference), and a
// savePretrained / fromPretrained round trip through compression_config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BertForSequenceClassification, GPT2LMHeadModel, Tensor, bertConfig, fromPretrained, gpt2Config, manualSeed, noGrad, savePretrained,
} from '../../src/index.ts';
import { runRecipe } from '../../src/compress/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { anatomy, replaceMlp } from '../../src/models/anatomy.ts';
import { ffnUnits } from '../../src/compress/prune/importance.ts';
import { MoELayer } from '../../src/compress/moe/layer.ts';
import { balancedKMeans, moeFromDense } from '../../src/compress/moe/moefy.ts';
import type { LinearLike } from '../../src/nn/layers.ts';
import { expectClose } from '../harness/expect.ts';

function tinyBert(): BertForSequenceClassification {
  manualSeed(5);
  return new BertForSequenceClassification(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 16, num_labels: 2 })).eval();
}
function tinyGpt2(): GPT2LMHeadModel {
  manualSeed(6);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 50, n_embd: 32, n_layer: 2, n_head: 4, n_positions: 16, n_inner: 64 })).eval();
}

const ids = Tensor.from(Int32Array.from([2, 7, 9, 11, 3, 4, 5, 1]), { shape: [2, 4] });
const mask = Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 0]), { shape: [2, 4] });
type Fwd = Module & { forward(i: { inputIds: Tensor; attentionMask?: Tensor }): { logits: Tensor } };
const logitsOf = (m: Module) => noGrad(() => (m as Fwd).forward({ inputIds: ids, attentionMask: mask }).logits);

test('balanced k-means: equal clusters, seeded', () => {
  const n = 24, d = 3;
  const x = Float64Array.from({ length: n * d }, (_, i) => Math.sin(i * 1.7) + (Math.floor(i / d) % 3));
  const a = balancedKMeans(x, n, d, 4, 10, 1);
  const counts = [0, 0, 0, 0];
  for (const e of a) counts[e]!++;
  assert.deepEqual(counts, [6, 6, 6, 6]);
  assert.deepEqual([...balancedKMeans(x, n, d, 4, 10, 1)], [...a]);
});

for (const [name, make] of [['BERT', tinyBert], ['GPT-2', tinyGpt2]] as const)
  test(`${name}: with every expert active the MoE layer is exactly the dense FFN`, () => {
    const m = make();
    const want = logitsOf(m);
    const ffns = ffnUnits(m);
    for (const f of ffns) {
      const up = m.getSubmodule(f.m.up!) as unknown as LinearLike;
      const down = m.getSubmodule(f.m.down!) as unknown as LinearLike;
      const dense = noGrad(() => ({ wu: up.weightOutIn().contiguous(), bu: up.bias, wd: down.weightOutIn().contiguous(), bd: down.bias, act: f.m.activation! }));
      const E = 4;
      const clusters = Int32Array.from({ length: f.units }, (_, i) => (i * 7) % E);
      const layer = moeFromDense(dense, clusters, E, E);
      replaceMlp(m, f.index, layer);
    }
    assert.ok(anatomy(m).blocks.every((b) => b.mlp?.kind === 'custom'));
    expectClose(logitsOf(m), want, { atol: 2e-5, rtol: 1e-4 }, `${name} logits`);
  });

test('moe.moefy through a recipe: routers trained, top-k experts per token, reload from compression_config', () => {
  const m = tinyBert();
  const gen = () => {
    manualSeed(11);
    return Array.from({ length: 4 }, () => ({ inputIds: Tensor.randint(1, 50, [4, 8]).to('int32'), attentionMask: Tensor.ones([4, 8]).to('int32') }));
  };
  const logs: string[] = [];
  const r = runRecipe(m, [{ method: 'moe.moefy', experts: 4, top_k: 1, router_steps: 100 }], { calibration: () => gen(), log: (l) => logs.push(l) });
  const rep = r.steps[0]!;
  assert.equal(rep.active_neuron_fraction, 0.25);
  assert.equal(rep.calibration_tokens, 4 * 4 * 8);
  assert.ok((rep.router_recall as number) > 0.3, `recall ${rep.router_recall}`);
  const layers = m.namedModules().filter(([, x]) => x instanceof MoELayer).map(([, x]) => x as MoELayer);
  assert.equal(layers.length, 2);
  const y = logitsOf(m);
  for (const l of layers) {
    assert.equal(l._last!.k, 1);
    assert.ok(l._last!.kept.every((v) => v === 1), 'no capacity limit');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moefy-'));
  try {
    savePretrained(m as never, dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.compression_config.modules['bert.encoder.layer.0.mlp'].type, 'moe');
    const loaded = fromPretrained<BertForSequenceClassification>(dir).eval();
    expectClose(logitsOf(loaded), y, { atol: 1e-6, rtol: 1e-5 }, 'reloaded logits');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('moe.moefy → quant.rtn: the experts are quantized, the router stays float (ST-MoE routes in float32)', async () => {
  const { cyclicTask, randomClsBatches } = await import('../harness/tasks.ts');
  const { QuantLinear } = await import('../../src/compress/quant/modules.ts');
  const { Linear } = await import('../../src/nn/layers.ts');
  const m = tinyBert();
  const task = cyclicTask(randomClsBatches(3, 2, 4, 6, 50, 3));
  runRecipe(m, [{ method: 'moe.moefy', experts: 4, top_k: 2, router_steps: 5 }, { method: 'quant.rtn', scheme: 'int4', granularity: 'group:16' }], { task });
  const moe = m.namedModules().filter(([, x]) => x instanceof MoELayer);
  assert.ok(moe.length > 0);
  for (const [name, layer] of moe) {
    assert.ok((layer as MoELayer).router instanceof Linear && !((layer as MoELayer).router instanceof QuantLinear), `${name}.router was quantized`);
    assert.ok(layer.namedModules().some(([, x]) => x instanceof QuantLinear), `${name}: no expert was quantized`);
  }
  const out = (m as unknown as { forward(b: unknown): { logits: { shape: number[]; toArray(): ArrayLike<number> } } }).forward({ inputIds: randomClsBatches(4, 1, 2, 6, 50, 3)[0]!.inputIds });
  assert.deepEqual(out.logits.shape, [2, m.config.num_labels]);
  assert.ok(Array.from(out.logits.toArray()).every(Number.isFinite));
});
