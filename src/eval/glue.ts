/**
 * GLUE dev-set evaluation of a BERT classifier: the task's metric over one pass of the dev set, and a warm latency
 * per example. `shrink eval`, `shrink train`, the demo and recipes all score with this one function, so their
 * numbers agree.
 */
import type { BertForSequenceClassification } from '../models/bert/modeling.ts';
import type { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { noGrad } from '../tensor/autograd.ts';
import { loadGlue, type GlueTask } from '../data/glue.ts';
import { collate, type Encoded } from '../data/batch.ts';
import { computeMetric } from './metrics.ts';
import { measureLatency } from './latency.ts';

/** One example as the GLUE pipelines encode it: [CLS] a [SEP] (b [SEP]), cut to maxLength tokens. */
export function encodeExample(tok: WordPieceTokenizer, [a, b]: [string, string?], maxLength: number): Encoded {
  const e = b === undefined ? { ids: tok.encode(a), tokenTypeIds: undefined } : tok.encodePair(a, b);
  return { ids: e.ids.slice(0, maxLength), tokenTypeIds: e.tokenTypeIds?.slice(0, maxLength) };
}

/**
 * Evaluate a classifier on a GLUE dev set: the task's metric (one pass over dev, batches of 32) and the latency per
 * example at batch 32, measured apart from that pass (its first batches pay for JIT, packing and first touch of
 * fresh memory): the first 32 dev examples as one batch, 1 warm-up, then the best of 5 forwards (+ argmax).
 */
export function evaluateGlue(model: BertForSequenceClassification, tok: WordPieceTokenizer, task: GlueTask, maxLength = 64): { metric: string; score: number; latencyMsPerExample: number; predictions: number[] } {
  const dev = loadGlue(task, 'dev');
  const enc = dev.texts.map((t) => encodeExample(tok, t, maxLength));
  const preds: number[] = [];
  model.eval();
  noGrad(() => {
    for (let i = 0; i < enc.length; i += 32) {
      const b = collate(enc.slice(i, i + 32), { padId: tok.specialIds.pad! });
      const logits = model.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, tokenTypeIds: b.tokenTypeIds }).logits;
      preds.push(...Array.from(logits.argmax(-1).toArray()));
    }
  });
  const fixed = collate(enc.slice(0, 32), { padId: tok.specialIds.pad! });
  const lat = noGrad(() => measureLatency(() => void model.forward({ inputIds: fixed.inputIds, attentionMask: fixed.attentionMask, tokenTypeIds: fixed.tokenTypeIds }).logits.argmax(-1), { warmup: 1, repeats: 5 }));
  return { metric: dev.metric, score: computeMetric(dev.metric, preds, dev.labels), latencyMsPerExample: lat.bestMs / Math.min(32, enc.length), predictions: preds };
}
