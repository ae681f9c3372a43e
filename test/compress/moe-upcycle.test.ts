// moe.upcycle: experts are copies of the dense FFN (the layer equals it before training when nothing is dropped),
// the stage's losses are the routers' z-loss and balance loss read from collectAuxLosses, and they reach the router.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BertForSequenceClassification, Tensor, bertConfig, manualSeed, noGrad } from '../../src/index.ts';
import { getMethod } from '../../src/compress/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { MoELayer } from '../../src/compress/moe/layer.ts';
import { expectClose } from '../harness/expect.ts';

function tinyBert(): BertForSequenceClassification {
  manualSeed(5);
  return new BertForSequenceClassification(bertConfig({ vocab_size: 50, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, max_position_embeddings: 16, num_labels: 2 })).eval();
}
const ids = Tensor.from(Int32Array.from([2, 7, 9, 11, 3, 4, 5, 1]), { shape: [2, 4] });
const labels = Tensor.from(Int32Array.from([0, 1]));
type Fwd = Module & { forward(i: Record<string, Tensor>): { logits: Tensor; loss: Tensor | null } };

test('moe.upcycle: copies of the dense FFN, aux losses in the stage loss with gradients to the router', () => {
  const m = tinyBert();
  const want = noGrad(() => (m as unknown as Fwd).forward({ inputIds: ids }).logits);
  const method = getMethod('moe.upcycle');
  const cfg = { ...(method.defaults as Record<string, unknown>), experts: 4, top_k: 2 };
  method.check?.(m, cfg as never, {});
  const run = method.apply(m, cfg as never, {})!;
  const layers = m.namedModules().filter(([, x]) => x instanceof MoELayer).map(([, x]) => x as MoELayer);
  assert.equal(layers.length, 2);
  const got = noGrad(() => (m as unknown as Fwd).forward({ inputIds: ids }).logits);
  expectClose(got, want, { atol: 2e-5, rtol: 1e-4 }, 'upcycled logits');
  m.train();
  const out = (m as unknown as Fwd).forward({ inputIds: ids, labels });
  const losses = run.losses!({ batch: { inputIds: ids } as never, student: out as never, step: 0, model: m });
  assert.deepEqual(Object.keys(losses).sort(), ['balance_loss', 'z_loss']);
  losses.z_loss!.add(losses.balance_loss!).backward();
  for (const l of layers) assert.ok(l.router.weight.grad && Array.from(l.router.weight.grad.toArray()).some((v) => v !== 0), 'router gets a gradient');
  const rep = run.report!();
  assert.equal(rep.experts, 4);
});
