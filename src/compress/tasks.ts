/**
 * Task data for recipes: what a training stage draws batches from, what the before/after table is scored on, and
 * where calibration data comes from. GLUE tasks for BERT classifiers; perplexity on a text for causal LMs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Module } from '../nn/module.ts';
import type { ModelInputs, ModelOutput } from '../models/outputs.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { GLUE_TASKS, loadGlue, type GlueSplit, type GlueTask } from '../data/glue.ts';
import { BatchSampler, collate, type Encoded } from '../data/batch.ts';
import { calibrationBatches } from '../data/calibration.ts';
import { causalLabels, chunkTokens } from '../data/text.ts';
import { loadTokenizer } from '../tokenizers/index.ts';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { perplexity } from '../eval/metrics.ts';
import { encodeExample, evaluateGlue } from '../eval/glue.ts';
import type { BertForSequenceClassification } from '../models/bert/modeling.ts';
import { fromPretrained } from '../models/registry.ts';

export interface TaskData {
  /** 'sst2', …, or 'ppl:<file>'. */
  name: string;
  /** The score's name (accuracy, f1, matthews, perplexity) and its direction. */
  metric: string;
  greaterIsBetter: boolean;
  /** The next training batch, labels included. */
  nextBatch(): ModelInputs;
  /** Sampler position, for checkpoints. */
  sampler: { state(): unknown; setState(s: never): void };
  /** Score a model (one pass over the dev set / held-out text). */
  evaluate(model: Module): number;
  /** Calibration batches: model inputs, with labels where the task has them (GLUE). */
  calibration(samples?: number): Record<string, Tensor>[];
  /** Fixed inputs of `batch` examples for latency measurements. */
  latencyInputs(batch: number): ModelInputs;
  /** The `shrink eval` arguments that reproduce `evaluate` on a saved folder. */
  evalArgs: string[];
  /**
   * The same task with its training batches drawn from another train file (GLUE: a TSV in the task's train.tsv
   * format, e.g. `shrink augment`'s output; recipe `train.data`): evaluation, calibration and latency inputs
   * unchanged. Throws naming the file when it cannot be read or parsed, or has no rows. The same file gives the
   * same object (one sampler per file, continued from stage to stage). Absent: the task cannot train on a file.
   */
  withTrainData?(file: string): TaskData;
  /** The train file the batches come from (set on what withTrainData returns). */
  trainFile?: string;
  /** Rows of the training data. */
  trainRows?: number;
}

export interface TaskOptions {
  batchSize?: number;
  /** Tokens per example (GLUE) or per block (LM). */
  maxLength?: number;
  seed?: number;
}

type Forward = { forward(i: ModelInputs, o?: object): ModelOutput };

/** A GLUE task on a BERT folder (its vocab.txt). */
export function glueTaskData(modelDir: string, task: GlueTask, o: TaskOptions = {}): TaskData {
  const vocab = path.join(modelDir, 'vocab.txt');
  if (!fs.existsSync(vocab)) throw new Error(`${vocab}: missing (GLUE tasks need a BERT folder with its vocab.txt)`);
  const tok = WordPieceTokenizer.fromVocabFile(vocab);
  const maxLength = o.maxLength ?? 64;
  const enc = (t: [string, string?]): Encoded => encodeExample(tok, t, maxLength);
  const pad = tok.specialIds.pad!;
  const batchOf = (items: Encoded[]): ModelInputs => {
    const b = collate(items, { padId: pad });
    return { inputIds: b.inputIds, attentionMask: b.attentionMask, tokenTypeIds: b.tokenTypeIds };
  };
  /** Training batches from a split: examples are encoded when first drawn (the same tensors as encoding all up front). */
  const batches = (split: GlueSplit) => {
    const examples: (Encoded | undefined)[] = new Array(split.texts.length);
    const sampler = new BatchSampler(split.texts.length, o.batchSize ?? 32, { seed: o.seed ?? 0 });
    const nextBatch = (): ModelInputs => {
      const idx = sampler.next();
      return { ...batchOf(idx.map((i) => (examples[i] ??= enc(split.texts[i]!)))), labels: Tensor.from(Int32Array.from(idx.map((i) => split.labels[i]!))) };
    };
    return { sampler, nextBatch };
  };
  const train = loadGlue(task, 'train');
  const own = batches(train);
  const dev = loadGlue(task, 'dev');
  const files = new Map<string, TaskData>();
  const base: TaskData = {
    name: task,
    metric: dev.metric,
    greaterIsBetter: true,
    nextBatch: own.nextBatch,
    sampler: own.sampler,
    evaluate: (model) => evaluateGlue(model as BertForSequenceClassification, tok, task, maxLength).score,
    // the first training examples, in order, with their labels (gradient-based importance scores use them)
    calibration: (samples = 128) =>
      calibrationBatches(modelDir, task, { samples, seqLen: maxLength, batchSize: 8 }).map((b, i) => ({
        ...b,
        labels: Tensor.from(Int32Array.from(train.labels.slice(i * 8, i * 8 + b.inputIds.shape[0]!))),
      })),
    latencyInputs: (batch) => batchOf(dev.texts.slice(0, batch).map(enc)),
    evalArgs: ['-t', task],
    trainRows: train.texts.length,
    withTrainData: (file: string) => {
      const key = path.resolve(file);
      let t = files.get(key);
      if (!t) {
        const split = loadGlue(task, 'train', { file });
        if (split.texts.length === 0) throw new Error(`${file}: no examples (expected rows in the ${task} train.tsv format)`);
        const b = batches(split);
        t = { ...base, nextBatch: b.nextBatch, sampler: b.sampler, trainFile: file, trainRows: split.texts.length };
        files.set(key, t);
      }
      return t;
    },
  };
  return base;
}

/**
 * Causal-LM training and perplexity on a text file: training batches are blocks of `maxLength` tokens; the score is
 * the perplexity of the whole file in windows of `maxLength` tokens, the number `shrink eval -t ppl` prints with
 * `--block-size maxLength`.
 */
export function lmTaskData(modelDir: string, textFile: string, o: TaskOptions = {}): TaskData {
  const tok = loadTokenizer(modelDir);
  let text: string;
  try {
    text = fs.readFileSync(textFile, 'utf8');
  } catch (e) {
    throw new Error(`${textFile}: cannot read the task text (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const ids: number[] = [];
  for (const line of text.split('\n')) if (line.trim()) ids.push(...tok.encode(line, { addSpecialTokens: false }));
  const T = o.maxLength ?? 128;
  const blocks = chunkTokens(ids, T);
  if (blocks.length < 2) throw new Error(`${textFile}: ${ids.length} tokens make fewer than 2 blocks of ${T}; use a longer text or a smaller max_length`);
  const sampler = new BatchSampler(blocks.length, Math.min(o.batchSize ?? 8, blocks.length), { seed: o.seed ?? 0 });
  const stack = (bs: typeof blocks) => Tensor.from(Int32Array.from(bs.flatMap((b) => b.ids)), { shape: [bs.length, T] });
  return {
    name: `ppl:${textFile}`,
    metric: 'perplexity',
    greaterIsBetter: false,
    nextBatch: () => {
      const x = stack(sampler.next().map((i) => blocks[i]!));
      return { inputIds: x, labels: x };
    },
    sampler,
    // the whole text in windows of T tokens, exactly as `shrink eval <dir> -t ppl --text <file> --block-size T`
    evaluate: (model) =>
      noGrad(() => {
        let nll = 0;
        let n = 0;
        for (const w of chunkTokens(ids, T, { stride: T })) {
          const labels = causalLabels(w);
          const scored = labels.slice(1).filter((l) => l !== -100).length;
          if (scored === 0) continue;
          const x = Tensor.from(Int32Array.from(w.ids), { shape: [1, w.ids.length] });
          const lab = Tensor.from(Int32Array.from(labels), { shape: [1, labels.length] });
          nll += (model as unknown as Forward).forward({ inputIds: x, labels: lab }).loss!.item() * scored;
          n += scored;
        }
        return perplexity(nll, n);
      }),
    calibration: (samples = 128) => {
      const out: Record<string, Tensor>[] = [];
      const use = blocks.slice(0, samples);
      for (let i = 0; i < use.length; i += 8) out.push({ inputIds: stack(use.slice(i, i + 8)) });
      return out;
    },
    latencyInputs: (batch) => ({ inputIds: stack(Array.from({ length: batch }, (_, i) => blocks[i % blocks.length]!)) }),
    evalArgs: ['-t', 'ppl', '--text', textFile, '--block-size', String(T)],
  };
}

/**
 * A BERT folder (an MLM teacher, or a bare encoder) as a sequence classifier for a GLUE task: its encoder weights,
 * a fresh pooler/classifier where the folder has none, and the task's labels in the config (as `shrink train` does).
 */
export function classifierFor(modelDir: string, task: GlueTask): BertForSequenceClassification {
  const train = loadGlue(task, 'train');
  return fromPretrained<BertForSequenceClassification>(modelDir, {
    className: 'BertForSequenceClassification',
    strict: false,
    configOverrides: {
      num_labels: train.numLabels,
      id2label: Object.fromEntries(train.labelNames.map((n, i) => [String(i), n])),
      label2id: Object.fromEntries(train.labelNames.map((n, i) => [n, i])),
      finetuning_task: task,
    },
  });
}

/** `--task` names: a GLUE task, or `ppl:<text file>` for a causal LM. */
export function taskData(modelDir: string, task: string, o: TaskOptions = {}): TaskData {
  if ((GLUE_TASKS as readonly string[]).includes(task)) return glueTaskData(modelDir, task as GlueTask, o);
  if (task.startsWith('ppl:')) return lmTaskData(modelDir, task.slice(4), o);
  throw new Error(`task '${task}': expected one of ${GLUE_TASKS.join(', ')}, or ppl:<text file>`);
}

/** Whether `task` is a name taskData accepts (without loading anything). */
export function isTaskName(task: string): boolean {
  return (GLUE_TASKS as readonly string[]).includes(task) || (task.startsWith('ppl:') && task.length > 4);
}
