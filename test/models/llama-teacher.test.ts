// The bundled causal LM teacher (data/models/llama-l6-h256, pretrained by Shrink): it loads with fromPretrained as
// its README describes it, and `shrink eval`'s perplexity reproduces the number its README states.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fromPretrained, LlamaForCausalLM } from '../../src/index.ts';
import { evalPerplexity } from '../../src/eval/evaluate.ts';
import { root } from '../cli/helpers.ts';

const dir = path.join(root, 'data/models/llama-l6-h256');

test('llama-l6-h256: the README\'s architecture, float16 on disk, and its WikiText-2 perplexity on the first 2,048 tokens', () => {
  const m = fromPretrained<LlamaForCausalLM>(dir);
  const c = m.config;
  assert.deepEqual([c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.vocab_size, c.tie_word_embeddings], [6, 256, 4, 688, 512, true]);
  const readme = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
  const stated = Number(/\| first 2,048 tokens \| perplexity ([\d.]+)/.exec(readme)?.[1]);
  assert.ok(Number.isFinite(stated), 'the README states the perplexity of the first 2,048 tokens');
  const r = evalPerplexity(dir, path.join(root, 'data/wikitext-2/test.txt'), { maxTokens: 2048 });
  assert.ok(Math.abs(r.score - stated) < 1e-4, `perplexity ${r.score} vs README ${stated}`);
});
