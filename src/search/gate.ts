/**
 * Early rejection for `shrink search`: the Wilson score interval, and `search.gate`, a one-shot recipe step that the
 * search appends to every candidate it runs through `compressFolder`.
 *
 * The gate changes no weight. It scores the compressed model on a fixed subset of the task's dev set (a seeded
 * shuffle of the dev indices, the first `subset` of them; the same examples for every candidate) and throws
 * {@link EarlyRejection} when the upper end of the 95 % Wilson interval of that accuracy is below `min_accuracy`:
 * the candidate cannot plausibly reach the accuracy budget, so compressFolder stops before the full dev-set pass, the
 * latency runs and the save. A candidate that passes goes on to the full measurement, which alone decides whether it
 * is within budget. Accuracy tasks only (SST-2, RTE); the search leaves the gate out for F1 / Matthews tasks.
 */
import type { Module } from '../nn/module.ts';
import { registerMethod } from '../compress/method.ts';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { loadGlue, GLUE_TASKS, type GlueTask } from '../data/glue.ts';
import { encodeExample } from '../eval/glue.ts';
import { collate, type Encoded } from '../data/batch.ts';
import { noGrad } from '../tensor/autograd.ts';
import type { ModelInputs, ModelOutput } from '../models/outputs.ts';

/** z of a two-sided 95 % interval. */
export const Z95 = 1.959963984540054;

/** Wilson score interval of a binomial proportion: `successes` of `n` (Wilson 1927). n = 0 gives [0, 1]. */
export function wilsonInterval(successes: number, n: number, z = Z95): { lower: number; upper: number } {
  if (!(Number.isInteger(n) && n >= 0 && Number.isInteger(successes) && successes >= 0 && successes <= n)) throw new Error(`wilsonInterval: expected 0 ≤ successes ≤ n (integers), got ${successes} of ${n}`);
  if (n === 0) return { lower: 0, upper: 1 };
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = p + z2 / (2 * n);
  const half = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { lower: Math.max(0, (center - half) / denom), upper: Math.min(1, (center + half) / denom) };
}

/** Thrown by `search.gate` when the subset's Wilson upper bound rules the accuracy budget out. */
export class EarlyRejection extends Error {
  constructor(
    readonly n: number,
    readonly correct: number,
    readonly upper: number,
    readonly threshold: number,
  ) {
    super(`rejected early: ${correct}/${n} correct on the dev subset (${((100 * correct) / n).toFixed(2)} %), Wilson 95 % upper bound ${(100 * upper).toFixed(2)} % < ${(100 * threshold).toFixed(2)} %`);
    this.name = 'EarlyRejection';
  }
}

export interface GateConfig {
  task: string;
  /** The model folder whose vocab.txt encodes the dev set. */
  vocab_dir: string;
  subset: number;
  seed: number;
  /** Reject when the Wilson upper bound of the subset accuracy is below this (a fraction). */
  min_accuracy: number;
  max_length: number;
}

/** A fixed subset of dev indices: seeded Fisher–Yates (mulberry32), the first `k`. */
export function devSubset(total: number, k: number, seed: number): number[] {
  const idx = Array.from({ length: total }, (_, i) => i);
  let s = seed >>> 0 || 0x9e3779b9;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = total - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, Math.min(k, total));
}

const cache = new Map<string, { enc: Encoded[]; labels: number[]; pad: number }>();

function subsetData(c: GateConfig) {
  const key = JSON.stringify([c.task, c.vocab_dir, c.subset, c.seed, c.max_length]);
  let d = cache.get(key);
  if (!d) {
    const tok = WordPieceTokenizer.fromVocabFile(`${c.vocab_dir}/vocab.txt`);
    const dev = loadGlue(c.task as GlueTask, 'dev');
    const idx = devSubset(dev.texts.length, c.subset, c.seed);
    d = { enc: idx.map((i) => encodeExample(tok, dev.texts[i]!, c.max_length)), labels: idx.map((i) => dev.labels[i]!), pad: tok.specialIds.pad! };
    cache.set(key, d);
  }
  return d;
}

/** Correct predictions of `model` on the gate's subset. */
export function subsetCorrect(model: Module, c: GateConfig): { correct: number; n: number } {
  const d = subsetData(c);
  let correct = 0;
  model.eval();
  noGrad(() => {
    for (let i = 0; i < d.enc.length; i += 32) {
      const b = collate(d.enc.slice(i, i + 32), { padId: d.pad });
      const out = (model as unknown as { forward(x: ModelInputs): ModelOutput }).forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, tokenTypeIds: b.tokenTypeIds });
      const pred = out.logits!.argmax(-1).toArray();
      for (let j = 0; j < pred.length; j++) if (Number(pred[j]) === d.labels[i + j]) correct++;
    }
  });
  return { correct, n: d.enc.length };
}

registerMethod<GateConfig>({
  name: 'search.gate',
  kind: 'one-shot',
  description: 'shrink search: no change to the model; scores a fixed dev subset and stops the run when the Wilson 95 % upper bound of its accuracy is below min_accuracy',
  defaults: { task: 'sst2', vocab_dir: '', subset: 256, seed: 0, min_accuracy: 0, max_length: 64 },
  types: { task: GLUE_TASKS as unknown as readonly string[] },
  check(_model, c) {
    if (!c.vocab_dir) throw new Error('search.gate: vocab_dir (the model folder with vocab.txt) is required');
    if (!(Number.isInteger(c.subset) && c.subset >= 1)) throw new Error(`search.gate: subset must be a positive integer, got ${c.subset}`);
  },
  apply(model, c) {
    const { correct, n } = subsetCorrect(model, c);
    const { upper } = wilsonInterval(correct, n);
    if (upper < c.min_accuracy) throw new EarlyRejection(n, correct, upper, c.min_accuracy);
    return { report: () => ({ subset: n, subset_accuracy: correct / n, wilson_upper: upper }) };
  },
});
