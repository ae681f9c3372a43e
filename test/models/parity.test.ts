// Hugging Face parity per named tensor: BERT (MLM, classification), GPT-2, Llama (MHA and GQA) against
// transformers v4.36.2 on the fixtures' weights and inputs — every hidden state, attention matrix, logit, the loss
// and the loss gradient of every parameter. Tolerances: fixtures README (fp32 vs fp64 noise floor ×10).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromPretrained } from '../../src/models/registry.ts';
import type { Module } from '../../src/nn/module.ts';
import type { ModelOutput, ModelInputs, ForwardOptions } from '../../src/models/outputs.ts';
import type { Tensor } from '../../src/index.ts';
import { modelFixture } from '../harness/fixtures.ts';
import { expectClose } from '../harness/expect.ts';

type Model = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };

function tolFor(name: string, want: Tensor, nearZero: boolean) {
  if (name === 'out.loss') return { atol: 1e-6, rtol: 1e-5 };
  if (name.startsWith('out.attentions')) return { atol: 1e-5, rtol: 1e-4 };
  if (name.startsWith('grad.')) {
    const mx = Math.max(1e-12, ...Array.from(want.toFloat32Array(), Math.abs));
    return nearZero ? { atol: 1e-6, rtol: 0 } : { atol: Math.max(1e-6, 1e-4 * mx), rtol: 1e-3 };
  }
  return { atol: 1e-4, rtol: 1e-3 };
}

for (const name of ['bert_mlm', 'bert_cls', 'gpt2', 'llama', 'llama_gqa']) {
  describe(`${name} vs Hugging Face`, () => {
    const fx = modelFixture(name);
    const model = fromPretrained<Model>(fx.dir);
    const inputs: ModelInputs = {
      inputIds: fx.t('inputs.input_ids'),
      attentionMask: fx.t('inputs.attention_mask'),
      tokenTypeIds: fx.tensors.get('inputs.token_type_ids') ?? null,
      labels: fx.t('inputs.labels'),
    };
    const out = model.forward(inputs, { outputHiddenStates: true, outputAttentions: true });
    out.loss!.backward();
    const params = new Map(model.namedParameters());

    test('saved keys match model.safetensors', () => {
      assert.deepEqual([...model.stateDict({ forSave: true }).keys()].sort(), [...(fx.index.model_safetensors_keys as string[])].sort());
    });
    const pick = (n: string): Tensor => {
      if (n === 'out.loss') return out.loss!;
      if (n === 'out.logits') return out.logits;
      const [, kind, i] = n.split('.');
      const list = kind === 'hidden_states' ? out.hiddenStates! : out.attentions!;
      assert.ok(Number(i) < list.length, `${n}: model returned ${list.length} entries`);
      return list[Number(i)]!;
    };
    for (const n of fx.names('out.'))
      test(n, () => {
        const want = fx.t(n);
        expectClose(pick(n), want, tolFor(n, want, false), `${name} ${n}`);
      });
    for (const n of fx.names('grad.'))
      test(n, () => {
        const p = params.get(n.slice(5));
        assert.ok(p, `no parameter ${n.slice(5)}`);
        assert.ok(p.grad, `${n.slice(5)} has no gradient`);
        const want = fx.t(n);
        expectClose(p.grad, want, tolFor(n, want, !!fx.index.tensors[n]?.near_zero_in_exact_arithmetic), `${name} ${n}`);
      });
  });
}

test('BertForMaskedLM predictOnlyLabelled gives the same loss and gradients', () => {
  const fx = modelFixture('bert_mlm');
  const inputs = { inputIds: fx.t('inputs.input_ids'), attentionMask: fx.t('inputs.attention_mask'), tokenTypeIds: fx.t('inputs.token_type_ids'), labels: fx.t('inputs.labels') };
  const a = fromPretrained<Model>(fx.dir);
  const b = fromPretrained<Model & { forward(i: ModelInputs, o?: ForwardOptions & { predictOnlyLabelled?: boolean }): ModelOutput }>(fx.dir);
  const la = a.forward(inputs).loss!;
  const lb = b.forward(inputs, { predictOnlyLabelled: true }).loss!;
  expectClose(lb, la, { atol: 1e-6, rtol: 1e-5 }, 'loss');
  la.backward();
  lb.backward();
  const gb = new Map(b.namedParameters());
  for (const [n, p] of a.namedParameters()) expectClose(gb.get(n)!.grad!, p.grad!, { atol: 1e-6, rtol: 1e-4 }, `grad ${n}`);
});
