/**
 * Evaluation of a model folder: GLUE dev metrics for BERT classifiers, perplexity of causal LMs on a text, with
 * parameter count, bytes and latency.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fromPretrained } from '../models/registry.ts';
import { BertForSequenceClassification } from '../models/bert/modeling.ts';
import type { ModelInputs, ModelOutput } from '../models/outputs.ts';
import type { Module } from '../nn/module.ts';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { loadTokenizer } from '../tokenizers/index.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { evaluateGlue } from '../train/bert-tasks.ts';
import { perplexity } from './metrics.ts';
import type { GlueTask } from '../data/glue.ts';

export interface EvalReport {
  model: string;
  task: string;
  metric: string;
  score: number;
  parameters: number;
  bytes: number;
  latencyMs: number;
  tokens?: number;
}

function size(m: Module): { parameters: number; bytes: number } {
  let parameters = 0;
  let bytes = 0;
  for (const p of m.parameters()) {
    parameters += p.numel;
    bytes += p.nbytes;
  }
  return { parameters, bytes };
}

/** Dev-set metric of a fine-tuned BERT classifier folder (needs vocab.txt). */
export function evalGlue(dir: string, task: GlueTask): EvalReport {
  const vocab = path.join(dir, 'vocab.txt');
  if (!fs.existsSync(vocab)) throw new Error(`${vocab}: missing (a BERT folder needs its vocab.txt)`);
  const model = fromPretrained<BertForSequenceClassification>(dir);
  if (!(model instanceof BertForSequenceClassification))
    throw new Error(`${dir}: ${(model as Module).constructor.name} is not a sequence classifier; fine-tune it first with 'shrink train'`);
  const r = evaluateGlue(model, WordPieceTokenizer.fromVocabFile(vocab), task);
  return { model: dir, task, metric: r.metric, score: r.score, ...size(model), latencyMs: r.latencyMsPerExample };
}

/** Perplexity of a causal LM on a text file, over consecutive blocks of `blockSize` tokens. */
export function evalPerplexity(dir: string, textFile: string, opts: { blockSize?: number; maxTokens?: number } = {}): EvalReport {
  const tok = loadTokenizer(dir);
  const model = fromPretrained(dir) as Module & { forward(i: ModelInputs): ModelOutput; config: Record<string, unknown> };
  let text: string;
  try {
    text = fs.readFileSync(textFile, 'utf8');
  } catch (e) {
    throw new Error(`${textFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const maxPos = Number(model.config.max_position_embeddings ?? model.config.n_positions ?? 512);
  const block = Math.min(opts.blockSize ?? 256, maxPos);
  // Encode line by line: BPE merging is quadratic in the length of one encode() call.
  let ids: number[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    ids.push(...tok.encode(line, { addSpecialTokens: false }));
    if (opts.maxTokens && ids.length >= opts.maxTokens) break;
  }
  if (opts.maxTokens) ids = ids.slice(0, opts.maxTokens);
  let nll = 0;
  let count = 0;
  const t0 = performance.now();
  noGrad(() => {
    for (let s = 0; s + 1 < ids.length; s += block) {
      const chunk = ids.slice(s, s + block);
      if (chunk.length < 2) break;
      const input = Tensor.from(Int32Array.from(chunk), { shape: [1, chunk.length] });
      const loss = model.forward({ inputIds: input, labels: input }).loss!.item(); // mean over chunk.length - 1 predictions
      nll += loss * (chunk.length - 1);
      count += chunk.length - 1;
    }
  });
  const ms = performance.now() - t0;
  return { model: dir, task: 'perplexity', metric: 'perplexity', score: perplexity(nll, count), ...size(model), latencyMs: ms / Math.max(1, count), tokens: count };
}
