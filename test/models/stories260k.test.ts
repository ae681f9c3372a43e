// A real pretrained checkpoint: Karpathy's stories260K (Llama architecture, TinyStories), bundled in
// data/models/stories260K. Reference values computed with torch by the staging harness and
// recorded in data/README.md: the encoding of a known sentence, its mean NLL (0.293 nats/token) and the greedy continuation from BOS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fromPretrained } from '../../src/models/registry.ts';
import { LlamaForCausalLM } from '../../src/models/llama/modeling.ts';
import { generate } from '../../src/models/generation.ts';
import { SentencePieceBPETokenizer } from '../../src/tokenizers/sentencepiece.ts';
import { Tensor, noGrad } from '../../src/index.ts';

const dir = path.resolve(import.meta.dirname, '../../data/models/stories260K');
const tok = SentencePieceBPETokenizer.fromLlama2cBin(path.join(dir, 'tok512.bin'));
const model = fromPretrained<LlamaForCausalLM>(dir);
const TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her friends.';

test('tokenizer: llama2.c encoding of the reference sentence', () => {
  const ids = tok.encode(TEXT);
  assert.equal(ids.length, 35);
  assert.deepEqual(ids.slice(0, 10), [1, 403, 407, 261, 378, 432, 383, 286, 261, 376]);
  assert.equal(tok.decode(ids), TEXT);
  for (const s of ['café naïve 🙂', '  two  spaces', 'x']) assert.equal(tok.decode(tok.encode(s)), s);
});

test('model: mean NLL of the reference sentence is 0.293 nats/token', () => {
  assert.ok(model instanceof LlamaForCausalLM);
  assert.equal(model.config.num_key_value_heads, 4);
  const ids = tok.encode(TEXT);
  const input = Tensor.from(Int32Array.from(ids), { shape: [1, ids.length] });
  const loss = noGrad(() => model.forward({ inputIds: input, labels: input }).loss!.item());
  assert.ok(Math.abs(loss - 0.293) < 0.0015, `mean NLL ${loss}`);
});

test('greedy continuation from BOS is the known TinyStories sentence, with and without the KV cache', () => {
  const out = generate(model, [1], { maxNewTokens: 40 });
  const text = tok.decode(out);
  assert.ok(text.startsWith('Once upon a time, there was a little girl named Lily. She loved to play outside in the park.'), text);
  assert.deepEqual(generate(model, [1], { maxNewTokens: 12, useCache: false }), out.slice(0, 13));
});
