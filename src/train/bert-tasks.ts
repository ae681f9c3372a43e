/**
 * BERT recipes on bundled data: MLM pretraining of a small teacher with a vocabulary trimmed to the corpus, and
 * GLUE fine-tuning + evaluation (accuracy / F1 / Matthews, size, latency). `shrink pretrain`, `shrink train` and
 * `shrink demo` call these.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BertForMaskedLM, BertForSequenceClassification } from '../models/bert/modeling.ts';
import { bertConfig, type BertConfig } from '../models/bert/config.ts';
import { fromPretrained, modelFromConfig, savePretrained } from '../models/registry.ts';
import { readConfig } from '../io/hf.ts';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { loadGlue, type GlueTask } from '../data/glue.ts';
import { BatchSampler, collate, maskTokens, type Encoded } from '../data/batch.ts';
import { continuationTable, wholeWordMask } from '../data/mlm.ts';
import { LEGACY_CORPUS, buildCorpus, corpusSources, corpusTable, formatCorpusSummary, heldOutDocuments, type CorpusSummary } from './corpus.ts';
import { noGrad } from '../tensor/autograd.ts';
import { backend, getNumThreads } from '../backend/registry.ts';
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

/**
 * The documents of a pretraining corpus by name (src/train/corpus.ts): `default` (WikiText-2 valid, the sentences
 * of the four GLUE train sets, the Brown corpus; deduplicated, WikiText-2 test left out), `glue`, sources joined
 * with `+`, or `sst2+wikitext2-valid`, the legacy corpus of the bundled 2-layer teacher (SST-2 train sentences and
 * WikiText-2 valid lines, exactly as that teacher read them).
 */
export function pretrainingCorpus(name = 'default'): string[] {
  return buildCorpus(name).documents;
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
  /** Notes for the user (resuming, already finished, the corpus summary). */
  log?: (line: string) => void;
  /**
   * Corpus name (src/train/corpus.ts). BERT: default `default`; `sst2+wikitext2-valid` is the bundled 2-layer
   * teacher's. Causal LM: also tinyshakespeare, wikitext2 or a text file (default tinyshakespeare).
   */
  corpus?: string;
  /** Held-out evaluation every N steps (and at the last step); 0: only at the end. Default 500. */
  evalEvery?: number;
  /** Held-out blocks evaluated (BERT: masked WikiText-2 test blocks, default 256; causal LM: default 64). */
  evalBlocks?: number;
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
 * The run's log entries by step: the trainer's log.jsonl in the run folder (a step logged twice, before a kill and
 * after the resume, counts once: the later entry; lines torn by a kill are skipped), then `history`.
 */
export function logByStep(history: LogEntry[], runDir: string): Map<number, LogEntry> {
  const byStep = new Map<number, LogEntry>();
  const log = path.join(runDir, 'log.jsonl');
  if (fs.existsSync(log))
    for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
      try {
        const e = JSON.parse(line) as LogEntry;
        if (typeof e.step === 'number') byStep.set(e.step, e);
      } catch {
        // a line torn by a kill
      }
    }
  for (const e of history) byStep.set(e.step, e);
  return byStep;
}

/**
 * Mean training loss of the last `n` steps. A resumed run's history starts at the checkpoint, so the trainer's
 * log.jsonl in the run folder is read when present (see logByStep).
 */
export function recentMeanLoss(history: LogEntry[], runDir: string, n = 50): number {
  const last = [...logByStep(history, runDir).values()]
    .filter((e) => typeof e.loss === 'number')
    .sort((a, b) => a.step - b.step)
    .slice(-n)
    .map((e) => e.loss!);
  return last.length ? last.reduce((a, b) => a + b, 0) / last.length : NaN;
}

/** Seconds the run spent in training steps and held-out evaluations, over all its processes (from log.jsonl). */
export function trainingSeconds(history: LogEntry[], runDir: string): number {
  let ms = 0;
  for (const e of logByStep(history, runDir).values()) ms += (e.msPerStep ?? 0) + (e.eval?.ms ?? 0);
  return ms / 1000;
}

/** Architecture presets of `shrink pretrain --arch bert --preset`. */
export const BERT_PRESETS = {
  /**
   * The MiniLM-L6-H384 shape (Wang et al. 2020; microsoft/MiniLM-L12-H384 halved in depth, as
   * nreimers/MiniLM-L6-H384-uncased): 6 layers, hidden 384, 6 heads of 64, FFN 1536, 512 positions, trained at
   * sequence length 128 (positions 128–511 stay at their initialisation until a run trains at 512).
   */
  'minilm-l6-h384': { layers: 6, hidden: 384, heads: 6, intermediate: 1536, maxPositions: 512, seqLen: 128, batchSize: 32, lr: 5e-4 },
} as const;
export type BertPreset = keyof typeof BERT_PRESETS;

export interface BertPretrainOptions extends PretrainOptions {
  /** An architecture preset (BERT_PRESETS); explicit hidden/layers/heads/intermediate/maxPositions must agree with it. */
  preset?: string;
  /** max_position_embeddings (default 128, the preset's with one). */
  maxPositions?: number;
  /** Whole-word masking (HF DataCollatorForWholeWordMask) instead of per-token masking. */
  wholeWordMasking?: boolean;
  /** Continued pretraining: start from this BertForMaskedLM folder's weights (same architecture and vocabulary). */
  initFrom?: string;
}

/** Every setting of a BERT pretraining run, defaults and preset applied (what shrink-run.json records). */
export interface BertPretrainSettings {
  command: 'pretrain';
  arch: 'bert';
  preset: string | null;
  corpus: string;
  steps: number;
  batchSize: number;
  seqLen: number;
  lr: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  wholeWordMasking: boolean;
  /** Absolute path of the folder whose weights the run starts from (absent: random init). */
  initFrom?: string;
  evalEvery: number;
  evalBlocks: number;
  seed: number;
}

/**
 * Resolve and check the options of a BERT pretraining run before any work: the preset's values, the defaults of the
 * bundled teacher's shape (2 layers, hidden 128, 2 heads, FFN 512, 128 positions, batch 32 × 64 tokens, lr 1e-3)
 * otherwise. One error naming the flag when something does not fit.
 */
export function bertPretrainSettings(o: BertPretrainOptions): BertPretrainSettings {
  let p: (typeof BERT_PRESETS)[BertPreset] | undefined;
  if (o.preset !== undefined) {
    if (!(o.preset in BERT_PRESETS)) throw new Error(`--preset must be one of ${Object.keys(BERT_PRESETS).join(', ')}, got '${o.preset}'`);
    p = BERT_PRESETS[o.preset as BertPreset];
    const flags = { hidden: '--hidden', layers: '--layers', heads: '--heads', intermediate: '--intermediate', maxPositions: '--max-positions' } as const;
    for (const [k, flag] of Object.entries(flags) as [keyof typeof flags, string][])
      if (o[k] !== undefined && o[k] !== p[k]) throw new Error(`${flag} ${o[k]} conflicts with --preset ${o.preset} (${flag.slice(2)} ${p[k]}); leave it out or drop the preset`);
  }
  const s: BertPretrainSettings = {
    command: 'pretrain',
    arch: 'bert',
    preset: o.preset ?? null,
    corpus: o.corpus ?? 'default',
    steps: o.steps,
    batchSize: o.batchSize ?? p?.batchSize ?? 32,
    seqLen: o.seqLen ?? p?.seqLen ?? 64,
    lr: o.lr ?? p?.lr ?? 1e-3,
    hidden: o.hidden ?? p?.hidden ?? 128,
    layers: o.layers ?? p?.layers ?? 2,
    heads: o.heads ?? p?.heads ?? 2,
    intermediate: o.intermediate ?? p?.intermediate ?? 512,
    maxPositions: o.maxPositions ?? p?.maxPositions ?? 128,
    wholeWordMasking: o.wholeWordMasking ?? false,
    ...(o.initFrom !== undefined ? { initFrom: path.resolve(o.initFrom) } : {}),
    evalEvery: o.evalEvery ?? 500,
    evalBlocks: o.evalBlocks ?? 256,
    seed: o.seed ?? 0,
  };
  corpusSources(s.corpus); // an unknown corpus fails here, before any work
  if (s.seqLen > s.maxPositions) throw new Error(`--seq-len must be at most ${s.maxPositions} for --arch bert (max_position_embeddings; --max-positions raises it), got ${s.seqLen}`);
  if (s.seqLen < 3) throw new Error(`--seq-len must be at least 3 for --arch bert ([CLS], a token, [SEP]), got ${s.seqLen}`);
  if (s.hidden % s.heads !== 0) throw new Error(`--hidden ${s.hidden} is not divisible by --heads ${s.heads}`);
  if (s.initFrom !== undefined) {
    const c = readConfig(s.initFrom) as Partial<BertConfig>;
    const want = { hidden_size: s.hidden, num_hidden_layers: s.layers, num_attention_heads: s.heads, intermediate_size: s.intermediate, max_position_embeddings: s.maxPositions };
    for (const [k, v] of Object.entries(want))
      if (c[k as keyof BertConfig] !== v) throw new Error(`--init-from ${o.initFrom}: config.json ${k} is ${String(c[k as keyof BertConfig])}, this run's is ${v}`);
  }
  return s;
}

/** The `shrink pretrain` command line that makes a run with these settings (every setting spelled out). */
export function pretrainCommand(s: BertPretrainSettings, outDir: string): string {
  const arch = s.preset ? [`--preset ${s.preset}`] : [`--layers ${s.layers}`, `--hidden ${s.hidden}`, `--heads ${s.heads}`, `--intermediate ${s.intermediate}`, `--max-positions ${s.maxPositions}`];
  return [
    'npx shrink pretrain --arch bert',
    ...arch,
    `--corpus ${s.corpus}`,
    ...(s.wholeWordMasking ? ['--whole-word-masking'] : []),
    ...(s.initFrom !== undefined ? [`--init-from ${s.initFrom}`] : []),
    `--steps ${s.steps}`,
    `--batch-size ${s.batchSize}`,
    `--seq-len ${s.seqLen}`,
    `--lr ${s.lr}`,
    `--eval-every ${s.evalEvery}`,
    `--eval-blocks ${s.evalBlocks}`,
    `--seed ${s.seed}`,
    `-o ${outDir}`,
  ].join(' ');
}

/** Pack documents into [CLS] + (T-2 tokens) + [SEP] blocks, concatenating documents; the remainder is dropped. */
export function packBlocks(tok: WordPieceTokenizer, docs: readonly string[], T: number): { blocks: Encoded[]; tokens: number } {
  const blocks: Encoded[] = [];
  let cur: number[] = [];
  let tokens = 0;
  for (const s of docs) {
    for (const id of tok.encode(s, { addSpecialTokens: false })) {
      tokens++;
      cur.push(id);
      if (cur.length === T - 2) {
        blocks.push({ ids: [tok.specialIds.cls!, ...cur, tok.specialIds.sep!] });
        cur = [];
      }
    }
  }
  return { blocks, tokens };
}

/** Seed of the held-out masks: fixed, so every run is scored on the same masked tokens. */
export const EVAL_MASK_SEED = 1234;

/** A fixed, masked evaluation set: batches of (inputIds, attentionMask, labels). */
export interface MlmEvalSet {
  batches: { inputIds: Tensor; attentionMask: Tensor; labels: Tensor; count: number }[];
  blocks: number;
  /** Masked (predicted) tokens in total. */
  predicted: number;
}

/**
 * The held-out MLM set: WikiText-2 test packed into blocks like the training data, `n` blocks evenly spaced through
 * it, masked once with per-token masking (80/10/10) from Generator(EVAL_MASK_SEED) — the same masks for every run
 * with the same vocabulary and sequence length, whether it trains with whole-word masking or not.
 */
export function mlmEvalSet(tok: WordPieceTokenizer, T: number, n: number, batchSize = 32): MlmEvalSet {
  const { blocks } = packBlocks(tok, heldOutDocuments(), T);
  const k = Math.min(n, blocks.length);
  const chosen = Array.from({ length: k }, (_, i) => blocks[Math.floor((i * blocks.length) / k)]!);
  const g = new Generator(EVAL_MASK_SEED);
  const special = [tok.specialIds.cls!, tok.specialIds.sep!, tok.specialIds.pad!];
  const batches: MlmEvalSet['batches'] = [];
  let predicted = 0;
  for (let i = 0; i < chosen.length; i += batchSize) {
    const b = collate(chosen.slice(i, i + batchSize), { padId: tok.specialIds.pad! });
    const m = maskTokens(b.inputIds, { maskId: tok.specialIds.mask!, vocabSize: tok.vocabSize, specialIds: special, generator: g });
    let count = 0;
    for (const l of m.labels.toArray() as Int32Array) if (l !== -100) count++;
    predicted += count;
    if (count > 0) batches.push({ inputIds: m.inputIds, attentionMask: b.attentionMask, labels: m.labels, count });
  }
  return { batches, blocks: k, predicted };
}

/** Mean MLM loss (nats per masked token) of a model on an evaluation set (no grad; eval mode while it runs). */
export function mlmEvalLoss(model: BertForMaskedLM, set: MlmEvalSet): number {
  const wasTraining = model.training;
  model.eval();
  let sum = 0;
  try {
    noGrad(() => {
      for (const b of set.batches) sum += model.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask, labels: b.labels }, { predictOnlyLabelled: true }).loss!.item() * b.count;
    });
  } finally {
    if (wasTraining) model.train();
  }
  return sum / Math.max(1, set.predicted);
}

/** What a model README (written into every pretrained folder) says. */
export interface ModelReadmeInfo {
  title: string;
  command: string;
  architecture: string;
  parameters: number;
  objective: string;
  corpus: CorpusSummary;
  /** How the corpus was tokenized (tokenizer, vocabulary). */
  tokenization: string;
  steps: number;
  batchSize: number;
  seqLen: number;
  optimizer: string;
  /** Seconds in training steps and evaluations (all processes of the run, from log.jsonl). */
  trainSeconds: number;
  resumedFrom?: number;
  finalMetrics: [string, string][];
  heldOut: string;
}

const hms = (s: number) => `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

/** This machine in one line: CPU, cores, threads, backend, Node. */
export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model?.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${getNumThreads()} threads, ${backend().name} backend, Node ${process.version}, ${os.platform()} ${os.arch()}`;
}

/** The model README (docs/teachers.md shows the template). */
export function modelReadme(r: ModelReadmeInfo): string {
  const tokensSeen = r.steps * r.batchSize * r.seqLen;
  const epochs = r.corpus.tokens ? tokensSeen / r.corpus.tokens : NaN;
  return [
    `# ${r.title}`,
    '',
    'Pretrained by Shrink with the command below; every number here was written by that command',
    'at the end of the run. `shrink plot <this folder> -o curve.svg` draws its loss curve from `.run/log.jsonl`.',
    '',
    '| | |',
    '| --- | --- |',
    `| command | \`${r.command}\` |`,
    `| architecture | ${r.architecture} |`,
    `| parameters | ${r.parameters.toLocaleString('en-US')} |`,
    `| objective | ${r.objective} |`,
    `| data | corpus \`${r.corpus.name}\`: ${r.corpus.documents.toLocaleString('en-US')} documents, ${r.corpus.words.toLocaleString('en-US')} words${r.corpus.tokens !== undefined ? `, ${r.corpus.tokens.toLocaleString('en-US')} tokens` : ''} (sha256 of the text ${r.corpus.sha256.slice(0, 16)}…) |`,
    `| tokenization | ${r.tokenization} |`,
    `| steps | ${r.steps.toLocaleString('en-US')} × ${r.batchSize} sequences × ${r.seqLen} tokens = ${tokensSeen.toLocaleString('en-US')} tokens seen${Number.isFinite(epochs) ? ` (${epochs >= 0.1 ? epochs.toFixed(2) : epochs.toPrecision(2)} epochs of the corpus)` : ''} |`,
    `| optimizer | ${r.optimizer} |`,
    `| wall time | ${hms(r.trainSeconds)}${r.trainSeconds < 600 ? ` (${r.trainSeconds.toFixed(1)} s)` : ''} in training steps and evaluations${r.resumedFrom ? ` (resumed from step ${r.resumedFrom})` : ''} |`,
    `| machine | ${machineLine()}; load average ${os.loadavg()[0]!.toFixed(1)} at the end${os.loadavg()[0]! > os.cpus().length ? ' (more than the cores: the machine was shared, so the wall time is longer than the run needed)' : ''} |`,
    `| finished | ${new Date().toISOString()} |`,
    ...r.finalMetrics.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    '## Data',
    '',
    corpusTable(r.corpus),
    '',
    `Held out: ${r.heldOut}`,
    '',
  ].join('\n');
}

/**
 * MLM-pretrain a small BERT; writes a HF folder (config, weights, vocab.txt, README.md). The corpus (`default`: all
 * of Shrink's English text, src/train/corpus.ts) is packed into [CLS] … [SEP] blocks; the vocabulary is
 * bert-base-uncased trimmed to the corpus; masking is per token or whole-word; the held-out MLM loss on WikiText-2
 * test is logged every `evalEvery` steps and reported at the end. Resumable: checkpoints go to outDir/.run.
 */
export function pretrainTeacher(o: BertPretrainOptions): { config: BertConfig; vocabSize: number; finalLoss: number; heldOutLoss: number; corpus: CorpusSummary; steps: number; trainSeconds: number } & PretrainRunInfo {
  const settings = bertPretrainSettings(o);
  const state = openPretrainDir(o.outDir, settings as unknown as Record<string, unknown>, o);
  if (state.state === 'finished') {
    const r = state.record.result as { vocabSize: number; finalLoss: number; heldOutLoss: number; corpus: CorpusSummary; steps: number; trainSeconds: number };
    return { config: bertConfig(readConfig(o.outDir) as Partial<BertConfig>), ...r, alreadyFinished: true };
  }
  const t0 = performance.now();
  manualSeed(settings.seed);
  const corpus = buildCorpus(settings.corpus);
  const full = WordPieceTokenizer.fromVocabFile(path.join(DATA_DIR, 'tokenizers', 'bert-base-uncased', 'vocab.txt'));
  const vocab = trimVocab(full, corpus.documents);
  const tok = new WordPieceTokenizer(vocab);
  const T = settings.seqLen;
  const { blocks, tokens } = packBlocks(tok, corpus.documents, T);
  corpus.summary.tokens = tokens;
  o.log?.(`${formatCorpusSummary(corpus.summary)}; vocabulary ${vocab.length.toLocaleString('en-US')}; ${blocks.length.toLocaleString('en-US')} blocks of ${T} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  if (blocks.length === 0) throw new Error(`corpus ${settings.corpus}: fewer than ${T - 2} tokens; lower --seq-len`);
  const config = bertConfig({
    vocab_size: vocab.length,
    hidden_size: settings.hidden,
    num_hidden_layers: settings.layers,
    num_attention_heads: settings.heads,
    intermediate_size: settings.intermediate,
    max_position_embeddings: settings.maxPositions,
    architectures: ['BertForMaskedLM'],
  });
  const model = new BertForMaskedLM(config);
  for (const [n, p] of model.namedParameters()) if (n.endsWith('.weight') && p.ndim === 2) p.copy_(Tensor.randn(p.shape).mul(0.02)); // BERT init N(0, 0.02)
  if (settings.initFrom !== undefined) {
    const theirs = fs.readFileSync(path.join(settings.initFrom, 'vocab.txt'), 'utf8').trimEnd().split('\n');
    if (theirs.length !== vocab.length || theirs.some((t, i) => t !== vocab[i]))
      throw new Error(`--init-from ${settings.initFrom}: its vocab.txt is not corpus ${settings.corpus}'s trimmed vocabulary (${theirs.length} vs ${vocab.length} tokens); continue with the corpus it was pretrained on`);
    model.loadStateDict(fromPretrained(settings.initFrom, { className: 'BertForMaskedLM' }).stateDict());
    o.log?.(`initialised from ${settings.initFrom}`);
  }
  const sampler = new BatchSampler(blocks.length, settings.batchSize, { seed: settings.seed });
  const g = new Generator(settings.seed);
  const special = [tok.specialIds.cls!, tok.specialIds.sep!, tok.specialIds.pad!];
  const cont = continuationTable(vocab);
  const evalSet = mlmEvalSet(tok, T, settings.evalBlocks);
  const heldOutName = `WikiText-2 test, ${evalSet.blocks} blocks of ${T} tokens evenly spaced through it, ${evalSet.predicted.toLocaleString('en-US')} tokens masked (per-token masking, 80/10/10, Generator seed ${EVAL_MASK_SEED}: the same for every run with this vocabulary and sequence length); mean loss per masked token`;
  const evaluate = () => {
    const e0 = performance.now();
    const loss = mlmEvalLoss(model, evalSet);
    return { metric: loss, loss, ms: performance.now() - e0 };
  };
  const trainer = new Trainer(
    model,
    {
      totalSteps: settings.steps, lr: settings.lr, warmupSteps: Math.min(500, Math.floor(settings.steps / 10)), maxGradNorm: 1, weightDecay: 0.01, schedule: 'linear',
      outDir: path.join(o.outDir, '.run'), saveEvery: o.saveEvery ?? 500, resume: true, evalEvery: settings.evalEvery || undefined, greaterIsBetter: false,
    },
    {
      lossFn: () => {
        const b = collate(sampler.next().map((i) => blocks[i]!), { padId: tok.specialIds.pad! });
        const mo = { maskId: tok.specialIds.mask!, vocabSize: vocab.length, specialIds: special, generator: g };
        const m = settings.wholeWordMasking ? wholeWordMask(b.inputIds, { ...mo, padId: tok.specialIds.pad!, isContinuation: cont }) : maskTokens(b.inputIds, mo);
        return model.forward({ inputIds: m.inputIds, attentionMask: b.attentionMask, labels: m.labels }, { predictOnlyLabelled: true }).loss!;
      },
      evaluate: settings.evalEvery ? evaluate : undefined,
      stateful: { sampler },
      generators: { mlm: g },
      onLog: o.onLog,
    },
  );
  const r = trainer.train();
  if (r.interrupted) throw new TrainingInterrupted(r.step, settings.steps, path.join(o.outDir, '.run'));
  const runDir = path.join(o.outDir, '.run');
  const last = r.history[r.history.length - 1];
  const heldOutLoss = last?.step === r.step && last.eval ? last.eval.loss! : evaluate().loss;
  const trainSeconds = trainingSeconds(r.history, runDir);
  const result = { vocabSize: vocab.length, finalLoss: recentMeanLoss(r.history, runDir), heldOutLoss, steps: r.step, trainSeconds: +trainSeconds.toFixed(1), corpus: corpus.summary };
  const resumedFrom = state.state === 'resume' ? state.step : undefined;
  const { parameters } = modelSize(model);
  const readme = modelReadme({
    title: settings.preset ? `BERT ${settings.preset} (MLM-pretrained by Shrink)` : `BERT teacher, ${settings.layers} layer${settings.layers === 1 ? '' : 's'} × hidden ${settings.hidden} (MLM-pretrained by Shrink)`,
    command: pretrainCommand(settings, o.outDir),
    architecture: `BertForMaskedLM: ${settings.layers} layer${settings.layers === 1 ? '' : 's'}, hidden ${settings.hidden}, ${settings.heads} heads, FFN ${settings.intermediate}, max positions ${settings.maxPositions}, vocabulary ${vocab.length.toLocaleString('en-US')}${settings.preset ? ` (preset ${settings.preset})` : ''}${settings.initFrom !== undefined ? `; weights initialised from ${settings.initFrom} (continued pretraining; see its README for the earlier steps)` : ''}`,
    parameters,
    objective: `masked LM, 15 % of ${settings.wholeWordMasking ? 'whole words (every WordPiece piece of a chosen word; HF DataCollatorForWholeWordMask)' : 'tokens (HF DataCollatorForLanguageModeling)'}, 80 % [MASK] / 10 % random / 10 % kept; no next-sentence prediction`,
    corpus: corpus.summary,
    tokenization: `bert-base-uncased WordPiece trimmed to ${vocab.length.toLocaleString('en-US')} tokens (specials, single characters, tokens the corpus uses at least twice); documents concatenated into [CLS] + ${T - 2} + [SEP] blocks (${blocks.length.toLocaleString('en-US')} blocks)`,
    steps: r.step,
    batchSize: settings.batchSize,
    seqLen: T,
    optimizer: `AdamW, lr ${settings.lr}, ${Math.min(500, Math.floor(settings.steps / 10))} warmup steps then linear decay to 0, weight decay 0.01 (not on biases and LayerNorm), gradient clipping 1.0, seed ${settings.seed}`,
    trainSeconds,
    resumedFrom,
    finalMetrics: [
      ['training MLM loss', `${result.finalLoss.toFixed(4)} (mean of the last 50 steps)`],
      ['held-out MLM loss', `${heldOutLoss.toFixed(4)} (perplexity ${Math.exp(heldOutLoss).toFixed(2)}), WikiText-2 test`],
    ],
    heldOut: heldOutName,
  });
  writePretrainDir(o.outDir, state, result, (tmp) => {
    savePretrained(model as never, tmp, { recipe: JSON.stringify({ method: 'pretrain.mlm', steps: settings.steps, corpus: settings.corpus === LEGACY_CORPUS ? 'sst2-train + wikitext2-valid' : settings.corpus, ...(settings.wholeWordMasking ? { wholeWordMasking: true } : {}) }) });
    atomicWriteFile(path.join(tmp, 'vocab.txt'), vocab.join('\n') + '\n');
    atomicWriteFile(path.join(tmp, 'README.md'), readme);
  });
  return { config, ...result, ...(resumedFrom !== undefined ? { resumedFrom } : {}) };
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
