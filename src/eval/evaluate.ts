/**
 * Evaluation of a model folder: GLUE dev metrics for BERT classifiers, perplexity of causal LMs on a text, with
 * parameter count, bytes and latency. The metric is one pass over the data; the latency is measured apart from it,
 * warm (see `latencyMethod`), so it does not carry the first pass's JIT and first-touch costs.
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
import { evaluateGlue } from './glue.ts';
import { perplexity } from './metrics.ts';
import { modelSize } from './size.ts';
import { measureLatency } from './latency.ts';
export { modelSize } from './size.ts';
import { causalLabels, chunkTokens } from '../data/text.ts';
import type { GlueTask } from '../data/glue.ts';
import { MoELayer } from '../compress/moe/layer.ts';

/** Evaluation-time routing of a model's MoE layers (`shrink eval --moe-top-k / --moe-capacity`). */
export interface MoeEvalOptions {
  /** Experts per token. */
  topK?: number;
  /** Capacity factor at evaluation (ST-MoE: 2.0). */
  capacityFactor?: number;
}

/**
 * Set the routing of every MoE layer of a loaded model for this evaluation (the folder keeps its own, recorded in
 * compression_config). Fails, naming the layer, when the model has none or top-k exceeds a layer's experts.
 */
export function setMoeRouting(model: Module, dir: string, o: MoeEvalOptions): void {
  if (o.topK === undefined && o.capacityFactor === undefined) return;
  const layers = model.namedModules().filter(([, m]) => m instanceof MoELayer) as [string, MoELayer][];
  if (layers.length === 0) throw new Error(`${dir}: --moe-top-k / --moe-capacity need a model with MoE layers; this one has none`);
  for (const [name, l] of layers)
    if (o.topK !== undefined && o.topK > l.numExperts) throw new Error(`--moe-top-k ${o.topK}: ${name} has only ${l.numExperts} experts`);
  for (const [, l] of layers) l.setOptions({ ...(o.topK !== undefined ? { topK: o.topK } : {}), ...(o.capacityFactor !== undefined ? { evalCapacityFactor: o.capacityFactor } : {}) });
}

export interface EvalReport {
  model: string;
  task: string;
  metric: string;
  score: number;
  parameters: number;
  bytes: number;
  /** ms per example (GLUE) or per token (perplexity); how it was measured is in `latencyMethod`. */
  latencyMs: number;
  latencyMethod: string;
  tokens?: number;
}

/** How evalGlue's latency is taken (evaluateGlue in src/eval/glue.ts). */
export const GLUE_LATENCY_METHOD = 'per example: first 32 dev examples as one batch, 1 warm-up + best of 5';
/** How evalPerplexity's latency is taken. */
export const PPL_LATENCY_METHOD = 'per token: forward over the first window (up to block size tokens), 1 warm-up + best of 5';

const size = modelSize;

/** Dev-set metric of a fine-tuned BERT classifier folder (needs vocab.txt). */
export function evalGlue(dir: string, task: GlueTask, opts: { moe?: MoeEvalOptions } = {}): EvalReport {
  const vocab = path.join(dir, 'vocab.txt');
  if (!fs.existsSync(vocab)) throw new Error(`${vocab}: missing (a BERT folder needs its vocab.txt)`);
  const model = fromPretrained<BertForSequenceClassification>(dir);
  if (!(model instanceof BertForSequenceClassification))
    throw new Error(`${dir}: ${(model as Module).constructor.name} is not a sequence classifier; fine-tune it first with 'shrink train'`);
  setMoeRouting(model, dir, opts.moe ?? {});
  const r = evaluateGlue(model, WordPieceTokenizer.fromVocabFile(vocab), task);
  return { model: dir, task, metric: r.metric, score: r.score, ...size(model), latencyMs: r.latencyMsPerExample, latencyMethod: GLUE_LATENCY_METHOD };
}

/**
 * Perplexity of a causal LM on a text file. Without `stride`: consecutive blocks of `blockSize` tokens (each block
 * starts without context). With `stride` (HF's sliding-window perplexity): windows of `blockSize` tokens moved by
 * `stride`, each scoring only the tokens after the previous window, so every token is predicted once with up to
 * blockSize − stride tokens of context. Either way the first token of the text is never scored.
 */
export function evalPerplexity(dir: string, textFile: string, opts: { blockSize?: number; stride?: number; maxTokens?: number; moe?: MoeEvalOptions } = {}): EvalReport {
  const tok = loadTokenizer(dir);
  const model = fromPretrained(dir) as Module & { forward(i: ModelInputs): ModelOutput; config: Record<string, unknown> };
  if (!['gpt2', 'llama'].includes(String(model.config.model_type)))
    throw new Error(`${dir}: perplexity needs a causal LM (gpt2 or llama), got model_type '${String(model.config.model_type)}'`);
  setMoeRouting(model, dir, opts.moe ?? {});
  let text: string;
  try {
    text = fs.readFileSync(textFile, 'utf8');
  } catch (e) {
    throw new Error(`${textFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const maxPos = Number(model.config.max_position_embeddings ?? model.config.n_positions ?? 512);
  const block = Math.min(opts.blockSize ?? 256, maxPos);
  if (opts.stride !== undefined && (opts.stride < 1 || opts.stride > block))
    throw new Error(`stride must be in [1, block size ${block}], got ${opts.stride}`);
  // Encode line by line: BPE merging is quadratic in the length of one encode() call.
  let ids: number[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    ids.push(...tok.encode(line, { addSpecialTokens: false }));
    if (opts.maxTokens && ids.length >= opts.maxTokens) break;
  }
  if (opts.maxTokens) ids = ids.slice(0, opts.maxTokens);
  if (ids.length < 2) throw new Error(`${textFile}: fewer than 2 tokens; nothing to score`);
  const windows = opts.stride === undefined ? chunkTokens(ids, block, { stride: block }) : chunkTokens(ids, block, { stride: opts.stride });
  let nll = 0;
  let count = 0;
  noGrad(() => {
    for (const w of windows) {
      const labels = causalLabels(w);
      const scored = labels.slice(1).filter((l) => l !== -100).length;
      if (scored === 0) continue;
      const input = Tensor.from(Int32Array.from(w.ids), { shape: [1, w.ids.length] });
      const lab = Tensor.from(Int32Array.from(labels), { shape: [1, labels.length] });
      const loss = model.forward({ inputIds: input, labels: lab }).loss!.item(); // mean over the scored predictions
      nll += loss * scored;
      count += scored;
    }
  });
  // latency apart from the scoring pass: the forward over the first window, warm, best of 5, per token of the window
  const score = perplexity(nll, count); // throws when nothing was scored, so a first window exists below
  const first = windows[0]!;
  const input = Tensor.from(Int32Array.from(first.ids), { shape: [1, first.ids.length] });
  const lat = noGrad(() => measureLatency(() => void model.forward({ inputIds: input }), { warmup: 1, repeats: 5 }));
  return {
    model: dir, task: 'perplexity', metric: 'perplexity', score, ...size(model),
    latencyMs: lat.bestMs / first.ids.length, latencyMethod: PPL_LATENCY_METHOD, tokens: count,
  };
}
