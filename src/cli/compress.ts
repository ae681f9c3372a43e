/**
 * `shrink compress <model> --recipe <file> -o <dir>`: run any recipe on a model folder and write the compressed
 * folder, with a before/after table (parameters, bytes, metric, latency at batch 1 and 32) that is also saved as
 * `<dir>/report.json`. Everything that can be checked is checked before any work (recipe fields, methods, globs,
 * task, output folder); the output folder is written whole or not at all; training stages checkpoint into a
 * hidden sibling folder `.<dir>.compress-run`, so a killed or interrupted run resumes where it stopped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import YAML from 'yaml';
import type { Module } from '../nn/module.ts';
import { fromPretrained, modelFromConfig, savePretrained } from '../models/registry.ts';
import type { ModelInputs } from '../models/outputs.ts';
import { readConfig } from '../io/hf.ts';
import { parseByteSize } from '../io/shards.ts';
import { withoutInit } from '../nn/init.ts';
import { peakRssMb, streamFolder, weightsBytes, type StreamResult } from '../compress/stream.ts';
import { copyTokenizerFiles } from '../io/tokenizer-files.ts';
import { checkOutDir, writeDirAtomic } from '../io/outdir.ts';
import { atomicWriteJson } from '../io/atomic.ts';
import { MAX_JSON_FILE_BYTES, ShrinkError, asShrinkError } from '../io/errors.ts';
import { ensureTeacher } from '../train/teachers.ts';
import { GLUE_TASKS } from '../data/glue.ts';
import { noGrad } from '../tensor/autograd.ts';
import { modelSize } from '../eval/size.ts';
import { measureLatency } from '../eval/latency.ts';
import { listMethods } from '../compress/method.ts';
import { checkRun, parseRecipe, resolveSteps, resolveTrain, resolvedRecipe, runSteps, type Recipe, type StepReport } from '../compress/runner.ts';
import { classifierFor, isTaskName, taskData, type TaskData } from '../compress/tasks.ts';
import type { LogEntry } from '../train/trainer.ts';
import { TrainingInterrupted } from '../train/bert-tasks.ts';
import type { GlueTask } from '../data/glue.ts';
import { progress } from './progress.ts';
import { formatBytes } from './inspect.ts';
import { formatKernelChoices, quantKernelTable } from '../compress/quant/modules.ts';
import { layerSparsity, layerWeights, quantLayerErrors, quantizedLayers, type LayerStats } from '../report/layers.ts';
import '../compress/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Measured {
  params: number;
  bytes: number;
  metric: number | null;
  latency_ms_b1: number;
  latency_ms_b32: number;
  /** Quantized layers only: the kernel each ran in the latency runs, per shape class, and why (kernels.ts chooseKernel). */
  kernels?: Record<string, string>;
}

export interface CompressReport {
  model: string;
  out: string;
  task: string | null;
  metric_name: string | null;
  before: Measured;
  after: Measured;
  steps: StepReport[];
  /** Per-layer numbers for `shrink report` (src/report/layers.ts): sparsity when the recipe prunes, error of quantized layers. */
  layers?: LayerStats;
  recipe: Record<string, unknown>;
  /** The command that reproduces `after.metric` from the saved folder. */
  eval_command: string | null;
  seconds: number;
}

/** Read a recipe file (.json, .yaml or .yml); errors name the file (ShrinkError). */
export function readRecipe(file: string): Recipe {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new ShrinkError(`recipe ${file}: not a regular file`, { file });
    if (st.size > MAX_JSON_FILE_BYTES) throw new ShrinkError(`recipe ${file}: ${st.size} bytes is larger than the ${MAX_JSON_FILE_BYTES}-byte limit for a recipe`, { file });
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof ShrinkError) throw e;
    throw new ShrinkError(`recipe ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file, cause: e });
  }
  const yaml = /\.ya?ml$/i.test(file);
  let raw: unknown;
  try {
    // YAML: warnings are not printed (an error is one line); aliases are capped by the yaml package (maxAliasCount)
    raw = yaml ? YAML.parse(text, { logLevel: 'error' }) : JSON.parse(text);
  } catch (e) {
    throw new ShrinkError(`recipe ${file}: not valid ${yaml ? 'YAML' : 'JSON'}: ${(e as Error).message.split('\n')[0]}`, { file, cause: e });
  }
  try {
    return parseRecipe(raw, `recipe ${file}`);
  } catch (e) {
    throw asShrinkError(e, file, `recipe ${file}`, 'checking the recipe');
  }
}

/** A path from a recipe: as given when it exists from the working directory, else relative to the package. */
function resolvePath(p: string): string {
  if (path.isAbsolute(p) || fs.existsSync(p)) return p;
  const inPkg = path.join(ROOT, p);
  return fs.existsSync(inPkg) ? inPkg : p;
}

/**
 * A recipe's `train.data` path: absolute as given; relative, against the recipe file's folder (when the recipe is
 * a file and the path exists there), else as `model` is (the working directory, then the package). A path found
 * nowhere is returned against the recipe's folder (or as given), so the error names where it was looked for.
 */
export function resolveDataPath(p: string, recipeFile: string | null): string {
  if (path.isAbsolute(p)) return p;
  if (recipeFile !== null) {
    const inRecipeDir = path.join(path.dirname(path.resolve(recipeFile)), p);
    if (fs.existsSync(inRecipeDir)) return inRecipeDir;
    const other = resolvePath(p);
    return fs.existsSync(other) ? path.resolve(other) : inRecipeDir;
  }
  return path.resolve(resolvePath(p));
}

/** A model folder, or `teacher:<task>`: the fine-tuned teacher of a GLUE task (trained once into the cache, see train/teachers.ts). */
function resolveModel(p: string | undefined, log?: (line: string) => void): string | undefined {
  if (p === undefined) return undefined;
  if (!p.startsWith('teacher:')) return resolvePath(p);
  const task = p.slice('teacher:'.length);
  if (!(GLUE_TASKS as readonly string[]).includes(task)) throw new ShrinkError(`model '${p}': expected teacher:<task> with a task of ${GLUE_TASKS.join(', ')}`);
  return ensureTeacher(task as GlueTask, { log }).dir;
}

/** Parameters, bytes, task metric and warm latency (1 warm-up, best of 5) at batch 1 and 32. */
export function measure(model: Module, task: TaskData | null, latency: { b1: ModelInputs; b32: ModelInputs } | null): Measured {
  const { parameters, bytes } = modelSize(model);
  model.eval();
  const fwd = (x: ModelInputs) => () => void noGrad(() => (model as unknown as { forward(i: ModelInputs): unknown }).forward(x));
  const lat = (x: ModelInputs | undefined) => (x ? +measureLatency(fwd(x), { warmup: 1, repeats: 5 }).bestMs.toFixed(3) : NaN);
  const m: Measured = {
    params: parameters,
    bytes,
    metric: task ? task.evaluate(model) : null,
    latency_ms_b1: lat(latency?.b1),
    latency_ms_b32: lat(latency?.b32),
  };
  const k = quantKernelTable(model, false).filter((l) => Object.keys(l.kernels).length > 0);
  if (k.length) m.kernels = Object.fromEntries(k.map((l) => [l.name, `${l.scheme} ${l.shape.join('×')}: ${formatKernelChoices(l.kernels)}`]));
  return m;
}

export interface CompressOptions {
  /** A recipe file, or a recipe already in memory (`where` names it in errors). */
  recipe: string | { recipe: Recipe; where: string };
  out: string;
  task?: string;
  steps?: number;
  /** Recipe-level `train.data` (`--train-data`): train on this TSV instead of the task's train split; relative to the working directory. */
  trainData?: string;
  /** Recipe overrides, `path=value` (see {@link applySet}). */
  set?: string[];
  force?: boolean;
  json?: boolean;
  /** A BERT that is not yet a classifier (an MLM teacher) gets the GLUE task's classification head (random). */
  classifierFromTask?: boolean;
  log?: (line: string) => void;
  /** What a user must see even without `log` (e.g. an unfinished run discarded by --force); default: stderr, `shrink: warning: …`. */
  warn?: (line: string) => void;
  onLog?: (stage: number, e: LogEntry, total: number) => void;
}

/**
 * `--set path=value`: change one field of the recipe before it is checked, e.g. `steps.0.target_sparsity=0.8`,
 * `train.lr=3e-5`, `task=mrpc`. The path is dotted keys and list indices that must exist up to the last one; the
 * value is JSON (numbers, true/false, null, [lists]) or else a plain string. For sweeps without one file per point.
 */
export function applySet(recipe: Record<string, unknown>, assignment: string, where: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ShrinkError(`--set '${assignment}': expected path=value (e.g. steps.0.target_sparsity=0.8)`);
  const keys = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  let node: unknown = recipe;
  for (const [i, k] of keys.entries()) {
    const last = i === keys.length - 1;
    const path = keys.slice(0, i + 1).join('.');
    if (Array.isArray(node)) {
      const j = Number(k);
      if (!Number.isInteger(j) || j < 0 || j >= node.length) throw new ShrinkError(`--set ${path}: ${where} has no item ${k} there (${node.length} items)`);
      if (last) node[j] = value;
      else node = node[j];
    } else if (node !== null && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (last) o[k] = value;
      else {
        if (o[k] === undefined && keys[i + 1] !== undefined && !/^\d+$/.test(keys[i + 1]!)) o[k] = {};
        if (o[k] === undefined) throw new ShrinkError(`--set ${path}: ${where} has no field '${k}' there`);
        node = o[k];
      }
    } else throw new ShrinkError(`--set ${path}: ${keys.slice(0, i).join('.')} is not an object or list in ${where}`);
  }
}

/** The first place two JSON values differ, as `path: a → b` (null when equal). */
export function jsonDifference(a: unknown, b: unknown, at = ''): string | null {
  const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v).slice(0, 60));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) {
      const d = jsonDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
      if (d) return d;
    }
    return null;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? null : `${at || '(whole)'}: ${show(a)} → ${show(b)}`;
}

/**
 * The run folder's identity (model, task, teacher, resolved recipe) in `run.json`: a rerun resumes only the same job.
 * An unfinished run of another job is an error naming the first difference, or, with --force, discarded (and said).
 * A folder without run.json (written before it existed) is resumed as before.
 */
function openRunDir(runDir: string, identity: Record<string, unknown>, o: { force?: boolean; warn?: (line: string) => void }): void {
  const file = path.join(runDir, 'run.json');
  if (fs.existsSync(file)) {
    let saved: unknown;
    try {
      saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      saved = null;
    }
    const diff = jsonDifference(saved, JSON.parse(JSON.stringify(identity)));
    if (diff === null) return;
    if (!o.force) throw new ShrinkError(`${runDir} holds an unfinished run of another job (${diff}); run that job again to resume it, or pass --force to discard it`, { file });
    (o.warn ?? ((l: string) => process.stderr.write(`shrink: warning: ${l}\n`)))(`discarding ${runDir}: an unfinished run of another job (${diff})`);
    fs.rmSync(runDir, { recursive: true, force: true });
  } else if (fs.existsSync(runDir)) return;
  fs.mkdirSync(runDir, { recursive: true });
  atomicWriteJson(file, identity);
}

/** The whole `shrink compress` job: the report, or where training stopped when interrupted (checkpoints kept). */
export function compressFolder(modelArg: string | undefined, o: CompressOptions): CompressReport {
  const t0 = performance.now();
  const recipe = typeof o.recipe === 'string' ? readRecipe(o.recipe) : o.recipe.recipe;
  const where = typeof o.recipe === 'string' ? `recipe ${o.recipe}` : o.recipe.where;
  if (o.steps !== undefined) recipe.train = { ...(recipe.train ?? {}), steps: o.steps };
  for (const s of o.set ?? []) applySet(recipe as unknown as Record<string, unknown>, s, where);
  // train.data: the recipe's paths against its folder, --train-data's against the working directory
  const recipeFile = typeof o.recipe === 'string' ? o.recipe : null;
  for (const t of [recipe.train, ...recipe.steps.map((st) => st.train)]) if (t && typeof t.data === 'string' && t.data !== '') t.data = resolveDataPath(t.data, recipeFile);
  if (o.trainData !== undefined) recipe.train = { ...(recipe.train ?? {}), data: path.resolve(o.trainData) };
  if (o.set?.length || o.trainData !== undefined) parseRecipe(recipe, where); // overrides are checked like the file
  const modelDir = resolveModel(modelArg ?? recipe.model, o.log);
  if (!modelDir) throw new Error(`no model: give <model> or a "model" field in ${where}`);
  const taskName = o.task ?? recipe.task;
  if (taskName !== undefined && !isTaskName(taskName)) throw new Error(`--task must be one of sst2, mrpc, rte, cola, or ppl:<text file>, got '${taskName}'`);
  checkOutDir(o.out, { force: o.force });
  const config = readConfig(modelDir);
  const glue = taskName !== undefined && !taskName.startsWith('ppl:');
  const model = (
    glue && o.classifierFromTask && config.model_type === 'bert' && !(config.architectures as string[] | undefined)?.includes('BertForSequenceClassification')
      ? classifierFor(modelDir, taskName as GlueTask)
      : fromPretrained(modelDir)
  ) as Module & { config: Record<string, unknown> };
  if (taskName && !taskName.startsWith('ppl:') && model.constructor.name !== 'BertForSequenceClassification')
    throw new Error(`${modelDir}: task ${taskName} needs a fine-tuned classifier (BertForSequenceClassification), got ${model.constructor.name}; fine-tune it first with 'shrink train' (data/models/bert-teacher-sst2 is one)`);
  if (taskName?.startsWith('ppl:') && !['gpt2', 'llama'].includes(String(config.model_type)))
    throw new Error(`${modelDir}: task ${taskName} needs a causal LM (gpt2 or llama), got model_type '${String(config.model_type)}'`);
  const steps = resolveSteps(recipe, model, where);
  const train = resolveTrain(recipe);
  const task = taskName ? taskData(modelDir, taskName.startsWith('ppl:') ? `ppl:${resolvePath(taskName.slice(4))}` : taskName, { batchSize: train.batch_size, maxLength: train.max_length, seed: train.seed }) : null;
  const teacherDir = recipe.teacher ? resolveModel(recipe.teacher, o.log)! : modelDir;
  const runOpts = {
    task: task ?? undefined,
    teacher: () => fromPretrained(teacherDir),
    calibration: task ? () => task.calibration(recipe.calibration_samples ?? 128) : undefined,
    log: o.log,
  };
  checkRun(model, steps, runOpts, where, train, o.trainData !== undefined ? 'train.data (--train-data)' : 'train.data');
  const latency = task ? { b1: task.latencyInputs(1), b32: task.latencyInputs(32) } : null;

  const runDir = path.join(path.dirname(path.resolve(o.out)), `.${path.basename(path.resolve(o.out))}.compress-run`);
  openRunDir(runDir, { model: path.resolve(modelDir), task: taskName ?? null, teacher: path.resolve(teacherDir), recipe: resolvedRecipe(recipe, steps) }, o);
  o.log?.(`measuring ${modelDir}${task ? ` on ${task.name}` : ''}`);
  const before = measure(model, task, latency);
  const weightsBefore = steps.some((s) => s.method.name.startsWith('prune.')) ? layerWeights(model) : null;
  const result = runSteps(model, steps, train, { ...runOpts, checkpointDir: runDir, resume: true, onLog: o.onLog });
  if (result.interrupted) {
    const stage = result.history.length;
    const step = result.history[stage - 1]?.at(-1)?.step ?? 0;
    throw new TrainingInterrupted(step, train.steps, path.join(runDir, `stage-${stage}`), 'run the same command again to resume');
  }
  o.log?.('measuring the compressed model');
  const after = measure(model, task, latency);
  const layers: LayerStats = {};
  if (weightsBefore) layers.sparsity = layerSparsity(weightsBefore, layerWeights(model));
  if (task && quantizedLayers(model).length)
    try {
      layers.error = quantLayerErrors(fromPretrained(modelDir), model, task.calibration(32).slice(0, 4));
    } catch (e) {
      o.log?.(`per-layer error left out of report.json: ${(e as Error).message}`);
    }
  const report: CompressReport = {
    model: modelDir,
    out: o.out,
    task: task?.name ?? null,
    metric_name: task?.metric ?? null,
    before,
    after,
    steps: result.steps,
    ...(Object.keys(layers).length ? { layers } : {}),
    recipe: resolvedRecipe(recipe, steps),
    eval_command: task ? ['shrink', 'eval', o.out, ...task.evalArgs].join(' ') : null,
    seconds: +((performance.now() - t0) / 1000).toFixed(1),
  };
  writeDirAtomic(
    o.out,
    (tmp) => {
      savePretrained(model, tmp, { recipe: JSON.stringify(report.recipe) }, glue ? { finetuning_task: taskName } : {});
      copyTokenizerFiles(modelDir, tmp);
      atomicWriteJson(path.join(tmp, 'report.json'), report);
      // each stage's log.jsonl from its checkpoint folder: the whole run, across interruptions and resumes
      const logs = result.history
        .map((_, i) => path.join(runDir, `stage-${i + 1}`, 'log.jsonl'))
        .map((f, i) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.stringify({ stage: i + 1, ...JSON.parse(l) })).join('\n') : ''))
        .filter(Boolean);
      if (logs.length) fs.writeFileSync(path.join(tmp, 'log.jsonl'), logs.join('\n') + '\n');
    },
    { force: o.force },
  );
  fs.rmSync(runDir, { recursive: true, force: true });
  return report;
}

function fmtMetric(name: string | null, v: number | null): string {
  if (v === null || name === null) return '—';
  return name === 'perplexity' ? v.toFixed(3) : `${(v * 100).toFixed(2)}`;
}

/** The before/after table. */
export function formatReport(r: CompressReport): string {
  const ratio = (a: number, b: number) => (b ? `${(a / b).toFixed(2)}×` : '');
  const rows: [string, string, string, string][] = [
    ['parameters', r.before.params.toLocaleString('en-US'), r.after.params.toLocaleString('en-US'), ratio(r.after.params, r.before.params)],
    ['size', formatBytes(r.before.bytes), formatBytes(r.after.bytes), ratio(r.after.bytes, r.before.bytes)],
    ...(r.metric_name ? [[`${r.metric_name} (${r.task})`, fmtMetric(r.metric_name, r.before.metric), fmtMetric(r.metric_name, r.after.metric), ''] as [string, string, string, string]] : []),
    ['latency b1 (ms)', r.before.latency_ms_b1.toFixed(2), r.after.latency_ms_b1.toFixed(2), ratio(r.after.latency_ms_b1, r.before.latency_ms_b1)],
    ['latency b32 (ms)', r.before.latency_ms_b32.toFixed(2), r.after.latency_ms_b32.toFixed(2), ratio(r.after.latency_ms_b32, r.before.latency_ms_b32)],
  ];
  const steps = r.steps.map((s) => `| ${s.step} | ${s.method} | ${s.kind} | ${Object.entries(s).filter(([k]) => !['step', 'method', 'kind', 'stage', 'ms'].includes(k)).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toFixed(4) : v}`).join(', ')} | ${(s.ms / 1000).toFixed(1)} s |`);
  return [
    `| compress: ${r.model} → ${r.out} | before | after | after/before |`,
    '| --- | --- | --- | --- |',
    ...rows.map((x) => `| ${x.join(' | ')} |`),
    '',
    '| step | method | kind | result | time |',
    '| --- | --- | --- | --- | --- |',
    ...steps,
    '',
    `(${r.seconds} s; latency: 1 warm-up + best of 5; report in ${path.join(r.out, 'report.json')})`,
  ].join('\n') + '\n';
}

export interface StreamCompressReport extends StreamResult {
  model: string;
  recipe: Record<string, unknown>;
}

/**
 * `shrink compress --stream`: the recipe's steps (one-shot, local methods) run block by block on the model folder
 * (compress/stream.ts); the report (also `<out>/report.json`) has bytes, shards, peak memory against the
 * streaming bound, and each step's numbers.
 */
export function streamCompress(modelArg: string | undefined, o: { recipe: string; out: string; set?: string[]; force?: boolean; maxShardBytes?: number; log?: (line: string) => void }): StreamCompressReport {
  const recipe = readRecipe(o.recipe);
  const where = `recipe ${o.recipe}`;
  for (const s of o.set ?? []) applySet(recipe as unknown as Record<string, unknown>, s, where);
  if (o.set?.length) parseRecipe(recipe, where);
  const modelDir = resolveModel(modelArg ?? recipe.model, o.log);
  if (!modelDir) throw new Error(`no model: give <model> or a "model" field in ${where}`);
  if (recipe.task !== undefined) o.log?.(`note: --stream measures no task; the recipe's task '${recipe.task}' is not used (run shrink eval on ${o.out})`);
  const skeleton = withoutInit(() => modelFromConfig(readConfig(modelDir)));
  const steps = resolveSteps(recipe, skeleton, where);
  const resolved = resolvedRecipe(recipe, steps);
  let report: StreamCompressReport | undefined;
  const r = streamFolder(modelDir, o.out, steps.map((s) => ({ method: s.method, cfg: s.cfg })), {
    force: o.force,
    maxShardBytes: o.maxShardBytes,
    recipe: resolved,
    methods: listMethods(),
    log: o.log,
    onPart: (i, n, name) => o.log?.(`[${i + 1}/${n}] ${name} done (peak RSS ${peakRssMb().toLocaleString('en-US')} MiB)`),
    extraFiles: (tmp, res) => {
      report = { ...res, fileBytesAfter: weightsBytes(tmp), model: modelDir, recipe: resolved };
      atomicWriteJson(path.join(tmp, 'report.json'), report);
    },
  });
  return { ...report!, ...r };
}

/** The table `shrink compress --stream` prints. */
export function formatStreamReport(r: StreamCompressReport): string {
  const fmt = (v: number | string) => (typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en-US') : +v.toPrecision(4)) : v);
  return [
    `| compress --stream: ${r.model} → ${r.out} | value |`,
    '| --- | --- |',
    `| weights | ${formatBytes(r.fileBytesBefore)} → ${formatBytes(r.fileBytesAfter)} (${((100 * r.fileBytesAfter) / r.fileBytesBefore).toFixed(1)} %) in ${r.files.length === 1 ? r.files[0] : `${r.files.length} shards`} |`,
    `| peak resident memory | ${r.peakRssMb.toLocaleString('en-US')} MiB (streaming bound for this model: ${r.boundMb.toLocaleString('en-US')} MiB) |`,
    `| time | ${r.seconds} s |`,
    ...r.steps.map((s) => `| ${s.method} | ${Object.entries(s.report).filter(([k]) => !['ranks', 'break_even_ranks'].includes(k)).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')} |`),
  ].join('\n') + '\n';
}

/** Add `shrink compress` to the program. */
export function registerCompress(program: Command, out: (s: string) => void): void {
  program
    .command('compress')
    .description('Run a compression recipe (a chain of methods: quantization, pruning, distillation, …) on a model folder; prints a before/after table and writes <dir>/report.json')
    .argument('[model]', 'model folder (default: the recipe\'s "model")')
    .option('-r, --recipe <file>', 'recipe file (.json, .yaml): steps, and optionally model, task, train settings')
    .option('-o, --out <dir>', 'output model folder (written whole or not at all)')
    .option('-t, --task <task>', 'GLUE task (sst2, mrpc, rte, cola) or ppl:<text file>; default: the recipe\'s "task"')
    .option('--steps <n>', 'override train.steps of the recipe', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--steps must be a positive integer, got '${v}'`);
      return n;
    })
    .option('--train-data <tsv>', 'train on this TSV (the task\'s train.tsv format, e.g. from `shrink augment`) instead of the task\'s train split; sets the recipe\'s train.data (dev evaluation unchanged)')
    .option('--set <path=value>', 'override one recipe field before it runs (repeatable): steps.0.target_sparsity=0.8, train.lr=3e-5', (v: string, acc: string[] = []) => [...acc, v])
    .option('--force', 'replace an existing non-empty output folder')
    .option('--stream', 'one transformer block at a time, for checkpoints larger than memory: one-shot local methods only (prune.magnitude, share.lowrank, quant.rtn); no task is measured')
    .option('--max-shard-size <size>', 'with --stream: output shards of at most this size (e.g. 2GB, 500MB), each written as soon as it fills', '1GiB')
    .option('--list', 'list the registered methods and exit')
    .option('--json', 'print the report as JSON')
    .action((modelArg: string | undefined, o: { recipe?: string; out?: string; task?: string; steps?: number; trainData?: string; set?: string[]; force?: boolean; stream?: boolean; maxShardSize: string; list?: boolean; json?: boolean }, cmd: Command) => {
      if (o.list) {
        const ms = listMethods();
        out(o.json ? JSON.stringify(ms.map((m) => ({ name: m.name, kind: m.kind, description: m.description, defaults: m.defaults, stream: !!m.stream }))) + '\n' : ['| method | kind | streams | what |', '| --- | --- | --- | --- |', ...ms.map((m) => `| ${m.name} | ${m.kind} | ${m.stream ? 'yes' : ''} | ${m.description} |`)].join('\n') + '\n');
        return;
      }
      if (!o.recipe) throw new Error('compress needs --recipe <file>');
      if (!o.out) throw new Error('compress needs -o/--out <dir>');
      const err = (s: string) => process.stderr.write(s + '\n');
      if (o.stream) {
        for (const [flag, key] of [['--task', 'task'], ['--steps', 'steps'], ['--train-data', 'trainData']] as const)
          if (o[key] !== undefined) throw new Error(`${flag} does not apply with --stream (no training and no task measurement: the model is never whole in memory; run shrink eval on the output)`);
        const r = streamCompress(modelArg, { recipe: o.recipe, out: o.out, set: o.set, force: o.force, maxShardBytes: parseByteSize(o.maxShardSize), log: o.json ? undefined : err });
        out(o.json ? JSON.stringify(r) + '\n' : formatStreamReport(r));
        return;
      }
      if (cmd.getOptionValueSource('maxShardSize') === 'cli') throw new Error('--max-shard-size applies with --stream (the whole-model path writes one model.safetensors)');
      const bars = new Map<number, (e: LogEntry) => void>();
      const r = compressFolder(modelArg, {
        recipe: o.recipe,
        out: o.out,
        task: o.task,
        steps: o.steps,
        trainData: o.trainData,
        set: o.set,
        force: o.force,
        log: o.json ? undefined : err,
        onLog: o.json
          ? undefined
          : (stage, e, total) => {
              if (!bars.has(stage)) bars.set(stage, progress(`stage ${stage}`, total));
              bars.get(stage)!(e);
            },
      });
      out(o.json ? JSON.stringify(r) + '\n' : formatReport(r));
    });
}
