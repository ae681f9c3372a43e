/**
 * BERT recipes on bundled data: MLM pretraining of a small teacher with a vocabulary trimmed to the corpus, and
 * GLUE fine-tuning + evaluation (accuracy / F1 / Matthews, size, latency). `shrink pretrain`, `shrink train` and
 * `shrink demo` call these.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BertForMaskedLM, BertForSequenceClassification } from '../models/bert/modeling.ts';
import { bertConfig, type BertConfig } from '../models/bert/config.ts';
import { fromPretrained, savePretrained } from '../models/registry.ts';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { loadGlue, type GlueTask } from '../data/glue.ts';
import { BatchSampler, collate, maskTokens, type Encoded } from '../data/batch.ts';
import { Trainer, type LogEntry } from './trainer.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { Generator, manualSeed } from '../tensor/random.ts';
import { computeMetric } from '../eval/metrics.ts';
import { modelSize } from '../eval/size.ts';
import { atomicWriteFile } from '../io/atomic.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DATA_DIR = path.join(ROOT, 'data');
export const TEACHER_DIR = path.join(DATA_DIR, 'models', 'bert-teacher');

/** Pretraining corpus: SST-2 train sentences and WikiText-2 valid lines (test is kept for evaluation). */
export function pretrainingCorpus(): string[] {
  const sst = loadGlue('sst2', 'train').texts.map(([s]) => s);
  const wiki = fs
    .readFileSync(path.join(DATA_DIR, 'wikitext-2', 'valid.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('='));
  return [...sst, ...wiki];
}

/**
 * bert-base-uncased vocabulary trimmed to the tokens the corpus uses at least `minCount` times, plus the special
 * tokens and every single-character piece (so unseen words still split into pieces rather than [UNK]). Original
 * order is kept, so ids stay sorted like the full vocabulary's.
 */
export function trimVocab(full: WordPieceTokenizer, corpus: string[], minCount = 2): string[] {
  const counts = new Map<number, number>();
  for (const s of corpus) for (const id of full.encode(s, { addSpecialTokens: false })) counts.set(id, (counts.get(id) ?? 0) + 1);
  const keep = new Set(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  return full.tokens.filter((t, id) => keep.has(t) || [...t.replace(/^##/, '')].length === 1 || (counts.get(id) ?? 0) >= minCount);
}

export interface PretrainOptions {
  outDir: string;
  steps: number;
  batchSize?: number;
  seqLen?: number;
  lr?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  intermediate?: number;
  seed?: number;
  onLog?: (e: LogEntry) => void;
}

/** MLM-pretrain a small BERT on the bundled corpus; writes a HF folder (config, weights, vocab.txt). */
export function pretrainTeacher(o: PretrainOptions): { config: BertConfig; vocabSize: number; finalLoss: number } {
  manualSeed(o.seed ?? 0);
  const corpus = pretrainingCorpus();
  const full = WordPieceTokenizer.fromVocabFile(path.join(DATA_DIR, 'tokenizers', 'bert-base-uncased', 'vocab.txt'));
  const vocab = trimVocab(full, corpus);
  const tok = new WordPieceTokenizer(vocab);
  const T = o.seqLen ?? 64;
  // pack sentences into blocks of T-2 tokens ([CLS] … [SEP])
  const blocks: Encoded[] = [];
  let cur: number[] = [];
  for (const s of corpus) {
    for (const id of tok.encode(s, { addSpecialTokens: false })) {
      cur.push(id);
      if (cur.length === T - 2) {
        blocks.push({ ids: [tok.specialIds.cls!, ...cur, tok.specialIds.sep!] });
        cur = [];
      }
    }
  }
  const config = bertConfig({
    vocab_size: vocab.length,
    hidden_size: o.hidden ?? 128,
    num_hidden_layers: o.layers ?? 2,
    num_attention_heads: o.heads ?? 2,
    intermediate_size: o.intermediate ?? 512,
    max_position_embeddings: 128,
    architectures: ['BertForMaskedLM'],
  });
  const model = new BertForMaskedLM(config);
  for (const [n, p] of model.namedParameters()) if (n.endsWith('.weight') && p.ndim === 2) p.copy_(Tensor.randn(p.shape).mul(0.02)); // BERT init N(0, 0.02)
  const sampler = new BatchSampler(blocks.length, o.batchSize ?? 32, { seed: o.seed ?? 0 });
  const g = new Generator(o.seed ?? 0);
  const special = [tok.specialIds.cls!, tok.specialIds.sep!, tok.specialIds.pad!];
  const trainer = new Trainer(
    model,
    { totalSteps: o.steps, lr: o.lr ?? 1e-3, warmupSteps: Math.min(500, Math.floor(o.steps / 10)), maxGradNorm: 1, weightDecay: 0.01, schedule: 'linear', outDir: path.join(o.outDir, '.run'), saveEvery: 500, resume: true },
    {
      lossFn: () => {
        const b = collate(sampler.next().map((i) => blocks[i]!), { padId: tok.specialIds.pad! });
        const m = maskTokens(b.inputIds, { maskId: tok.specialIds.mask!, vocabSize: vocab.length, specialIds: special, generator: g });
        return model.forward({ inputIds: m.inputIds, attentionMask: b.attentionMask, labels: m.labels }, { predictOnlyLabelled: true }).loss!;
      },
      stateful: { sampler },
      generators: { mlm: g },
      onLog: o.onLog,
    },
  );
  const r = trainer.train();
  savePretrained(model as never, o.outDir, { recipe: JSON.stringify({ method: 'pretrain.mlm', steps: o.steps, corpus: 'sst2-train + wikitext2-valid' }) });
  atomicWriteFile(path.join(o.outDir, 'vocab.txt'), vocab.join('\n') + '\n');
  const losses = r.history.slice(-50).map((e) => e.loss!);
  return { config, vocabSize: vocab.length, finalLoss: losses.reduce((a, b) => a + b, 0) / Math.max(1, losses.length) };
}

export interface FinetuneOptions {
  modelDir: string;
  task: GlueTask;
  steps: number;
  batchSize?: number;
  lr?: number;
  maxLength?: number;
  seed?: number;
  outDir?: string;
  evalEvery?: number;
  onLog?: (e: LogEntry) => void;
  /** Change the model before training (e.g. swap in fake-quantized layers for QAT). */
  prepare?: (model: BertForSequenceClassification) => void;
  /** Change the model after training, before the final evaluation (e.g. convert QAT layers to integers). */
  finalize?: (model: BertForSequenceClassification) => void;
}

export interface FinetuneResult {
  task: GlueTask;
  metric: string;
  score: number;
  parameters: number;
  bytes: number;
  latencyMsPerExample: number;
  steps: number;
}

function encodeExample(tok: WordPieceTokenizer, [a, b]: [string, string?], maxLength: number): Encoded {
  const e = b === undefined ? { ids: tok.encode(a), tokenTypeIds: undefined } : tok.encodePair(a, b);
  return { ids: e.ids.slice(0, maxLength), tokenTypeIds: e.tokenTypeIds?.slice(0, maxLength) };
}

/** Evaluate a classifier on a GLUE dev set: the task's metric and the mean latency per example (batch 32). */
export function evaluateGlue(model: BertForSequenceClassification, tok: WordPieceTokenizer, task: GlueTask, maxLength = 64): { metric: string; score: number; latencyMsPerExample: number; predictions: number[] } {
  const dev = loadGlue(task, 'dev');
  const enc = dev.texts.map((t) => encodeExample(tok, t, maxLength));
  const preds: number[] = [];
  model.eval();
  const t0 = performance.now();
  noGrad(() => {
    for (let i = 0; i < enc.length; i += 32) {
      const b = collate(enc.slice(i, i + 32), { padId: tok.specialIds.pad! });
      const logits = model.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, tokenTypeIds: b.tokenTypeIds }).logits;
      preds.push(...Array.from(logits.argmax(-1).toArray()));
    }
  });
  const ms = performance.now() - t0;
  return { metric: dev.metric, score: computeMetric(dev.metric, preds, dev.labels), latencyMsPerExample: ms / enc.length, predictions: preds };
}

/** Fine-tune a BERT folder (MLM or classifier weights) on a GLUE task and evaluate on its dev set. */
export function finetuneGlue(o: FinetuneOptions): FinetuneResult {
  manualSeed(o.seed ?? 0);
  const tok = WordPieceTokenizer.fromVocabFile(path.join(o.modelDir, 'vocab.txt'));
  const train = loadGlue(o.task, 'train');
  // label names travel in config.json (id2label / label2id as HF writes them), so `shrink predict` can print them
  const id2label = Object.fromEntries(train.labelNames.map((n, i) => [String(i), n]));
  const label2id = Object.fromEntries(train.labelNames.map((n, i) => [n, i]));
  const model = fromPretrained<BertForSequenceClassification>(o.modelDir, {
    className: 'BertForSequenceClassification',
    strict: false,
    configOverrides: { num_labels: train.numLabels, id2label, label2id, finetuning_task: o.task },
  });
  o.prepare?.(model);
  const maxLength = o.maxLength ?? 64;
  const enc = train.texts.map((t) => encodeExample(tok, t, maxLength));
  const sampler = new BatchSampler(enc.length, o.batchSize ?? 32, { seed: o.seed ?? 0 });
  const trainer = new Trainer(
    model,
    { totalSteps: o.steps, lr: o.lr ?? 5e-4, warmupSteps: Math.floor(o.steps / 10), maxGradNorm: 1, outDir: o.outDir, evalEvery: o.evalEvery },
    {
      lossFn: () => {
        const idx = sampler.next();
        const b = collate(idx.map((i) => enc[i]!), { padId: tok.specialIds.pad! });
        const labels = Tensor.from(Int32Array.from(idx.map((i) => train.labels[i]!)));
        return model.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, tokenTypeIds: b.tokenTypeIds, labels }).loss!;
      },
      evaluate: o.evalEvery ? () => ({ metric: evaluateGlue(model, tok, o.task, maxLength).score }) : undefined,
      stateful: { sampler },
      onLog: o.onLog,
    },
  );
  const r = trainer.train();
  o.finalize?.(model);
  if (o.outDir && !o.finalize) {
    // a self-contained folder for `shrink eval`: the final weights with their vocabulary
    const final = path.join(o.outDir, 'final');
    savePretrained(model as never, final);
    fs.copyFileSync(path.join(o.modelDir, 'vocab.txt'), path.join(final, 'vocab.txt'));
    if (fs.existsSync(path.join(o.outDir, 'best'))) fs.copyFileSync(path.join(o.modelDir, 'vocab.txt'), path.join(o.outDir, 'best', 'vocab.txt'));
  }
  const ev = evaluateGlue(model, tok, o.task, maxLength);
  const { parameters, bytes } = modelSize(model);
  return { task: o.task, metric: ev.metric, score: ev.score, parameters, bytes, latencyMsPerExample: ev.latencyMsPerExample, steps: r.step };
}

export { bertConfig, type BertConfig };
