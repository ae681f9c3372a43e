import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evalPerplexity } from '../../src/eval/evaluate.ts';
import { fromPretrained } from '../../src/models/registry.ts';
import { loadTokenizer } from '../../src/tokenizers/index.ts';
import { Tensor, noGrad } from '../../src/index.ts';
import type { ModelInputs, ModelOutput } from '../../src/models/outputs.ts';

const MODEL = path.join(import.meta.dirname, '../../data/models/stories260K');
const TEXT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her friends.\n' +
  'One day, Lily saw a big red ball in the park. She wanted to play with it, so she asked her mom.\n' +
  'Her mom said yes, and Lily ran to the ball. She kicked it high into the sky and laughed.\n';

function textFile(): { file: string; done(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppl-'));
  const file = path.join(dir, 'story.txt');
  fs.writeFileSync(file, TEXT);
  return { file, done: () => fs.rmSync(dir, { recursive: true }) };
}

/** Mean NLL of every token after the first, from one forward pass over the whole text (it fits the context). */
function fullNll(): { nll: number; n: number } {
  const tok = loadTokenizer(MODEL);
  const model = fromPretrained(MODEL) as unknown as { forward(i: ModelInputs): ModelOutput };
  const ids: number[] = [];
  for (const line of TEXT.split('\n')) if (line.trim()) ids.push(...tok.encode(line, { addSpecialTokens: false }));
  const x = Tensor.from(Int32Array.from(ids), { shape: [1, ids.length] });
  const loss = noGrad(() => model.forward({ inputIds: x, labels: x }).loss!.item());
  return { nll: loss, n: ids.length - 1 };
}

test('perplexity with a window covering the text equals one full forward pass', () => {
  const { file, done } = textFile();
  const full = fullNll();
  const r = evalPerplexity(MODEL, file, { blockSize: 256 });
  assert.equal(r.tokens, full.n);
  assert.ok(Math.abs(Math.log(r.score) - full.nll) < 1e-5, `${Math.log(r.score)} vs ${full.nll}`);
  done();
});

test('sliding-window perplexity scores every token once and context lowers perplexity', () => {
  const { file, done } = textFile();
  const full = fullNll();
  const disjoint = evalPerplexity(MODEL, file, { blockSize: 16 });
  const sameAsDisjoint = evalPerplexity(MODEL, file, { blockSize: 16, stride: 16 });
  const sliding = evalPerplexity(MODEL, file, { blockSize: 16, stride: 4 });
  assert.equal(sliding.tokens, full.n);
  assert.equal(sameAsDisjoint.score, disjoint.score);
  // disjoint blocks lose each block's first prediction; sliding windows keep 12 tokens of context
  assert.ok(disjoint.tokens! < full.n);
  assert.ok(sliding.score < disjoint.score, `sliding ${sliding.score} should beat disjoint ${disjoint.score}`);
  assert.ok(Math.log(sliding.score) >= full.nll - 1e-6, 'less context than the full pass cannot be better on this text');
  assert.throws(() => evalPerplexity(MODEL, file, { blockSize: 16, stride: 17 }), /stride must be in \[1, block size 16\], got 17/);
  done();
});
