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
import { fromPretrained, modelFromConfig, savePretrained } from '../models/registry.ts';
import { readConfig } from '../io/hf.ts';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { loadGlue, type GlueTask } from '../data/glue.ts';
import { BatchSampler, collate, maskTokens, type Encoded } from '../data/batch.ts';
import { encodeExample, evaluateGlue } from '../eval/glue.ts';
import { Trainer, type LogEntry } from './trainer.ts';
import { Tensor } from '../tensor/tensor.ts';
import { Generator, manualSeed } from '../tensor/random.ts';
import { modelSize } from '../eval/size.ts';
import { atomicWriteFile } from '../io/atomic.ts';
import { finishRunDir, openRunDir, writeDirAtomic, type RunDirState } from '../io/outdir.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DATA_DIR = path.join(ROOT, 'data');
export const TEACHER_DIR = path.join(DATA_DIR, 'models', 'bert-teacher');
/** Where `shrink pretrain --arch bert` writes without -o: a folder in the working directory, never the package's data/. */
export const DEFAULT_PRETRAIN_OUT = 'bert-teacher';
/** Default checkpoint interval of `shrink train -o` (steps). */
export const DEFAULT_SAVE_EVERY = 100;

/**
 * A run stopped by Ctrl-C (or SIGTERM): the trainer saved a checkpoint (when the run has a folder) and nothing
 * else was written. The CLI prints the message and exits 130.
 */
export class TrainingInterrupted extends Error {
  readonly exitCode = 130;
  constructor(
    readonly step: number,
    readonly totalSteps: number,
    /** The folder the checkpoint went to (undefined: the run had none, nothing was saved). */
    readonly checkpointDir?: string,
    /** How to continue, e.g. "run the same command again to resume". */
    hint = 'run the same command again to resume',
  ) {
    super(
      checkpointDir
        ? `interrupted at step ${step} of ${totalSteps}; checkpoint saved in ${path.join(checkpointDir, `checkpoint-${step}`)}; ${hint}`
        : `interrupted at step ${step} of ${totalSteps}; nothing saved (${hint})`,
    );
    this.name = 'TrainingInterrupted';
  }
}

/**
 * A BERT folder that can be fine-tuned: config.json with model_type bert and no quantization_config, and its
 * vocab.txt. Returns the config; one error naming the folder and what is expected otherwise.
 */
export function checkBertFolder(dir: string): Record<string, unknown> {
  const cfg = readConfig(dir);
  if (cfg.quantization_config) throw new Error(`${dir}: cannot fine-tune a quantized model (config.json has quantization_config); train the float model, then quantize`);
  if (cfg.model_type !== 'bert')
    throw new Error(`${dir}: not a BERT model (config.json model_type is ${JSON.stringify(cfg.model_type ?? null)}); expected a BERT folder (model_type "bert") with config.json, model.safetensors and vocab.txt`);
  const vocab = path.join(dir, 'vocab.txt');
  if (!fs.existsSync(vocab)) throw new Error(`${vocab}: missing (a BERT folder needs its WordPiece vocab.txt)`);
  return cfg;
}

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
  /** Replace a non-empty outDir that is not this run, or retrain a finished one. */
  force?: boolean;
  /** Checkpoint every N steps into outDir/.run (default 500). */
  saveEvery?: number;
  /** Notes for the user (resuming, already finished). */
  log?: (line: string) => void;
}

/** Finished pretraining: what the run reports (and records in .run/shrink-run.json). */
export interface PretrainRunInfo {
  /** The step a resumed run continued from (absent for a new run). */
  resumedFrom?: number;
  /** True when the folder already held this finished run: nothing was trained, the recorded result is returned. */
  alreadyFinished?: boolean;
}

/**
 * Open the output folder of a pretraining run: checkpoints and the run record live in outDir/.run, the model files
 * in outDir itself. Finished: outDir has config.json and the record a result.
 */
export function openPretrainDir(outDir: string, run: Record<string, unknown>, o: PretrainOptions): RunDirState {
  const state = openRunDir(outDir, run, { force: o.force, checkpointDir: path.join(outDir, '.run'), finished: () => fs.existsSync(path.join(outDir, 'config.json')) });
  if (state.state === 'finished') o.log?.(`${outDir}: this run already finished (${state.step} steps); reporting its recorded result (use --force to train again)`);
  if (state.state === 'resume') o.log?.(`${outDir}: resuming from step ${state.step} of ${o.steps}`);
  return state;
}

/**
 * Write a pretrained model folder atomically: the model files, then the run record (with its log) in .run; the
 * checkpoints are dropped. `outDir` (which held only .run) is replaced in one rename.
 */
export function writePretrainDir(outDir: string, state: RunDirState, result: Record<string, unknown>, write: (tmp: string) => void): void {
  writeDirAtomic(
    outDir,
    (tmp) => {
      write(tmp);
      const run = path.join(tmp, '.run');
      fs.mkdirSync(run);
      const log = path.join(outDir, '.run', 'log.jsonl');
      if (fs.existsSync(log)) fs.copyFileSync(log, path.join(run, 'log.jsonl'));
      finishRunDir(run, state.record, result);
    },
    { force: true },
  );
}

/**
 * Mean training loss of the last `n` steps. A resumed run's history starts at the checkpoint, so the trainer's
 * log.jsonl in the run folder is read when present (a step logged twice, before a kill and after the resume,
 * counts once: the later entry).
 */
export function recentMeanLoss(history: LogEntry[], runDir: string, n = 50): number {
  const byStep = new Map<number, number>();
  const log = path.join(runDir, 'log.jsonl');
  if (fs.existsSync(log))
    for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
      try {
        const e = JSON.parse(line) as LogEntry;
        if (typeof e.step === 'number' && typeof e.loss === 'number') byStep.set(e.step, e.loss);
      } catch {
        // a line torn by a kill
      }
    }
  for (const e of history) if (e.loss !== undefined) byStep.set(e.step, e.loss);
  const last = [...byStep.entries()].sort((a, b) => a[0] - b[0]).slice(-n).map(([, l]) => l);
  return last.length ? last.reduce((a, b) => a + b, 0) / last.length : NaN;
}

/** MLM-pretrain a small BERT on the bundled corpus; writes a HF folder (config, weights, vocab.txt). */
export function pretrainTeacher(o: PretrainOptions): { config: BertConfig; vocabSize: number; finalLoss: number } & PretrainRunInfo {
  const settings = { command: 'pretrain', arch: 'bert', steps: o.steps, batchSize: o.batchSize ?? 32, seqLen: o.seqLen ?? 64, lr: o.lr ?? 1e-3, hidden: o.hidden ?? 128, layers: o.layers ?? 2, heads: o.heads ?? 2, intermediate: o.intermediate ?? 512, seed: o.seed ?? 0 };
  const state = openPretrainDir(o.outDir, settings, o);
  if (state.state === 'finished') {
    const r = state.record.result as { vocabSize: number; finalLoss: number };
    return { config: bertConfig(readConfig(o.outDir) as Partial<BertConfig>), vocabSize: r.vocabSize, finalLoss: r.finalLoss, alreadyFinished: true };
  }
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
    { totalSteps: o.steps, lr: o.lr ?? 1e-3, warmupSteps: Math.min(500, Math.floor(o.steps / 10)), maxGradNorm: 1, weightDecay: 0.01, schedule: 'linear', outDir: path.join(o.outDir, '.run'), saveEvery: o.saveEvery ?? 500, resume: true },
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
  if (r.interrupted) throw new TrainingInterrupted(r.step, o.steps, path.join(o.outDir, '.run'));
  const result = { vocabSize: vocab.length, finalLoss: recentMeanLoss(r.history, path.join(o.outDir, '.run')), steps: r.step };
  writePretrainDir(o.outDir, state, result, (tmp) => {
    savePretrained(model as never, tmp, { recipe: JSON.stringify({ method: 'pretrain.mlm', steps: o.steps, corpus: 'sst2-train + wikitext2-valid' }) });
    atomicWriteFile(path.join(tmp, 'vocab.txt'), vocab.join('\n') + '\n');
  });
  return { config, vocabSize: result.vocabSize, finalLoss: result.finalLoss, ...(state.state === 'resume' ? { resumedFrom: state.step } : {}) };
}

export interface FinetuneOptions {
  modelDir: string;
  task: GlueTask;
  steps: number;
  batchSize?: number;
  lr?: number;
  maxLength?: number;
  seed?: number;
  /**
   * Run folder (resumable): checkpoints every `saveEvery` steps, `final/` (weights + vocab.txt) when done. Rerunning
   * the same settings resumes from `latest`, or reports a finished run without training; a folder holding anything
   * else is refused unless `force`.
   */
  outDir?: string;
  /** Checkpoint interval with outDir (default DEFAULT_SAVE_EVERY). */
  saveEvery?: number;
  /** Replace a non-empty outDir that is not this run, or retrain a finished one. */
  force?: boolean;
  /** Start from a randomly initialised model of modelDir's config and vocabulary instead of its weights. */
  fromScratch?: boolean;
  evalEvery?: number;
  onLog?: (e: LogEntry) => void;
  /** Notes for the user (resuming, already finished). */
  log?: (line: string) => void;
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
  /** With outDir: the step a resumed run continued from (absent for a new run). */
  resumedFrom?: number;
  /** With outDir: the folder already held this finished run; nothing was trained, its recorded result is returned. */
  alreadyFinished?: boolean;
}

/**
 * Fine-tune a BERT folder (MLM or classifier weights, or a random init of its config with `fromScratch`) on a GLUE
 * task and evaluate on its dev set. With outDir the run is resumable (see FinetuneOptions.outDir). Ctrl-C stops
 * after the current step: the checkpoint is saved, final/ is not written, and TrainingInterrupted is thrown.
 */
export function finetuneGlue(o: FinetuneOptions): FinetuneResult {
  const cfg = checkBertFolder(o.modelDir);
  const maxLength = o.maxLength ?? 64;
  let run: RunDirState | undefined;
  const final = o.outDir ? path.join(o.outDir, 'final') : '';
  if (o.outDir) {
    const settings = { command: 'train', model: path.resolve(o.modelDir), task: o.task, steps: o.steps, batchSize: o.batchSize ?? 32, lr: o.lr ?? 5e-4, maxLength, seed: o.seed ?? 0, fromScratch: o.fromScratch ?? false };
    run = openRunDir(o.outDir, settings, { force: o.force, finished: () => fs.existsSync(path.join(final, 'config.json')) && fs.existsSync(path.join(final, 'vocab.txt')) });
    if (run.state === 'finished') {
      o.log?.(`${o.outDir}: this run already finished (${run.step} steps); reporting its recorded result (use --force to train again)`);
      return { ...(run.record.result as unknown as FinetuneResult), alreadyFinished: true };
    }
    if (run.state === 'resume') o.log?.(`${o.outDir}: resuming from step ${run.step} of ${o.steps}`);
  }
  manualSeed(o.seed ?? 0);
  const tok = WordPieceTokenizer.fromVocabFile(path.join(o.modelDir, 'vocab.txt'));
  const train = loadGlue(o.task, 'train');
  // label names travel in config.json (id2label / label2id as HF writes them), so `shrink predict` can print them
  const id2label = Object.fromEntries(train.labelNames.map((n, i) => [String(i), n]));
  const label2id = Object.fromEntries(train.labelNames.map((n, i) => [n, i]));
  const configOverrides = { num_labels: train.numLabels, id2label, label2id, finetuning_task: o.task };
  const model = o.fromScratch
    ? (modelFromConfig({ ...cfg, ...configOverrides }, 'BertForSequenceClassification') as BertForSequenceClassification)
    : fromPretrained<BertForSequenceClassification>(o.modelDir, { className: 'BertForSequenceClassification', strict: false, configOverrides });
  o.prepare?.(model);
  const enc = train.texts.map((t) => encodeExample(tok, t, maxLength));
  const sampler = new BatchSampler(enc.length, o.batchSize ?? 32, { seed: o.seed ?? 0 });
  const trainer = new Trainer(
    model,
    {
      totalSteps: o.steps,
      lr: o.lr ?? 5e-4,
      warmupSteps: Math.floor(o.steps / 10),
      maxGradNorm: 1,
      outDir: o.outDir,
      evalEvery: o.evalEvery,
      ...(o.outDir ? { resume: true, saveEvery: o.saveEvery ?? DEFAULT_SAVE_EVERY } : {}),
    },
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
  if (r.interrupted) throw new TrainingInterrupted(r.step, o.steps, o.outDir, o.outDir ? undefined : 'pass -o <dir> to keep checkpoints and resume');
  o.finalize?.(model);
  const ev = evaluateGlue(model, tok, o.task, maxLength);
  const { parameters, bytes } = modelSize(model);
  const result: FinetuneResult = { task: o.task, metric: ev.metric, score: ev.score, parameters, bytes, latencyMsPerExample: ev.latencyMsPerExample, steps: r.step };
  if (o.outDir && run && !o.finalize) {
    // the result first, then final/ (atomically): a folder with final/ is a finished run whose result is recorded
    finishRunDir(o.outDir, run.record, result as unknown as Record<string, unknown>);
    // a self-contained folder for `shrink eval`: the final weights with their vocabulary
    writeDirAtomic(
      final,
      (tmp) => {
        savePretrained(model as never, tmp);
        fs.copyFileSync(path.join(o.modelDir, 'vocab.txt'), path.join(tmp, 'vocab.txt'));
      },
      { force: true },
    );
    if (fs.existsSync(path.join(o.outDir, 'best'))) fs.copyFileSync(path.join(o.modelDir, 'vocab.txt'), path.join(o.outDir, 'best', 'vocab.txt'));
  }
  return run?.state === 'resume' ? { ...result, resumedFrom: run.step } : result;
}

export { bertConfig, type BertConfig };
