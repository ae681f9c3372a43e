/**
 * GPTQ's blockwise calibration pass (activations carried from block to block) against the whole-model pass, and
 * the streaming `quantizeFolder` (weights read from the file when the quantizer reaches them) against quantizing
 * the loaded model: the same integer checkpoints, tensor for tensor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BertForMaskedLM, GPT2LMHeadModel, Generator, bertConfig, LlamaForCausalLM, Tensor, fromPretrained, gpt2Config, llamaConfig, manualSeed, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { quantizeModel, type QuantizeOptions } from '../../src/compress/quant/apply.ts';
import { quantizeFolder } from '../../src/compress/quant/pretrained.ts';
import { upperCholeskyOfInverseInPlace } from '../../src/compress/quant/gptq-adapter.ts';
import { setBackend } from '../../src/backend/registry.ts';
import '../../src/compress/quant/format.ts';
import { expectEqual } from '../harness/expect.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-qstream-'));

function llama(): LlamaForCausalLM {
  manualSeed(11);
  // untied head (its own GPTQ stage after the final norm), grouped-query attention, 3 blocks
  return new LlamaForCausalLM(llamaConfig({ vocab_size: 48, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false }));
}

function gpt2(): GPT2LMHeadModel {
  manualSeed(12);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 48, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, architectures: ['GPT2LMHeadModel'] }));
}

/** Two batches; the second pads its first row's last three tokens (masked rows stay out of the Hessians). */
function calibration(): Record<string, Tensor>[] {
  const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 7 + seed * 13) % 48);
  return [
    { inputIds: Tensor.from(ids(16, 1), { shape: [2, 8] }) },
    { inputIds: Tensor.from(ids(16, 2), { shape: [2, 8] }), attentionMask: Tensor.from(Int32Array.from([1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]), { shape: [2, 8] }) },
  ];
}

function sameState(a: Module, b: Module, what: string): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual([...sa.keys()].sort(), [...sb.keys()].sort(), `${what}: keys`);
  for (const [k, t] of sa) expectEqual(sb.get(k)!, t, `${what}: ${k}`);
}

const GPTQ: QuantizeOptions = { scheme: 'int4', groupSize: 16, method: 'gptq', calibration };

for (const [name, make] of [['Llama (GQA, untied head)', llama], ['GPT-2 (Conv1D, tied head)', gpt2]] as const) {
  test(`GPTQ on ${name}: the blockwise pass gives the whole-model pass's checkpoint exactly`, () => {
    const whole = make();
    const rw = quantizeModel(whole, { ...GPTQ, gptqPass: 'model' });
    const blockwise = make();
    const rb = quantizeModel(blockwise, { ...GPTQ, gptqPass: 'blockwise' });
    sameState(whole, blockwise, name);
    assert.deepEqual(rb.gptqLoss, rw.gptqLoss);
    // every Linear went through GPTQ (the untied Llama head too), none through RTN
    const linears = Object.entries(rb.modules).filter(([, e]) => e.type !== 'embedding' && !e.shares).map(([k]) => k);
    assert.deepEqual(Object.keys(rb.gptqLoss!).sort(), linears.sort());
  });
}

test('quantizeFolder streams: GPTQ and RTN from the file give the checkpoint of quantizing the loaded model, in one file or shards', () => {
  const dir = tmp();
  const bert = () => {
    manualSeed(1);
    return new BertForMaskedLM(bertConfig({ vocab_size: 48, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 16 }));
  };
  // BERT takes GPTQ's whole-model pass: every block starts first and is written at the end
  for (const [name, make] of [['llama', llama], ['gpt2', gpt2], ['bert', bert]] as const) {
    const src = path.join(dir, `fp-${name}`);
    savePretrained(make(), src);
    for (const o of [GPTQ, { scheme: 'int4', groupSize: 16 } as QuantizeOptions, { scheme: 'int8' } as QuantizeOptions])
      for (const maxShardBytes of [undefined, 1500]) {
        const what = `${name} ${o.method ?? 'rtn'} ${o.scheme}${maxShardBytes ? ' sharded' : ''}`;
        const out = path.join(dir, what.replaceAll(' ', '-'));
        const r = quantizeFolder(src, out, o, { force: true, maxShardBytes });
        assert.equal(r.files.length > 1, maxShardBytes !== undefined, `${what}: ${r.files.join(', ')}`);
        const inMemory = fromPretrained(src);
        quantizeModel(inMemory, o);
        sameState(fromPretrained(out), inMemory, what);
      }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the blockwise pass is refused for BERT (its MLM head has its own transform) with the reason; the default falls back', () => {
  const bert = () => {
    manualSeed(1);
    return new BertForMaskedLM(bertConfig({ vocab_size: 48, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 16 }));
  };
  assert.throws(() => quantizeModel(bert(), { ...GPTQ, gptqPass: 'blockwise' }), /^Error: GPTQ blockwise pass: the model has no final norm \+ lm_head anatomy \(GPT-2 \/ Llama decoders only\)$/);
  const r = quantizeModel(bert(), GPTQ);
  assert.ok(Object.keys(r.gptqLoss!).includes('bert.encoder.layer.0.output.dense'));
});

test("GPTQ's factor: U is upper-triangular with a positive diagonal and Uᵀ·U = H⁻¹, on the addon and the reference", () => {
  const K = 37;
  const g = new Generator(5);
  const X = Float64Array.from({ length: 2 * K * K }, () => g.normal());
  const H = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) for (let r = 0; r < 2 * K; r++) H[i * K + j] += (X[r * K + i]! * X[r * K + j]!) / (2 * K);
  for (const b of ['ref', 'native'] as const) {
    const prev = setBackend(b);
    try {
      const U = upperCholeskyOfInverseInPlace(Float64Array.from(H), K, 'h', 0.01);
      for (let i = 0; i < K; i++) {
        assert.ok(U[i * K + i]! > 0);
        for (let j = 0; j < i; j++) assert.equal(U[i * K + j], 0, `${b}: U[${i},${j}]`);
      }
      // (Uᵀ U) H = I
      for (let i = 0; i < K; i++)
        for (let j = 0; j < K; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) {
            let uu = 0;
            for (let r = 0; r <= Math.min(i, k); r++) uu += U[r * K + i]! * U[r * K + k]!;
            s += uu * H[k * K + j]!;
          }
          assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9, `${b}: (UᵀU·H)[${i},${j}] = ${s}`);
        }
    } finally {
      setBackend(prev);
    }
  }
});

test('blockwise GPTQ checkpoints: a run stopped after a block resumes there and writes the checkpoint of an uninterrupted run', () => {
  const dir = tmp();
  for (const [name, make] of [['llama', llama], ['gpt2', gpt2]] as const) {
    const src = path.join(dir, `fp-${name}`);
    savePretrained(make(), src);
    const full = quantizeFolder(src, path.join(dir, `full-${name}`), GPTQ, { force: false });
    for (const stopAt of [1, 2]) {
      const out = path.join(dir, `resumed-${name}-${stopAt}`);
      const runDir = path.join(dir, `.resumed-${name}-${stopAt}.quantize-run`);
      const events: string[] = [];
      assert.throws(
        () =>
          quantizeFolder(src, out, GPTQ, {
            force: false,
            checkpointEverySeconds: 0,
            maxShardBytes: 3000,
            onCheckpoint: (e, b) => {
              events.push(`${e} ${b}`);
              if (b === stopAt) throw new Error('stopped');
            },
          }),
        /stopped/,
      );
      assert.equal(fs.existsSync(out), false);
      assert.equal(fs.readFileSync(path.join(runDir, 'latest'), 'utf8'), `checkpoint-${stopAt}`);
      const r = quantizeFolder(src, out, GPTQ, { force: false, checkpointEverySeconds: 0, maxShardBytes: 3000, onCheckpoint: (e, b) => events.push(`${e} ${b}`) });
      const blocks = name === 'llama' ? 3 : 2;
      assert.deepEqual(events, [...Array.from({ length: stopAt }, (_, i) => `saved ${i + 1}`), `resumed ${stopAt}`, ...Array.from({ length: blocks - stopAt }, (_, i) => `saved ${stopAt + i + 1}`)]);
      sameState(fromPretrained(out), fromPretrained(full.out), `${name} stopped after block ${stopAt}`);
      assert.deepEqual(r.gptqLoss, full.gptqLoss);
      assert.deepEqual(r.modules, full.modules);
      assert.equal(r.quantBytes, full.quantBytes);
      assert.equal(r.floatBytes, full.floatBytes);
      assert.equal(fs.existsSync(runDir), false, 'the run folder goes once the output is written');
    }
  }
  // a run folder of other settings is not resumed: refused, or replaced with force
  const src = path.join(dir, 'fp-llama');
  const out = path.join(dir, 'other');
  assert.throws(() => quantizeFolder(src, out, GPTQ, { force: false, checkpointEverySeconds: 0, onCheckpoint: () => { throw new Error('stopped'); } }), /stopped/);
  assert.throws(() => quantizeFolder(src, out, { ...GPTQ, percdamp: 0.05 }, { force: false }), /checkpoint folder .*\.other\.quantize-run holds a Shrink training run with other settings \(options .*percdamp/);
  const r = quantizeFolder(src, out, { ...GPTQ, percdamp: 0.05 }, { force: true });
  assert.ok(r.files.length >= 1);
  fs.rmSync(dir, { recursive: true, force: true });
});
