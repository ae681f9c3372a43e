/**
 * `shrink` command line. Each command parses flags, calls one library function and prints (a table, or JSON
 * with --json). Errors print one line and exit 1; no stack traces for user mistakes. Flags and output folders are
 * checked before any long work; a training run stopped by Ctrl-C exits 130 (see README "Reliability").
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { createRequire } from 'node:module';
import os from 'node:os';
import { backend, getNumThreads, nativeAddon } from '../backend/registry.ts';
import { formatInspect, inspectModel } from './inspect.ts';
import { registerCompress } from './compress.ts';
import { registerSearch } from './search.ts';
import { registerAugment } from './augment.ts';
import { registerExport } from './export.ts';
import { registerReport } from './report.ts';
import { registerDatastore, runMemoryEval, wantsMemory } from './datastore.ts';
import { TEACHER_SETTINGS, ensureTeacher } from '../train/teachers.ts';
import { progress } from './progress.ts';
import { fromPretrained } from '../models/registry.ts';
import { contextLength, generate } from '../models/generation.ts';
import type { CausalLM } from '../models/generation.ts';
import { ByteLevelBPETokenizer, loadTokenizer, saveBpeTokenizer, trainByteLevelBpe } from '../tokenizers/index.ts';
import { Generator } from '../tensor/random.ts';
import { DEFAULT_LM_TOKENIZER, lmCorpus, pretrainCausalLM } from '../train/lm-tasks.ts';
import { DEFAULT_PRETRAIN_OUT, DEFAULT_SAVE_EVERY, TEACHER_DIR, TrainingInterrupted, finetuneGlue, pretrainTeacher, type FinetuneResult } from '../train/bert-tasks.ts';
import { BERT_PRESETS, bertPretrainSettings } from '../train/bert-tasks.ts';
import { CORPUS_SOURCES, LEGACY_CORPUS, formatCorpusSummary } from '../train/corpus.ts';
import { registerPlot } from '../eval/plot.ts';
import { checkOutDir, checkOutPath } from '../io/outdir.ts';
import { formatBytes } from './inspect.ts';
import type { GlueTask } from '../data/glue.ts';
import type { LogEntry } from '../train/trainer.ts';
import { evalGlue, evalPerplexity } from '../eval/evaluate.ts';
import { castFolder, peakRssMb, quantizeFolder } from '../compress/quant/pretrained.ts';
import { TOKENIZER_FILES, hasTokenizer } from '../io/tokenizer-files.ts';
import { compressFolder } from './compress.ts';
import { resolveSteps, resolvedRecipe, type Recipe, type RecipeStep } from '../compress/runner.ts';
import { modelFromConfig } from '../models/registry.ts';
import { withoutInit } from '../nn/init.ts';
import { matchesAny } from '../compress/select.ts';
import { formatLayerErrors, layerErrors } from '../compress/quant/report.ts';
import { OBSERVERS, type ObserverKind } from '../compress/quant/calibrate.ts';
import { QUANT_SCHEMES, isIntegerActivations, type QuantScheme } from '../compress/quant/modules.ts';
import { INT4_FORMULAS, checkFormula, parseGranularity, type Granularity, type Int4Formula } from '../compress/quant/rtn.ts';
import { CALIBRATION_SOURCES, calibrationBatches } from '../data/calibration.ts';
import { readConfig } from '../io/hf.ts';
import { parseByteSize } from '../io/shards.ts';
import { quantizeRunDir } from '../compress/quant/checkpoint.ts';
import { classify, fillMask, taskOf } from '../eval/predict.ts';
import { BertForMaskedLM, BertForSequenceClassification } from '../models/bert/modeling.ts';
import { GPT2LMHeadModel } from '../models/gpt2/modeling.ts';
import { LlamaForCausalLM } from '../models/llama/modeling.ts';
import { registerMakeRandom } from './make-random.ts';
import { num } from './options.ts';

function formatFinetune(r: FinetuneResult, label: string): string {
  return [
    `| ${label} | value |`,
    '| --- | --- |',
    `| task | ${r.task} (dev) |`,
    `| ${r.metric} | ${(r.score * 100).toFixed(2)} |`,
    `| parameters | ${r.parameters.toLocaleString('en-US')} |`,
    `| size | ${formatBytes(r.bytes)} |`,
    `| latency | ${r.latencyMsPerExample.toFixed(3)} ms / example (batch 32) |`,
    `| steps | ${r.steps}${r.resumedFrom ? ` (resumed from ${r.resumedFrom})` : ''}${r.alreadyFinished ? ' (finished earlier: recorded result)' : ''} |`,
  ].join('\n') + '\n';
}

/** A note or warning for the user: one line on stderr. */
function note(line: string): void {
  process.stderr.write(`shrink: ${line}\n`);
}

const GLUE_TASKS = ['sst2', 'mrpc', 'rte', 'cola'];


interface GenerateOpts {
  prompt: string;
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed: number;
  json?: boolean;
  /** Token ids instead of --prompt text (no tokenizer needed: random-weight or tokenizer-less checkpoints). */
  promptIds?: number[];
}

/** `--prompt-ids 1,450,3`: token ids, each an integer ≥ 0. */
function parsePromptIds(v: string): number[] {
  const ids = v.split(',').map((x) => x.trim());
  for (const x of ids) if (!/^\d+$/.test(x)) throw new InvalidArgumentError(`--prompt-ids: expected comma-separated token ids (integers ≥ 0), got '${x}'`);
  return ids.map(Number);
}

/** Continue a prompt with a causal LM folder; returns the text to print (a table line or JSON). */
function runGenerate(dir: string, o: GenerateOpts, loaded?: CausalLM): string {
  const tok = o.promptIds ? null : loadTokenizer(dir);
  const tl = performance.now();
  const model = loaded ?? (fromPretrained(dir) as unknown as CausalLM);
  const loadMs = performance.now() - tl;
  if (!(model instanceof GPT2LMHeadModel || model instanceof LlamaForCausalLM)) throw new Error(`${dir}: not a causal LM (${(model as object).constructor.name})`);
  const vocab = Number(model.config.vocab_size);
  const bad = o.promptIds?.find((id) => id >= vocab);
  if (bad !== undefined) throw new Error(`--prompt-ids: token id ${bad} is outside the vocabulary of ${dir} (vocab_size ${vocab})`);
  const doSample = o.temperature !== undefined || o.topK !== undefined || o.topP !== undefined;
  const prompt = o.promptIds ?? tok!.encode(o.prompt);
  const t0 = performance.now();
  const ids = generate(model, prompt, {
    maxNewTokens: o.maxNewTokens,
    doSample,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    eosTokenId: tok ? (tok.specialIds.eos ?? null) : null,
    generator: new Generator(o.seed),
  });
  const ms = performance.now() - t0;
  const text = tok ? tok.decode(ids) : ids.join(' ');
  const newTokens = ids.length - prompt.length;
  const limit = contextLength(model);
  if (limit !== undefined && newTokens < o.maxNewTokens && ids.length >= limit)
    note(`stopped at the model's context limit of ${limit} positions (${prompt.length} prompt + ${newTokens} new tokens; -n asked for ${o.maxNewTokens})`);
  if (o.json)
    return JSON.stringify({ task: 'generate', text, ids, newTokens, ms: +ms.toFixed(1), tokensPerS: +((newTokens / ms) * 1000).toFixed(2), loadMs: Math.round(loadMs), peakRssMb: peakRssMb() }) + '\n';
  return `${text}\n\n(${newTokens} tokens in ${ms.toFixed(0)} ms, ${((newTokens / ms) * 1000).toFixed(1)} tokens/s; loaded in ${(loadMs / 1000).toFixed(1)} s, peak resident memory ${peakRssMb().toLocaleString('en-US')} MiB)\n`;
}

interface QuantizeCliOptions {
  out: string;
  maxShardSize?: string;
  checkpointEvery: number;
  scheme: string;
  bits?: number;
  granularity?: string;
  asymmetric?: boolean;
  symmetric?: boolean;
  int4Formula?: string;
  method: string;
  task: string;
  steps: number;
  lr: number;
  report?: boolean;
  observer: string;
  percentile: number;
  calib?: string;
  calibSamples: number;
  calibSeqLen: number;
  percdamp: number;
  actOrder?: boolean;
  embeddings: boolean;
  ignore?: string;
  force?: boolean;
  json?: boolean;
}

/** The command-line spelling of each quantize option. */
const QUANT_FLAGS: Partial<Record<keyof QuantizeCliOptions, string>> = {
  bits: '--bits', granularity: '--granularity', asymmetric: '--asymmetric', symmetric: '--symmetric', int4Formula: '--int4-formula', method: '--method',
  task: '--task', steps: '--steps', lr: '--lr', report: '--report', observer: '--observer', percentile: '--percentile', calib: '--calib',
  calibSamples: '--calib-samples', calibSeqLen: '--calib-seq-len', percdamp: '--percdamp', actOrder: '--act-order', embeddings: '--no-embeddings', ignore: '--ignore',
  maxShardSize: '--max-shard-size', checkpointEvery: '--checkpoint-every',
};

/**
 * Check `shrink quantize` flags against the scheme and method before any work: every flag is either used by the
 * chosen scheme/method or rejected with one line saying which flag does not apply. Returns the parsed granularity
 * and ignore globs.
 */
function checkQuantizeFlags(o: QuantizeCliOptions, given: (k: keyof QuantizeCliOptions) => boolean): { granularity?: Granularity; groupSize?: number; ignore?: string[] } {
  const flag = (k: keyof QuantizeCliOptions) => QUANT_FLAGS[k]!;
  const reject = (keys: (keyof QuantizeCliOptions)[], why: (f: string) => string) => {
    for (const k of keys) if (given(k)) throw new Error(why(flag(k)));
  };
  if (![...QUANT_SCHEMES, 'fp16', 'bf16'].includes(o.scheme)) throw new Error(`--scheme must be one of ${[...QUANT_SCHEMES, 'fp16', 'bf16'].join(', ')}, got '${o.scheme}'`);
  if (!['rtn', 'gptq', 'qat'].includes(o.method)) throw new Error(`--method must be rtn, gptq or qat, got '${o.method}'`);
  const all = Object.keys(QUANT_FLAGS) as (keyof QuantizeCliOptions)[];
  if (o.scheme === 'fp16' || o.scheme === 'bf16') {
    reject(all, (f) => `${f} does not apply to --scheme ${o.scheme} (a cast of every float tensor)`);
    return {};
  }
  if (o.int4Formula !== undefined && !(INT4_FORMULAS as readonly string[]).includes(o.int4Formula)) throw new Error(`--int4-formula must be one of ${INT4_FORMULAS.join(', ')}, got '${o.int4Formula}'`);
  if (!(OBSERVERS as readonly string[]).includes(o.observer)) throw new Error(`--observer must be one of ${OBSERVERS.join(', ')}, got '${o.observer}'`);
  if (o.asymmetric && o.symmetric) throw new Error('--asymmetric and --symmetric exclude each other');
  const int4 = o.scheme === 'int4';
  if (o.bits !== undefined && !int4) throw new Error(`--bits applies to scheme int4 (4, 3 or 2 bits), not ${o.scheme}`);
  if (o.bits !== undefined && ![2, 3, 4].includes(o.bits)) throw new Error(`--bits must be 4, 3 or 2 for scheme int4, got ${o.bits}`);
  const g = o.granularity !== undefined ? parseGranularity(o.granularity) : undefined;
  if (int4 && g?.granularity === 'group' && g.groupSize! % 2 !== 0)
    throw new Error(`--granularity group:${g.groupSize}: scheme int4 packs two codes per byte, so the group size must be even, got ${g.groupSize}`);
  if (o.int4Formula !== undefined && !int4) throw new Error(`--int4-formula ${o.int4Formula} applies to scheme int4, not ${o.scheme}`);
  const ignore = o.ignore !== undefined ? o.ignore.split(',').map((x) => x.trim()).filter(Boolean) : undefined;
  if (ignore !== undefined && ignore.length === 0) throw new Error(`--ignore needs at least one module-name glob, got '${o.ignore}'`);
  if (o.method === 'qat') {
    const no = (f: string, why = '') => `${f} is not supported with --method qat${why ? ` (${why})` : ''}`;
    if (o.scheme === 'int8-static') throw new Error(`--scheme int8-static is not supported with --method qat (QAT trains int8, int8-dynamic or int4; calibrate int8-static afterwards with shrink quantize)`);
    if (!GLUE_TASKS.includes(o.task)) throw new Error(`--task must be one of sst2, mrpc, rte, cola, got '${o.task}'`);
    reject(['report'], (f) => no(f, 'there is no float model of the fine-tuned weights to compare against'));
    reject(['calib', 'calibSamples', 'calibSeqLen'], (f) => no(f, 'QAT learns from the --task training data; it does not calibrate'));
    reject(['percdamp', 'actOrder'], (f) => no(f, 'it is a GPTQ option'));
    reject(['observer', 'percentile'], (f) => no(f, 'it is an int8-static option'));
    reject(['maxShardSize', 'checkpointEvery'], (f) => no(f, 'QAT trains the whole model and checkpoints its training steps'));
    if (o.int4Formula !== undefined && o.int4Formula !== 'gptq') throw new Error(no(`--int4-formula ${o.int4Formula}`, 'QAT int4 trains with the gptq formula'));
    if (int4 && o.symmetric) throw new Error(no('--symmetric', 'QAT int4 trains asymmetric groups'));
    if (!int4 && o.asymmetric) throw new Error(no('--asymmetric', `QAT ${o.scheme} trains symmetric weights`));
    if (int4 && g && g.granularity !== 'group') throw new Error(no(`--granularity ${o.granularity}`, 'QAT int4 trains groups: group:<size>'));
    if (!int4 && g && g.granularity !== 'channel') throw new Error(no(`--granularity ${o.granularity}`, `QAT ${o.scheme} trains per-channel weights`));
    return { granularity: g?.granularity, groupSize: g?.groupSize, ignore };
  }
  reject(['task', 'steps', 'lr'], (f) => `${f} applies to --method qat`);
  if (o.method !== 'gptq') reject(['percdamp', 'actOrder', 'checkpointEvery'], (f) => `${f} applies to --method gptq`);
  if (o.scheme === 'int8-static') reject(['maxShardSize'], (f) => `${f} does not apply to scheme int8-static (it loads the whole model and writes one model.safetensors)`);
  if (o.scheme !== 'int8-static') reject(['observer', 'percentile'], (f) => `${f} applies to scheme int8-static`);
  if (o.method !== 'gptq' && o.scheme !== 'int8-static' && !o.report) reject(['calib', 'calibSamples', 'calibSeqLen'], (f) => `${f} applies to --method gptq, scheme int8-static or --report`);
  if (isIntegerActivations(o.scheme as QuantScheme) && g && g.granularity !== 'channel') throw new Error(`scheme ${o.scheme} needs per-channel weights, got granularity ${g.granularity}`);
  if (isIntegerActivations(o.scheme as QuantScheme) && o.asymmetric) throw new Error(`scheme ${o.scheme} needs symmetric weights`);
  if (int4) {
    const formula = (o.int4Formula ?? 'gptq') as Int4Formula;
    checkFormula({ formula, symmetric: o.asymmetric ? false : o.symmetric ? true : formula === 'absmax' });
  }
  return { granularity: g?.granularity, groupSize: g?.groupSize, ignore };
}

const require = createRequire(import.meta.url);
const pkg = require('../../package.json') as { version: string };

export function buildProgram(out: (s: string) => void = (s) => process.stdout.write(s)): Command {
  const program = new Command();
  program
    .name('shrink')
    .description('Make transformer language models small and fast: quantization, pruning, distillation, MoE, fast feedforward and memory-augmented LMs.')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('info')
    .description('Show the compute backend, native addon, threads and CPU')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const addon = nativeAddon();
      const ni = addon?.info();
      const info = {
        version: pkg.version,
        backend: backend().name,
        native: addon && ni ? { loaded: true, avx2: ni.avx2, isa: ni.isa, cpuIsa: ni.cpuIsa, isaRequested: ni.isaRequested, denormals: ni.denormals, kernels: addon.kernels() } : { loaded: false },
        threads: getNumThreads(),
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.cpus().length,
        node: process.version,
      };
      if (opts.json) out(JSON.stringify(info) + '\n');
      else
        out(
          [
            `shrink ${info.version}`,
            `backend   ${info.backend}${addon ? '' : ' (native addon not built: npm run build:native)'}`,
            `native    ${addon && ni ? `loaded, ISA ${ni.isa}${ni.isaRequested ? ` (SHRINK_ISA=${ni.isaRequested}; the CPU has ${ni.cpuIsa})` : ''}, denormals ${ni.denormals === 'flush' ? 'flushed (FTZ+DAZ)' : 'kept (SHRINK_DENORMALS=keep)'}` : 'not loaded'}`,
            ...(addon ? Object.entries(addon.kernels()).map(([f, k]) => `  ${f.padEnd(12)}${k}`) : []),
            `threads   ${info.threads}`,
            `cpu       ${info.cpu} (${info.cores} cores)`,
            `node      ${info.node}`,
          ].join('\n') + '\n',
        );
    });
  program
    .command('inspect')
    .description('Show a model folder: architecture, parameters and bytes per module')
    .argument('<model>', 'Hugging Face model folder (config.json + model.safetensors)')
    .option('--json', 'print JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      const r = inspectModel(dir);
      out(opts.json ? JSON.stringify({ ...r, config: undefined }) + '\n' : formatInspect(r));
    });

  program
    .command('generate')
    .description('Continue a prompt with a causal LM (GPT-2 / Llama folders): greedy, or sampling with temperature, top-k, top-p')
    .argument('<model>', 'model folder with a tokenizer (e.g. data/models/stories260K)')
    .option('-p, --prompt <text>', 'prompt text', 'Once upon a time')
    .option('--prompt-ids <ids>', 'prompt as comma-separated token ids instead of text (needs no tokenizer; prints ids)', parsePromptIds)
    .option('-n, --max-new-tokens <n>', 'tokens to generate', num('max-new-tokens', 1, 100000, true), 64)
    .option('--temperature <t>', 'sampling temperature (implies sampling)', num('temperature', 1e-6))
    .option('--top-k <k>', 'keep the k most likely tokens (implies sampling)', num('top-k', 1, Infinity, true))
    .option('--top-p <p>', 'nucleus sampling mass (implies sampling)', num('top-p', 1e-6, 1))
    .option('--seed <s>', 'random seed', num('seed', 0, 2 ** 32, true), 0)
    .option('--json', 'print JSON')
    .action((dir: string, o: GenerateOpts) => out(runGenerate(dir, o)));

  program
    .command('predict')
    .description('Run a model folder on a text: fill-mask (BERT MLM: top-k fillers per [MASK]), classify (sequence classifier: label probabilities), or generate (causal LM)')
    .argument('<model>', 'model folder with its tokenizer (vocab.txt, tokenizer.json or tok512.bin)')
    .argument('[text]', 'input text (fill-mask: with [MASK]; generate: the prompt)')
    .option('--pair <text>', 'second sentence for pair classifiers (MRPC, RTE)')
    .option('-k, --top-k <k>', 'fill-mask: candidates per mask; generate: top-k sampling', num('top-k', 1, Infinity, true))
    .option('-n, --max-new-tokens <n>', 'generate: tokens to generate', num('max-new-tokens', 1, 100000, true), 64)
    .option('--temperature <t>', 'generate: sampling temperature (implies sampling)', num('temperature', 1e-6))
    .option('--top-p <p>', 'generate: nucleus sampling mass (implies sampling)', num('top-p', 1e-6, 1))
    .option('--seed <s>', 'generate: random seed', num('seed', 0, 2 ** 32, true), 0)
    .option('--json', 'print JSON')
    .action((dir: string, text: string | undefined, o: { pair?: string; topK?: number; maxNewTokens: number; temperature?: number; topP?: number; seed: number; json?: boolean }) => {
      const model = fromPretrained(dir);
      const task = taskOf(model);
      if (task === 'generate') {
        out(runGenerate(dir, { ...o, prompt: text ?? 'Once upon a time' }, model as unknown as CausalLM));
        return;
      }
      if (text === undefined) throw new Error(`predict: ${task} needs a text argument`);
      const tok = loadTokenizer(dir);
      if (task === 'fill-mask') {
        const r = fillMask(model as BertForMaskedLM, tok, text, o.topK ?? 5);
        if (o.json) out(JSON.stringify({ task, predictions: r }) + '\n');
        else
          for (const m of r)
            out([`| mask ${m.mask} | token | score | sequence |`, '| --- | --- | --- | --- |', ...m.candidates.map((c, i) => `| ${i + 1} | ${c.token} | ${c.score.toFixed(4)} | ${c.sequence} |`)].join('\n') + '\n');
      } else {
        const r = classify(model as BertForSequenceClassification, tok, text, o.pair);
        if (o.json) out(JSON.stringify({ task, ...r }) + '\n');
        else out([`| label | score |`, '| --- | --- |', ...r.scores.map((c) => `| ${c.label}${c.label === r.label ? ' *' : ''} | ${c.score.toFixed(4)} |`)].join('\n') + '\n');
      }
    });
  program
    .command('pretrain')
    .description('Pretrain a small model: --arch bert (MLM teacher on --corpus, default all of Shrink\'s English text; vocabulary trimmed to the corpus; held-out MLM loss on WikiText-2 test; --preset minilm-l6-h384) or --arch gpt2|llama (causal LM on --corpus with an existing tokenizer)')
    .option('--arch <arch>', 'bert, gpt2 or llama', 'bert')
    .option('-o, --out <dir>', `output model folder, resumable (default for bert: ./${DEFAULT_PRETRAIN_OUT} in the working directory; never the bundled data/)`)
    .option('--corpus <name>', `default (WikiText-2 valid + GLUE sst2/mrpc/rte/cola train sentences + Brown, deduplicated), glue, ${LEGACY_CORPUS} (the bundled 2-layer teacher's), or sources joined with +: ${CORPUS_SOURCES.join(', ')}; gpt2/llama also tinyshakespeare, wikitext2 or a text file (default: bert default, gpt2/llama tinyshakespeare)`)
    .option('--tokenizer <dir>', 'gpt2/llama: tokenizer folder', DEFAULT_LM_TOKENIZER)
    .option('--preset <name>', `bert: architecture preset: ${Object.keys(BERT_PRESETS).join(', ')} (6 layers, hidden 384, 6 heads, FFN 1536, 512 positions; seq-len 128, batch 32, lr 5e-4)`)
    .option('--steps <n>', 'optimizer steps', num('steps', 1, 1e9, true), 3000)
    .option('--batch-size <n>', 'sequences per step (default: bert 32, gpt2/llama 16)', num('batch-size', 1, 4096, true))
    .option('--seq-len <n>', 'tokens per sequence (default: bert 64, preset 128, gpt2/llama 128)', num('seq-len', 8, 4096, true))
    .option('--lr <lr>', 'peak learning rate (default 1e-3; preset 5e-4)', num('lr', 0))
    .option('--hidden <n>', 'hidden size (default: bert 128, gpt2/llama 128)', num('hidden', 8, 4096, true))
    .option('--layers <n>', 'layers (default: bert 2, gpt2/llama 4)', num('layers', 1, 48, true))
    .option('--heads <n>', 'attention heads (default: bert 2, gpt2/llama 4)', num('heads', 1, 64, true))
    .option('--intermediate <n>', 'FFN size (default: bert 512, gpt2 4·hidden, llama 8/3·hidden)', num('intermediate', 8, 16384, true))
    .option('--max-positions <n>', 'bert: max_position_embeddings (default 128; preset 512)', num('max-positions', 8, 8192, true))
    .option('--whole-word-masking', 'bert: mask every WordPiece piece of a chosen word together (HF DataCollatorForWholeWordMask)')
    .option('--init-from <dir>', 'start from this folder\'s weights with a fresh optimizer and schedule (continued pretraining); bert: an MLM folder of the same architecture and corpus vocabulary; gpt2/llama: a causal LM of the same sizes and tokenizer')
    .option('--moe-experts <n>', 'gpt2: a sparse MoE layer of n experts in place of the MLP (ST-MoE: float32 router, capacity 1.25 / 2.0 at eval); each evaluation logs expert loads and router entropy', num('moe-experts', 2, 1024, true))
    .option('--moe-top-k <k>', 'with --moe-experts: experts per token (default 2)', num('moe-top-k', 1, 1024, true))
    .option('--moe-expert-size <n>', 'with --moe-experts: width of each expert (default: the dense FFN width / top-k, equal active FLOPs)', num('moe-expert-size', 1, 1 << 20, true))
    .option('--moe-every <n>', 'with --moe-experts: every n-th block gets the MoE layer (default 1: all)', num('moe-every', 1, 48, true))
    .option('--moe-z-loss <w>', 'with --moe-experts: router z-loss weight (default 1e-3; 0: off)', num('moe-z-loss', 0))
    .option('--moe-balance-loss <w>', 'with --moe-experts: load-balancing loss weight (default 1e-2; 0: off)', num('moe-balance-loss', 0))
    .option('--moe-capacity-factor <cf>', 'with --moe-experts: training capacity factor per routed choice (default 1.25: an expert takes round(1.25·k·tokens/E) of a sequence\'s choices)', num('moe-capacity-factor', 0))
    .option('--moe-eval-capacity-factor <cf>', 'with --moe-experts: evaluation capacity factor per routed choice (default 2.0)', num('moe-eval-capacity-factor', 0))
    .option('--fff-depth <d>', 'gpt2/llama: an UltraFastBERT fast feedforward tree of depth d (2^(d+1)-1 neurons, d+1 per token) in place of every MLP', num('fff-depth', 0, 20, true))
    .option('--eval-every <n>', 'held-out loss (bert: MLM on WikiText-2 test; gpt2/llama: the held-out text) every n steps into the log; 0: only at the end', num('eval-every', 0, 1e9, true), 500)
    .option('--eval-blocks <n>', 'held-out blocks evaluated (default: bert 256, gpt2/llama 64)', num('eval-blocks', 1, 1e6, true))
    .option('--seed <s>', 'random seed', num('seed', 0, 2 ** 32, true), 0)
    .option('--save-every <n>', 'checkpoint every n steps into <out>/.run; rerunning the same command resumes from the latest', num('save-every', 1, 1e9, true), 500)
    .option('--force', 'replace a non-empty output folder that is not this run, or retrain a finished run')
    .option('--json', 'print JSON')
    .action((o: { arch: string; out?: string; corpus?: string; tokenizer: string; preset?: string; steps: number; batchSize?: number; seqLen?: number; lr?: number; hidden?: number; layers?: number; heads?: number; intermediate?: number; maxPositions?: number; wholeWordMasking?: boolean; initFrom?: string; evalEvery: number; evalBlocks?: number; seed: number; saveEvery: number; force?: boolean; json?: boolean; moeExperts?: number; moeTopK?: number; moeExpertSize?: number; moeEvery?: number; moeZLoss?: number; moeBalanceLoss?: number; moeCapacityFactor?: number; moeEvalCapacityFactor?: number; fffDepth?: number }) => {
      const moeFlags = [[o.moeTopK, '--moe-top-k'], [o.moeExpertSize, '--moe-expert-size'], [o.moeEvery, '--moe-every'], [o.moeZLoss, '--moe-z-loss'], [o.moeBalanceLoss, '--moe-balance-loss'], [o.moeCapacityFactor, '--moe-capacity-factor'], [o.moeEvalCapacityFactor, '--moe-eval-capacity-factor']] as const;
      if (o.moeExperts === undefined) for (const [v, flag] of moeFlags) if (v !== undefined) throw new Error(`${flag} needs --moe-experts`);
      if (o.arch === 'bert') for (const [v, flag] of [[o.moeExperts, '--moe-experts'], [o.fffDepth, '--fff-depth']] as const) if (v !== undefined) throw new Error(`${flag} applies to --arch gpt2 or llama, not bert`);
      const common = { steps: o.steps, batchSize: o.batchSize, seqLen: o.seqLen, lr: o.lr, hidden: o.hidden, layers: o.layers, heads: o.heads, intermediate: o.intermediate, seed: o.seed, saveEvery: o.saveEvery, force: o.force, corpus: o.corpus, evalEvery: o.evalEvery, evalBlocks: o.evalBlocks, log: note, onLog: progress('pretrain', o.steps, o.json) };
      if (o.arch === 'bert') {
        const bertOpts = { ...common, preset: o.preset, maxPositions: o.maxPositions, wholeWordMasking: o.wholeWordMasking, initFrom: o.initFrom };
        // never into the package's own data/ (the bundled teacher): a folder in the working directory by default
        const dir = o.out ?? DEFAULT_PRETRAIN_OUT;
        bertPretrainSettings({ outDir: dir, ...bertOpts }); // every flag checked before any work
        checkOutPath(dir);
        const r = pretrainTeacher({ outDir: dir, ...bertOpts });
        out(
          o.json
            ? JSON.stringify({ out: dir, vocabSize: r.vocabSize, finalLoss: r.finalLoss, heldOutLoss: r.heldOutLoss, steps: r.steps, trainSeconds: r.trainSeconds, corpus: r.corpus, ...(r.resumedFrom ? { resumedFrom: r.resumedFrom } : {}), ...(r.alreadyFinished ? { alreadyFinished: true } : {}) }) + '\n'
            : `${r.alreadyFinished ? 'already finished:' : 'wrote'} ${dir} (vocabulary ${r.vocabSize}, final MLM loss ${r.finalLoss.toFixed(3)}, held-out MLM loss ${r.heldOutLoss.toFixed(3)} on WikiText-2 test; ${formatCorpusSummary(r.corpus)})\n`,
        );
        return;
      }
      if (o.arch !== 'gpt2' && o.arch !== 'llama') throw new Error(`--arch must be bert, gpt2 or llama, got '${o.arch}'`);
      for (const [v, flag] of [[o.preset, '--preset'], [o.maxPositions, '--max-positions'], [o.wholeWordMasking, '--whole-word-masking']] as const)
        if (v !== undefined) throw new Error(`${flag} applies to --arch bert, not ${o.arch}`);
      if (!o.out) throw new Error(`--arch ${o.arch} needs --out <dir>`);
      checkOutPath(o.out);
      const mlp = {
        ...(o.moeExperts !== undefined ? { moe: { experts: o.moeExperts, topK: o.moeTopK, expertSize: o.moeExpertSize, every: o.moeEvery, zLoss: o.moeZLoss, balanceLoss: o.moeBalanceLoss, capacityFactor: o.moeCapacityFactor, evalCapacityFactor: o.moeEvalCapacityFactor } } : {}),
        ...(o.fffDepth !== undefined ? { fffDepth: o.fffDepth } : {}),
      };
      const r = pretrainCausalLM({ arch: o.arch, outDir: o.out, tokenizerDir: o.tokenizer, ...common, ...mlp, ...(o.initFrom !== undefined ? { initFrom: o.initFrom } : {}) });
      out(
        o.json
          ? JSON.stringify({ out: o.out, ...r }) + '\n'
          : `${r.alreadyFinished ? 'already finished:' : 'wrote'} ${o.out} (vocabulary ${r.vocabSize}, ${r.trainTokens.toLocaleString('en-US')} training tokens, final loss ${r.finalLoss.toFixed(3)}, held-out perplexity ${r.heldOutPerplexity.toFixed(2)})\n`,
      );
    });

  program
    .command('train-tokenizer')
    .description('Train a GPT-2 style byte-level BPE tokenizer on a corpus and write a tokenizer folder (tokenizer.json, vocab.json, merges.txt) for pretrain --tokenizer')
    .option('--corpus <name>', `training text, as pretrain --arch gpt2|llama takes it: default, glue, sources joined with + (${CORPUS_SOURCES.join(', ')}), tinyshakespeare, wikitext2 (valid) or a text file (its first 90 % of lines); never WikiText-2 test`, 'default')
    .option('--vocab-size <n>', 'vocabulary size, special token and the 256 byte symbols included', num('vocab-size', 257, 1 << 24, true), 8192)
    .option('--min-frequency <n>', 'merge only pairs seen at least n times', num('min-frequency', 1, 1e12, true), 2)
    .option('-o, --out <dir>', 'output tokenizer folder')
    .option('--force', 'replace a non-empty output folder')
    .option('--json', 'print JSON')
    .action((o: { corpus: string; vocabSize: number; minFrequency: number; out?: string; force?: boolean; json?: boolean }) => {
      if (!o.out) throw new Error('train-tokenizer needs -o <dir>');
      checkOutDir(o.out, { force: o.force });
      const t0 = performance.now();
      const corpus = lmCorpus(o.corpus);
      const texts = corpus.train;
      const wordsOf = (s: string) => s.split(/\s+/).filter(Boolean).length;
      const words = texts.reduce((a, t) => a + wordsOf(t), 0);
      let lastShown = -1;
      const r = trainByteLevelBpe(texts, {
        vocabSize: o.vocabSize,
        minFrequency: o.minFrequency,
        onProgress: (done, total) => {
          if (o.json) return;
          const pct = Math.floor((100 * done) / Math.max(1, total));
          if (done === 0) note(`train-tokenizer: ${texts.length.toLocaleString('en-US')} documents of ${corpus.name}, ${words.toLocaleString('en-US')} words, pre-tokenized (${((performance.now() - t0) / 1000).toFixed(1)} s); learning up to ${total.toLocaleString('en-US')} merges`);
          else if (process.stderr.isTTY ? pct !== lastShown : pct >= lastShown + 10 || done === total) {
            lastShown = pct;
            const line = `train-tokenizer ${done}/${total} new tokens (${pct} %) ${((performance.now() - t0) / 1000).toFixed(1)} s`;
            process.stderr.write(process.stderr.isTTY ? `\r${line}${done === total ? '\n' : ''}` : line + '\n');
          }
        },
      });
      if (!o.json && process.stderr.isTTY && r.vocab.size < o.vocabSize) process.stderr.write('\n');
      const trainSeconds = (performance.now() - t0) / 1000;
      saveBpeTokenizer(o.out, r, { force: o.force });
      const tok = new ByteLevelBPETokenizer(r.vocab, r.merges);
      let tokens = 0;
      for (const t of texts) tokens += tok.encode(t).length;
      const summary = {
        out: o.out,
        corpus: corpus.name,
        documents: r.texts,
        words,
        preTokens: r.words,
        distinctPreTokens: r.distinctWords,
        vocabSize: r.vocab.size,
        merges: r.merges.length,
        tokens,
        tokensPerWord: +(tokens / Math.max(1, words)).toFixed(4),
        seconds: +trainSeconds.toFixed(2),
      };
      out(
        o.json
          ? JSON.stringify(summary) + '\n'
          : `wrote ${o.out}: vocabulary ${r.vocab.size} (${r.merges.length.toLocaleString('en-US')} merges learned${r.vocab.size < o.vocabSize ? `, stopped early: no pair seen ${o.minFrequency} times` : ''}) in ${trainSeconds.toFixed(1)} s from ${r.texts.toLocaleString('en-US')} documents, ${words.toLocaleString('en-US')} words (${r.words.toLocaleString('en-US')} pre-tokens, ${r.distinctWords.toLocaleString('en-US')} distinct); ${tokens.toLocaleString('en-US')} tokens on the training text, ${summary.tokensPerWord.toFixed(3)} tokens per word\n`,
      );
    });

  const trainCmd = (name: string, description: string, defaults: { steps: number }) =>
    program
      .command(name)
      .description(description)
      .option('-m, --model <dir>', 'BERT folder with vocab.txt', TEACHER_DIR)
      .option('-t, --task <task>', 'GLUE task: sst2, mrpc, rte, cola', 'sst2')
      .option('--steps <n>', 'optimizer steps', num('steps', 1, 1e9, true), defaults.steps)
      .option('--batch-size <n>', 'examples per step', num('batch-size', 1, 4096, true), 32)
      .option('--lr <lr>', 'peak learning rate', num('lr', 0), 5e-4)
      .option('--max-length <n>', 'tokens per example', num('max-length', 8, 512, true), 64)
      .option('--seed <s>', 'random seed', num('seed', 0, 2 ** 32, true), 0)
      .option('-o, --out <dir>', 'run folder: checkpoints every --save-every steps, final/ (weights + vocab.txt) at the end; rerunning the same command resumes from the latest checkpoint, or reports a finished run')
      .option('--save-every <n>', `with -o: checkpoint every n steps (default ${DEFAULT_SAVE_EVERY})`, num('save-every', 1, 1e9, true))
      .option('--force', 'with -o: replace a non-empty folder that is not this run, or retrain a finished run from step 0')
      .option('--from-scratch', 'fine-tune a randomly initialised model of the same config and vocabulary (the no-pretraining baseline)')
      .option('--json', 'print JSON')
      .action((o: { model: string; task: string; steps: number; batchSize: number; lr: number; maxLength: number; seed: number; out?: string; saveEvery?: number; force?: boolean; fromScratch?: boolean; json?: boolean }) => {
        if (!GLUE_TASKS.includes(o.task)) throw new Error(`--task must be one of sst2, mrpc, rte, cola, got '${o.task}'`);
        if (o.saveEvery !== undefined && !o.out) throw new Error('--save-every needs -o <dir> (the checkpoints go there)');
        if (o.force && !o.out) throw new Error('--force needs -o <dir> (without it nothing is written)');
        if (o.out) checkOutPath(o.out);
        const r = finetuneGlue({
          modelDir: o.model, task: o.task as GlueTask, steps: o.steps, batchSize: o.batchSize, lr: o.lr, maxLength: o.maxLength, seed: o.seed,
          outDir: o.out, saveEvery: o.saveEvery, force: o.force, fromScratch: o.fromScratch, log: note, onLog: progress(name, o.steps, o.json),
        });
        out(o.json ? JSON.stringify(r) + '\n' : formatFinetune(r, `${name}: ${o.model}${o.fromScratch ? ' (from scratch)' : ''}`));
      });
  program
    .command('teacher')
    .description('The fine-tuned teacher of a GLUE task: fine-tunes the pretrained BERT teacher once with the documented settings into the cache ($SHRINK_CACHE, default ~/.cache/shrink), then reuses it; prints its folder (recipes can name it as "model": "teacher:<task>")')
    .argument('<task>', 'sst2, mrpc, rte or cola')
    .option('--base <dir>', 'pretrained BERT folder to fine-tune (default: data/models/bert-minilm when shipped, else data/models/bert-teacher)')
    .option('--steps <n>', 'fine-tuning steps instead of the documented ones (a different cached teacher)', num('steps', 1, 1e9, true))
    .option('--json', 'print JSON')
    .action((task: string, o: { base?: string; steps?: number; json?: boolean }) => {
      if (!GLUE_TASKS.includes(task)) throw new Error(`<task> must be one of sst2, mrpc, rte, cola, got '${task}'`);
      const steps = o.steps ?? TEACHER_SETTINGS[task as GlueTask].steps;
      const r = ensureTeacher(task as GlueTask, { base: o.base, settings: o.steps ? { steps } : {}, log: note, onLog: progress('teacher', steps, o.json) });
      out(o.json ? JSON.stringify({ dir: r.dir, cached: r.cached, ...r.result }) + '\n' : `${formatFinetune(r.result, `teacher ${task}${r.cached ? ' (cached)' : ''}: ${r.dir}`)}`);
    });
  program
    .command('eval')
    .description('Evaluate a model folder: GLUE dev metric of a BERT classifier, or perplexity of a causal LM on a text file; with size and latency')
    .argument('<model>', 'model folder')
    .option('-t, --task <task>', "sst2, mrpc, rte, cola, or ppl (default: config.json's finetuning_task; else ppl with --text, else sst2)")
    .option('--text <file>', 'text file for --task ppl')
    .option('--block-size <n>', 'tokens per perplexity window (capped at the model\'s context)', num('block-size', 2, 1e6, true), 256)
    .option('--stride <n>', 'sliding-window perplexity: move windows by n tokens, scoring only new tokens (default: disjoint blocks)', num('stride', 1, 1e6, true))
    .option('--max-tokens <n>', 'evaluate only the first n tokens', num('max-tokens', 2, 1e9, true))
    .option('--moe-top-k <k>', 'MoE models: experts per token for this evaluation (the folder keeps its own)', num('moe-top-k', 1, 1024, true))
    .option('--moe-capacity <cf>', 'MoE models: the layers\' evaluation capacity factor CF, an expert taking round(CF·tokens/E) routed choices of a sequence (pretrain --moe-experts records 2.0·k, i.e. 2.0 per choice; the folder keeps its own)', num('moe-capacity', 0))
    .option('--json', 'print JSON')
    .action((dir: string, o: { task?: string; text?: string; blockSize: number; stride?: number; maxTokens?: number; moeTopK?: number; moeCapacity?: number; json?: boolean }) => {
      // the task a classifier was fine-tuned on is in its config.json: default to it, and warn on a mismatch (its
      // head's labels mean something else on another task, so the score is meaningless)
      if (o.task?.startsWith('ppl:')) [o.task, o.text] = ['ppl', o.task.slice(4)]; // -t ppl:<file>
      const cfg = readConfig(dir);
      const trained = typeof cfg.finetuning_task === 'string' && GLUE_TASKS.includes(cfg.finetuning_task) ? cfg.finetuning_task : undefined;
      o.task ??= trained ?? (o.text ? 'ppl' : 'sst2');
      if (trained && o.task !== trained)
        note(`warning: ${dir} was fine-tuned on ${trained} (config.json finetuning_task), not ${o.task}: its classifier head's labels are ${trained}'s, so this score says nothing about the model`);
      let r;
      const moe = { topK: o.moeTopK, capacityFactor: o.moeCapacity };
      if (o.moeCapacity !== undefined && !(o.moeCapacity > 0)) throw new Error(`--moe-capacity must be > 0, got ${o.moeCapacity}`);
      if (o.task === 'ppl') {
        if (!o.text) throw new Error('--task ppl needs --text <file>');
        if (wantsMemory(o)) {
          if (o.moeTopK !== undefined || o.moeCapacity !== undefined) throw new Error('--moe-top-k / --moe-capacity do not combine with --datastore / --cache');
          return void out(runMemoryEval(dir, o.text, o)); // --datastore / --cache (src/cli/datastore.ts)
        }
        r = evalPerplexity(dir, o.text, { blockSize: o.blockSize, stride: o.stride, maxTokens: o.maxTokens, moe });
      } else if (['sst2', 'mrpc', 'rte', 'cola'].includes(o.task)) r = evalGlue(dir, o.task as GlueTask, { moe });
      else throw new Error(`--task must be one of sst2, mrpc, rte, cola, ppl, got '${o.task}'`);
      if (o.json) out(JSON.stringify(r) + '\n');
      else
        out(
          [`| eval: ${dir} | value |`, '| --- | --- |', `| task | ${r.task} |`, `| ${r.metric} | ${r.metric === 'perplexity' ? r.score.toFixed(3) : (r.score * 100).toFixed(2)} |`,
            `| parameters | ${r.parameters.toLocaleString('en-US')} |`, `| size | ${formatBytes(r.bytes)} |`,
            `| latency | ${r.latencyMs.toFixed(3)} ms / ${r.metric === 'perplexity' ? 'token' : 'example'} |`, ...(r.tokens ? [`| tokens | ${r.tokens} |`] : [])].join('\n') + '\n',
        );
    });

  program
    .command('quantize')
    .description('Quantize a model folder: int8 weight-only, int8 dynamic (int8 activations on the integer GEMM), int8 static, int4/int3 group-wise (round-to-nearest or GPTQ), or an fp16/bf16 cast; writes a folder that eval/predict load directly')
    .argument('<model>', 'float model folder')
    .requiredOption('-o, --out <dir>', 'output folder (must be new or empty unless --force; written atomically)')
    .option('--scheme <s>', 'int8 (weight-only) | int8-dynamic | int8-static (calibrated activation ranges) | int4 | fp16 | bf16', 'int8')
    .option('--bits <n>', 'int4 scheme only: 4, 3 or 2 bits (stored two codes per byte)', num('bits', 2, 8, true))
    .option('--granularity <g>', 'tensor | channel | group:<size> (default: channel for int8, group:64 for int4; int4 group sizes must be even)')
    .option('--asymmetric', 'use a zero point (default for int4; int8 defaults to symmetric)')
    .option('--symmetric', 'no zero point (GPTQ sym for int4)')
    .option('--int4-formula <f>', `int4 scale/zero formula: gptq (IST-DASLab/gptq Quantizer, the default) | awq (llm-awq, asymmetric) | absmax (symmetric, ±max/7)`)
    .option('--method <m>', 'rtn | gptq | qat (quantization-aware fine-tuning of a BERT folder on --task, then conversion)', 'rtn')
    .option('-t, --task <task>', 'qat: GLUE task to fine-tune on (sst2, mrpc, rte, cola)', 'sst2')
    .option('--steps <n>', 'qat: optimizer steps', num('steps', 1, 1e9, true), 500)
    .option('--lr <lr>', 'qat: peak learning rate', num('lr', 0), 1e-4)
    .option('--calib <data>', `GPTQ / int8-static / --report calibration data: ${CALIBRATION_SOURCES.join(', ')} (default: sst2 for BERT, wikitext2 for causal LMs)`)
    .option('--calib-samples <n>', 'calibration examples / blocks', num('calib-samples', 1, 1e6, true), 128)
    .option('--calib-seq-len <n>', 'tokens per calibration example / block', num('calib-seq-len', 2, 8192, true), 128)
    .option('--percdamp <x>', 'GPTQ dampening, a fraction of the mean Hessian diagonal', num('percdamp', 0, 10), 0.01)
    .option('--act-order', 'GPTQ: quantize columns by descending Hessian diagonal')
    .option('--no-embeddings', 'keep embeddings in float32')
    .option('--ignore <globs>', 'comma-separated module-name globs to keep in float32 (e.g. "classifier,**.pooler.dense")')
    .option('--observer <kind>', 'int8-static: activation range calibration, minmax | percentile | mse', 'minmax')
    .option('--percentile <p>', 'int8-static with --observer percentile: the percentile kept', num('percentile', 50, 100), 99.99)
    .option('--report', 'per-layer output error (relative MSE against float32) on the calibration data')
    .option('--max-shard-size <size>', 'split the output into model-0000N-of-0000M.safetensors shards of at most this size (e.g. 2GB, 500MB), each written as soon as it fills', '1GiB')
    .option('--checkpoint-every <minutes>', 'GPTQ on a decoder: checkpoint after a block when this many minutes passed since the last (in .<out>.quantize-run; the same command resumes there)', num('checkpoint-every', 0, 1440), 5)
    .option('--force', 'replace a non-empty output folder (the old one stays until the new one is complete)')
    .option('--json', 'print JSON')
    .action((dir: string, o: QuantizeCliOptions, cmd: Command) => {
      // every flag is checked against the scheme and method before any work (QAT trains for minutes first)
      const given = (key: keyof QuantizeCliOptions) => cmd.getOptionValueSource(key) === 'cli';
      const q = checkQuantizeFlags(o, given);
      const maxShardBytes = parseByteSize(o.maxShardSize ?? '1GiB');
      checkOutDir(o.out, { force: o.force });
      const io = { force: o.force };
      const type = String(readConfig(dir).model_type); // the input folder is checked before the warning below
      if (!hasTokenizer(dir))
        note(`warning: ${dir} has no tokenizer (looked for ${TOKENIZER_FILES.slice(0, 5).join(', ')}, …); ${o.out} will load with fromPretrained, but eval and predict need one: copy the tokenizer files of the original model into it`);
      if (o.scheme === 'fp16' || o.scheme === 'bf16') {
        const r = castFolder(dir, o.out, o.scheme === 'fp16' ? 'float16' : 'bfloat16', io);
        if (o.json) out(JSON.stringify({ out: r.out, dtype: r.dtype, tensors: r.tensors, fileBytesBefore: r.fileBytesBefore, fileBytesAfter: r.fileBytesAfter, ratio: r.fileBytesAfter / r.fileBytesBefore, ms: Math.round(r.ms) }) + '\n');
        else
          out([`| quantize: ${dir} | value |`, '| --- | --- |', `| scheme | ${o.scheme} cast (${r.tensors} tensors) |`,
            `| model.safetensors | ${formatBytes(r.fileBytesBefore)} → ${formatBytes(r.fileBytesAfter)} (${((100 * r.fileBytesAfter) / r.fileBytesBefore).toFixed(1)} %) |`, `| output | ${r.out} |`].join('\n') + '\n');
        return;
      }
      // a shortcut for a one-step recipe: the step is built from the flags and checked like any recipe step
      const step: RecipeStep = {
        method: `quant.${o.method}`,
        scheme: o.scheme,
        ...(o.bits !== undefined ? { bits: o.bits } : {}),
        ...(o.granularity ? { granularity: o.granularity } : {}),
        ...(o.asymmetric ? { symmetric: false } : o.symmetric ? { symmetric: true } : {}),
        ...(o.int4Formula ? { formula: o.int4Formula } : {}),
        ...(q.ignore ? { ignore: q.ignore } : {}),
        embeddings: o.embeddings,
        ...(o.scheme === 'int8-static' ? { observer: o.observer, percentile: o.percentile } : {}),
        ...(o.method === 'gptq' ? { percdamp: o.percdamp, act_order: o.actOrder ?? false } : {}),
      };
      const recipe: Recipe = { steps: [step], ...(o.method === 'qat' ? { task: o.task, train: { steps: o.steps, lr: o.lr } } : {}) };
      const raw = readConfig(dir);
      // QAT fine-tunes a BERT folder as a classifier on --task: its module names are the classifier's
      const skeleton = withoutInit(() => modelFromConfig(raw, o.method === 'qat' && raw.model_type === 'bert' ? 'BertForSequenceClassification' : undefined));
      const names = skeleton.namedModules().map(([n]) => n).filter(Boolean);
      for (const g of q.ignore ?? [])
        if (!names.some((n) => matchesAny(n, [g]))) throw new Error(`--ignore '${g}' matches no module of ${skeleton.constructor.name} (names look like ${names.filter((n) => n.split('.').length > 2).slice(0, 2).join(', ')}; see shrink inspect)`);
      const resolved = resolvedRecipe(recipe, resolveSteps(recipe, skeleton, 'shrink quantize'));
      if (o.method === 'qat') {
        const bar = progress('qat', o.steps, o.json);
        const r = compressFolder(dir, { recipe: { recipe, where: 'shrink quantize --method qat' }, out: o.out, force: o.force, classifierFromTask: true, onLog: (_stage, e) => bar(e) });
        const f: FinetuneResult = { task: o.task as GlueTask, metric: r.metric_name!, score: r.after.metric!, parameters: r.after.params, bytes: r.after.bytes, latencyMsPerExample: r.after.latency_ms_b32 / 32, steps: o.steps };
        out(o.json ? JSON.stringify({ ...f, out: o.out, before: r.before, after: r.after }) + '\n' : formatFinetune(f, `quantize --method qat (${o.scheme}): ${dir}`));
        return;
      }
      const needsCalib = o.method === 'gptq' || o.scheme === 'int8-static';
      const calib = needsCalib || o.report ? calibrationBatches(dir, o.calib ?? (type === 'bert' ? 'sst2' : 'wikitext2'), { samples: o.calibSamples, seqLen: o.calibSeqLen }) : undefined;
      const r = quantizeFolder(
        dir,
        o.out,
        {
          scheme: o.scheme as QuantScheme,
          bits: o.bits,
          granularity: q.granularity,
          groupSize: q.groupSize,
          symmetric: o.asymmetric ? false : o.symmetric ? true : undefined,
          formula: (o.int4Formula ?? 'gptq') as Int4Formula,
          method: o.method as 'rtn' | 'gptq',
          calibration: calib && needsCalib ? () => calib : undefined,
          observer: o.observer as ObserverKind,
          percentile: o.percentile,
          percdamp: o.percdamp,
          actOrder: o.actOrder,
          embeddings: o.embeddings,
          ignore: q.ignore,
          log: o.json ? undefined : (l) => process.stderr.write(l + '\n'),
        },
        {
          ...io,
          recipe: resolved,
          maxShardBytes,
          checkpointEverySeconds: 60 * o.checkpointEvery,
          onCheckpoint: (e, b) => note(e === 'resumed' ? `resuming GPTQ after block ${b} from ${quantizeRunDir(o.out)}` : `checkpoint: blocks 0–${b - 1} done (${quantizeRunDir(o.out)}; if stopped, run the same command again to resume)`),
        },
      );
      const n = Object.keys(r.modules).length;
      let errs;
      if (o.report && calib) {
        const qm = fromPretrained(r.out);
        const layers = qm.namedModules().map(([k]) => k).filter((k) => r.modules[k] && r.modules[k]!.type !== 'embedding');
        errs = layerErrors(fromPretrained(dir), qm, layers, calib.slice(0, 4));
      }
      if (o.json) out(JSON.stringify({ out: r.out, modules: n, fileBytesBefore: r.fileBytesBefore, fileBytesAfter: r.fileBytesAfter, ratio: r.fileBytesAfter / r.fileBytesBefore, ms: Math.round(r.ms), peakRssMb: r.peakRssMb, boundMb: r.boundMb, files: r.files, padded: r.padded, gptqLoss: r.gptqLoss, layerErrors: errs }) + '\n');
      else
        out(
          [`| quantize: ${dir} | value |`, '| --- | --- |', `| scheme | ${o.scheme}${o.scheme === 'int4' ? ` (${o.bits ?? 4} bits)` : ''}, ${o.method} |`, `| modules quantized | ${n} |`, ...(r.padded ? [`| zero-padded in_features | ${Object.keys(r.padded).length} modules (group size does not divide them) |`] : []),
            `| weights | ${formatBytes(r.fileBytesBefore)} → ${formatBytes(r.fileBytesAfter)} (${((100 * r.fileBytesAfter) / r.fileBytesBefore).toFixed(1)} %) in ${r.files.length === 1 ? r.files[0] : `${r.files.length} shards`} |`, `| time | ${(r.ms / 1000).toFixed(1)} s |`, `| peak resident memory | ${r.peakRssMb.toLocaleString('en-US')} MiB${r.boundMb !== undefined ? ` (streaming bound for this model: ${r.boundMb.toLocaleString('en-US')} MiB)` : ''} |`, `| output | ${r.out} |`].join('\n') + '\n' + (errs ? '\n' + formatLayerErrors(errs) : ''),
        );
    });

  trainCmd('train', 'Fine-tune a BERT folder on a GLUE task and report the dev metric, size and latency', { steps: 2000 });
  trainCmd('demo', 'The main job: fine-tune the bundled BERT teacher on the bundled SST-2 and print accuracy, size and latency', { steps: 1000 });
  registerCompress(program, out);
  registerSearch(program, out);
  registerPlot(program, out);
  registerAugment(program, out);
  registerExport(program, out);
  registerReport(program, out);
  registerDatastore(program, out);
  registerMakeRandom(program, out);
  return program;
}

/** Run the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    process.stderr.write(`shrink: ${e instanceof Error ? e.message : String(e)}\n`);
    // Ctrl-C: the run stopped cleanly (checkpoint saved where it has a folder); 128 + SIGINT, as shells report it
    return e instanceof TrainingInterrupted ? e.exitCode : 1;
  }
}
