/**
 * Inference pipelines behind `shrink predict`, shaped like Hugging Face's: fill-mask for masked LMs, text
 * classification for sequence classifiers (label names from config.json's id2label), generation for causal LMs.
 */
import { BertForMaskedLM, BertForSequenceClassification } from '../models/bert/modeling.ts';
import { GPT2LMHeadModel } from '../models/gpt2/modeling.ts';
import { LlamaForCausalLM } from '../models/llama/modeling.ts';
import type { Module } from '../nn/module.ts';
import type { Tokenizer } from '../tokenizers/types.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';

export type PredictTask = 'fill-mask' | 'classify' | 'generate';

/** The task a loaded model supports (MLM → fill-mask, classifier → classify, causal LM → generate). */
export function taskOf(model: Module): PredictTask {
  if (model instanceof BertForMaskedLM) return 'fill-mask';
  if (model instanceof BertForSequenceClassification) return 'classify';
  if (model instanceof GPT2LMHeadModel || model instanceof LlamaForCausalLM) return 'generate';
  throw new Error(`${model.constructor.name} has no prediction head; use a *ForMaskedLM, *ForSequenceClassification or *ForCausalLM/LMHeadModel folder`);
}

function softmaxRow(logits: Float32Array, off: number, n: number): Float64Array {
  let mx = -Infinity;
  for (let j = 0; j < n; j++) mx = Math.max(mx, logits[off + j]!);
  const p = new Float64Array(n);
  let s = 0;
  for (let j = 0; j < n; j++) s += p[j] = Math.exp(logits[off + j]! - mx);
  for (let j = 0; j < n; j++) p[j]! /= s;
  return p;
}

export interface MaskPrediction {
  /** Index of the mask among the text's masks (0 for the first). */
  mask: number;
  candidates: { token: string; id: number; score: number; sequence: string }[];
}

/** Top-k fillers for every mask token in `text` (the tokenizer's mask token, e.g. "[MASK]"). */
export function fillMask(model: BertForMaskedLM, tok: Tokenizer, text: string, topK = 5): MaskPrediction[] {
  const maskId = tok.specialIds.mask;
  if (maskId === undefined) throw new Error('fill-mask: the tokenizer has no mask token');
  const ids = tok.encode(text);
  const positions = ids.flatMap((id, i) => (id === maskId ? [i] : []));
  const maskToken = tok.idToToken(maskId);
  if (positions.length === 0) throw new Error(`fill-mask: the text has no ${maskToken} token: '${text}'`);
  const V = model.config.vocab_size;
  const logits = noGrad(() => model.forward({ inputIds: Tensor.from(Int32Array.from(ids), { shape: [1, ids.length] }) }).logits.contiguous());
  const data = logits.data as Float32Array;
  return positions.map((pos, mask) => {
    const p = softmaxRow(data, pos * V, V);
    const order = Array.from({ length: V }, (_, j) => j).sort((a, b) => p[b]! - p[a]!).slice(0, Math.min(topK, V));
    return {
      mask,
      candidates: order.map((id) => {
        const filled = ids.slice();
        filled[pos] = id;
        return { token: tok.idToToken(id) ?? String(id), id, score: p[id]!, sequence: tok.decode(filled) };
      }),
    };
  });
}

export interface ClassPrediction {
  label: string;
  score: number;
  /** Every label's probability, in label-id order. */
  scores: { label: string; score: number }[];
}

/** Label probabilities of a sequence classifier for one text (or a text pair). */
export function classify(model: BertForSequenceClassification, tok: Tokenizer, text: string, pair?: string, maxLength = 512): ClassPrediction {
  let ids: number[];
  let types: number[] | undefined;
  if (pair !== undefined) {
    if (!tok.encodePair) throw new Error('classify: this tokenizer cannot encode text pairs');
    ({ ids, tokenTypeIds: types } = tok.encodePair(text, pair));
  } else ids = tok.encode(text);
  const maxPos = model.config.max_position_embeddings;
  const n = Math.min(ids.length, maxLength, maxPos);
  const input = Tensor.from(Int32Array.from(ids.slice(0, n)), { shape: [1, n] });
  const tokenTypeIds = types ? Tensor.from(Int32Array.from(types.slice(0, n)), { shape: [1, n] }) : undefined;
  const logits = noGrad(() => model.forward({ inputIds: input, tokenTypeIds }).logits.contiguous());
  const L = model.config.num_labels;
  const p = softmaxRow(logits.data as Float32Array, 0, L);
  const id2label = model.config.id2label ?? {};
  const scores = Array.from(p, (score, i) => ({ label: id2label[String(i)] ?? `LABEL_${i}`, score }));
  const best = scores.reduce((a, b) => (b.score > a.score ? b : a));
  return { label: best.label, score: best.score, scores };
}
