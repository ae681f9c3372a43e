/**
 * npm run bench:share [-- --quick] [-- --json] [-- --model <dir>|none] [-- --lm <dir>|none] [-- --task sst2]
 *                     [-- --methods lowrank,kmeans,hash,layers] [-- --finetune N] [-- --batch-size N] [-- --repeats N]
 *                     [-- --threads N] [-- --out <dir>] [-- --plot-dir <dir>]
 *
 * Compression ratio against quality for each parameter-sharing method (issue 16: `share.lowrank`, `share.kmeans`,
 * `share.hash`, `share.layers`, src/compress/share/), every point against the uncompressed model in one process, on
 * two models:
 * - a BERT classifier (--model, default data/models/bert-minilm-sst2: 6 layers, hidden 384) on a GLUE task (--task,
 *   default sst2), scored by the task's dev metric (accuracy for SST-2);
 * - a causal LM (--lm, default data/models/stories260K) scored by perplexity on the same held-out text as
 *   bench:quant: data/tinystories-samples/stories260K-samples.txt tokenized line by line, the first 8 blocks of 128
 *   tokens (1,024) for calibration AND fine-tuning (written to <out>/<lm>/train.txt, the compress task
 *   `ppl:<that file>`, blocks of 128), every token after them held out (<out>/<lm>/heldout.txt), scored in windows of
 *   256 tokens (the number `shrink eval <dir> -t ppl --text heldout.txt --block-size 256` prints, as bench:quant's).
 *   Fine-tuning sees only the 1,024 training tokens, so many steps can overfit them: the held-out number says so.
 *   `--model none` / `--lm none` leave a model out.
 *
 * Points (the setting in the folder name <method>-<setting>; --quick takes the starred ones):
 * - lowrank: `share.lowrank` activation-aware (SVD-LLM whitening, `compare_plain` off to save one SVD per layer),
 *   ratio (fraction of each layer's weights kept) 0.75, 0.5*, 0.35, 0.25;
 * - kmeans: `share.kmeans` linear init, clusters 256* and 64 (8-bit codes: 64 clusters need 6 bits and codes are 4
 *   or 8 bits, so 64 is no smaller than 256), 16* and 8 (4-bit codes: the same size again; they differ in quality
 *   only);
 * - hash: `share.hash` (HashedNets) ratio (buckets per weight) 1/2, 1/4, 1/8*, 1/16, seed 0;
 * - layers: `share.layers` (ALBERT) mean init sharing attention + FFN in groups of 2 and 3 consecutive blocks and in
 *   one group of all blocks* (a group size ≥ the model's layers is the same as all and is left out), and sharing
 *   only the attention projections in groups of 2* (plotted as a series of its own, not on the line).
 * Every method shares the Linear layers inside the transformer blocks (its default targets); embeddings, LayerNorms,
 * pooler and heads stay as they are.
 *
 * Each point is two recipes through compressFolder (as `shrink compress --recipe <file> -o <dir> --force`), written
 * to <out>/<model>/recipes/ so each can be rerun:
 *   1. the one-shot method alone on the teacher → <out>/<model>/<method>-<setting>-oneshot;
 *   2. `finetune` of that folder for --finetune steps (default 100; --quick 5) → <out>/<model>/<method>-<setting>:
 *      every parameter trains (for kmeans the centroids, with the sum of their members' gradients, codes fixed;
 *      for hash the buckets; for layers each shared weight once with the sum of its layers' gradients), with
 *      recipes/quick-share-<method>.json's settings (lr 5e-5 lowrank / kmeans, 1e-4 hash / layers; its
 *      calibration_samples), batch --batch-size (default 16; the LM's 8 training blocks cap it at 8).
 *   With --finetune 0 only step 1 runs, into <out>/<model>/<method>-<setting>. The one-shot quality comes for free
 *   this way (no method runs twice): for the BERT it is compressFolder's "before" of step 2 (the reloaded one-shot
 *   folder on the dev set), for the LM the reloaded one-shot folder on the held-out text.
 * The teacher is loaded (float32, as every method works) and saved as float32 into <out>/<model>/teacher-fp32:
 * that file is the size reference (the bundled MiniLM teacher is stored as float16, every output folder as
 * float32, so against the float16 file every ratio would be 2× worse).
 *
 * Per point, measured on the saved folder loaded back:
 * - quality: the dev metric / held-out perplexity (what the `npx shrink eval …` printed under the table gives), and
 *   the one-shot number before fine-tuning; for the BERT it is checked against compressFolder's own measurement
 *   before saving (a mismatch is flagged in the row);
 * - parameters (modelSize: as stored, a 4-bit code or a bucket is one), model.safetensors bytes and its ratio to the
 *   teacher's float32 file (`file_ratio`), and the bytes of the selected layers (every Linear inside the blocks,
 *   modelSize of the modules at those paths; a shared tensor counts once) against the teacher's (`layer_ratio`);
 * - latency: after all points of a model, the teacher and every fine-tuned folder (the one-shot folders have the same
 *   structure) are loaded at once and timed INTERLEAVED round by round (compareLatency: teacher, lowrank-0.75, …,
 *   teacher, …), 1 warm-up call each, then --repeats rounds (default 5), each turn repeating its forward for ≥ 20 ms
 *   and taking the mean: the BERT at batch 1 and batch 32 on the task's latency inputs (the first dev examples, as
 *   `shrink compress` times), the LM over one window of the first 256 held-out tokens (reported per token). The
 *   table shows the best round, and the speed-up teacher ms / model ms within each round, median over the rounds
 *   (min–max in --json). kmeans and hash expand their weights to float32 once and cache them, and low rank runs two
 *   thinner GEMMs: none of them is expected to be faster than the dense teacher at these sizes; layers run the same
 *   GEMMs as the teacher.
 *
 * Output: a markdown table per model (--json: one object per row instead: {"model","task","metric","method",
 *   "setting","series","finetune_steps","params","bytes","file_ratio","layer_bytes","layer_ratio","quality",
 *   "quality_one_shot","delta_vs_teacher","pct_of_teacher","latency_ms_b1","latency_ms_b32","speedup_b1",
 *   "speedup_b1_min","speedup_b1_max","speedup_b32",… (BERT) | "latency_ms_per_token","speedup","speedup_min",
 *   "speedup_max" (LM),"summary","dir","one_shot_dir","recipes","eval_command","eval_command_one_shot","seconds",
 *   "machine"}, plus "quality_before_save" / "one_shot_before_save" only when they differ), and an SVG plot per
 *   model in --plot-dir (default docs/; with --quick the --out folder, so a smoke test never overwrites the
 *   committed plots): share-<task>.svg (docs/share-sst2.svg) and
 *   share-<lm folder name, lower case>.svg (docs/share-stories260k.svg), drawn by src/eval/plot.ts (`shrink plot`'s
 *   writer). x = model.safetensors size in % of the teacher's float32 file (the whole file: the embeddings stay, so
 *   this is the size a user gets; `layer_ratio` in the table is the selected layers alone); y = the dev metric in %
 *   or ln(held-out perplexity) (the loss in nats per token: a post-hoc hashed or all-shared tiny LM reaches
 *   perplexities of 1e4–1e9, which would flatten every other point on a linear perplexity axis); one line per method
 *   through its fine-tuned points (the attention-only sharing a line of its own), the one-shot points as a thin line
 *   of the same colour, the teacher as a grey horizontal line ending in a dot at 100 %. Perplexities above 100× the
 *   teacher's are left off the plot (the title counts them; the table has them).
 * --quick: the starred points, 5 fine-tuning steps (a smoke test: the qualities mean little).
 * The compressed folders are kept (default: a fresh temporary folder; --out to choose): two float32 folders per
 * point, up to ≈ 2.7 GB for the 16 MiniLM points.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressFolder, readRecipe, type CompressReport } from '../src/cli/compress.ts';
import type { Recipe, RecipeStep } from '../src/compress/runner.ts';
import { isTaskName, taskData, type TaskData } from '../src/compress/tasks.ts';
import { targetLinears } from '../src/compress/share/common.ts';
import { readConfig } from '../src/io/hf.ts';
import { copyTokenizerFiles } from '../src/io/tokenizer-files.ts';
import { atomicWriteFile } from '../src/io/atomic.ts';
import { fromPretrained, savePretrained } from '../src/models/registry.ts';
import type { ModelInputs } from '../src/models/outputs.ts';
import type { Module } from '../src/nn/module.ts';
import { loadTokenizer } from '../src/tokenizers/index.ts';
import { chunkTokens } from '../src/data/text.ts';
import { modelSize } from '../src/eval/size.ts';
import { compareLatency } from '../src/eval/latency.ts';
import { lineChartSvg, type Series } from '../src/eval/plot.ts';
import { noGrad } from '../src/tensor/autograd.ts';
import { setNumThreads } from '../src/backend/registry.ts';
import { benchArgs, machineLine } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { has, arg, intArg } = benchArgs('bench/share.ts', ['--json', '--quick'], ['--model', '--lm', '--task', '--methods', '--finetune', '--batch-size', '--repeats', '--threads', '--out', '--plot-dir']);
const json = has('--json');
const quick = has('--quick');
const dirArg = (k: string, dflt: string) => {
  const v = arg(k) ?? dflt;
  return v === 'none' ? null : path.resolve(v);
};

const bertDir = dirArg('--model', path.join(root, 'data/models/bert-minilm-sst2'));
const lmDir = dirArg('--lm', path.join(root, 'data/models/stories260K'));
if (!bertDir && !lmDir) throw new Error('--model none and --lm none: nothing to measure');
const taskName = arg('--task') ?? 'sst2';
if (!isTaskName(taskName) || taskName.startsWith('ppl:')) throw new Error(`--task must be a GLUE task (sst2, mrpc, rte, cola), got '${taskName}' (the LM's task is fixed: perplexity on the held-out samples)`);
const METHODS = ['lowrank', 'kmeans', 'hash', 'layers'] as const;
type MethodName = (typeof METHODS)[number];
const methods = (arg('--methods') ?? METHODS.join(',')).split(',').map((m) => {
  if (!(METHODS as readonly string[]).includes(m)) throw new Error(`--methods: each must be one of ${METHODS.join(', ')}, got '${m}'`);
  return m as MethodName;
});
const finetune = intArg('--finetune', quick ? 5 : 100, 0);
const batchSize = intArg('--batch-size', 16, 1);
const rounds = intArg('--repeats', 5, 1);
if (arg('--threads') !== undefined) setNumThreads(intArg('--threads', 1, 1));
const outRoot = path.resolve(arg('--out') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-share-')));
fs.mkdirSync(outRoot, { recursive: true });
const plotDir = path.resolve(arg('--plot-dir') ?? (quick ? outRoot : path.join(root, 'docs')));
fs.mkdirSync(plotDir, { recursive: true });
const LAT_MIN_MS = 20;
const LM_TEXT = path.join(root, 'data/tinystories-samples/stories260K-samples.txt');
const LM_TRAIN_TOKENS = 8 * 128;
const LM_BLOCK = 128;
const LM_EVAL_WINDOW = 256;
const log = (s: string) => process.stderr.write(s + '\n');
const t0 = performance.now();

// ---- the points
interface Point {
  method: MethodName;
  setting: string;
  /** The one-shot step of the recipe. */
  step: RecipeStep;
  /** The plot series it belongs to. */
  series: string;
}
function pointsFor(method: MethodName, layers: number): Point[] {
  const pick = <T>(all: T[], quickOnes: T[]) => (quick ? quickOnes : all);
  switch (method) {
    case 'lowrank':
      return pick([0.75, 0.5, 0.35, 0.25], [0.5]).map((r) => ({
        method, setting: String(r), series: 'share.lowrank', step: { method: 'share.lowrank', ratio: r, activation_aware: true, compare_plain: false },
      }));
    case 'kmeans':
      return pick([256, 64, 16, 8], [256, 16]).map((k) => ({ method, setting: String(k), series: 'share.kmeans', step: { method: 'share.kmeans', clusters: k, init: 'linear' } }));
    case 'hash':
      return pick([1 / 2, 1 / 4, 1 / 8, 1 / 16], [1 / 8]).map((r) => ({ method, setting: String(r), series: 'share.hash', step: { method: 'share.hash', ratio: r, seed: 0 } }));
    case 'layers': {
      const out: Point[] = [];
      const all: Point = { method, setting: 'all', series: 'share.layers', step: { method: 'share.layers', share: 'all', init: 'mean' } };
      // a group as large as the model is the same as one group of all blocks
      if (!quick) for (const k of [2, 3]) if (k < layers) out.push({ method, setting: `g${k}`, series: 'share.layers', step: { method: 'share.layers', group_size: k, share: 'all', init: 'mean' } });
      if (layers >= 2) out.push(all, { method, setting: 'attn-g2', series: 'share.layers (attention only)', step: { method: 'share.layers', group_size: 2, share: 'attention', init: 'mean' } });
      return out;
    }
  }
}

/** A recipe with its description (parseRecipe accepts one; the Recipe type does not name it). */
type Described = Recipe & { description?: string };
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const baseRecipe = (m: MethodName): Recipe => readRecipe(path.join(root, `recipes/quick-share-${m}.json`));

// ---- shared by both models
type Fwd = Module & { forward(i: ModelInputs): unknown };
const load = (dir: string) => {
  const m = fromPretrained(dir) as unknown as Fwd;
  m.eval();
  return m;
};
const fileBytes = (dir: string) => fs.statSync(path.join(dir, 'model.safetensors')).size;
const r4 = (x: number) => +x.toFixed(4);
const settingOf = (r: Record<string, unknown>) => (r.setting ? ` ${r.setting}` : '');
/** The step report's main numbers, one short string. */
function summary(report: CompressReport | undefined): string {
  const s = report?.steps[0];
  if (!s) return '';
  const f = (k: string, label = k, pct = false) => {
    const v = s[k];
    if (v === undefined) return null;
    return typeof v === 'number' ? `${label} ${pct ? `${(100 * v).toFixed(1)} %` : +v.toPrecision(4)}` : `${label} ${String(v)}`;
  };
  const parts = {
    'share.lowrank': [f('factorized'), f('params_ratio', 'layer weights kept', true), f('mean_output_error', 'output error')],
    'share.kmeans': [f('bits', 'bits'), f('mean_weight_error', 'weight error')],
    'share.hash': [f('compression', 'weights per bucket'), f('mean_weight_error', 'weight error')],
    'share.layers': [f('groups'), f('share'), f('mean_weight_error', 'weight error')],
  }[s.method] ?? [];
  return parts.filter(Boolean).join(', ');
}

interface ModelSpec {
  /** Folder name under --out and the plot's name. */
  label: string;
  kind: 'bert' | 'lm';
  dir: string;
  /** The task compressFolder runs (its calibration and training data). */
  task: string;
  /** The held-out scoring of the reloaded folders. */
  score: TaskData;
  latency: Record<string, ModelInputs>;
  /** Forwards' tokens per latency input (LM: per token; BERT: per forward = 1). */
  per: number;
  /** The training batch (the LM's training blocks cap it). */
  batch: number;
  /** Recipe train settings beyond the method recipe's. */
  train: Record<string, unknown>;
  title: string;
}

function bertSpec(dir: string): ModelSpec {
  const score = taskData(dir, taskName, { batchSize });
  return {
    label: taskName, kind: 'bert', dir, task: taskName, score, latency: { b1: score.latencyInputs(1), b32: score.latencyInputs(32) }, per: 1, batch: batchSize, train: {},
    title: `${path.relative(root, dir) || dir} on ${taskName}`,
  };
}

function lmSpec(dir: string, out: string): ModelSpec {
  // bench:quant's split: the first 8 blocks of 128 tokens calibrate (here: and fine-tune), the rest is held out
  const tok = loadTokenizer(dir);
  const ids = fs.readFileSync(LM_TEXT, 'utf8').split('\n').filter(Boolean).flatMap((l) => tok.encode(l, { addSpecialTokens: false }));
  if (ids.length < LM_TRAIN_TOKENS + 2 * LM_EVAL_WINDOW) throw new Error(`${LM_TEXT}: ${ids.length} tokens with ${dir}'s tokenizer, fewer than ${LM_TRAIN_TOKENS} + 2 windows of ${LM_EVAL_WINDOW}`);
  fs.mkdirSync(out, { recursive: true });
  const trainFile = path.join(out, 'train.txt');
  const heldOut = path.join(out, 'heldout.txt');
  fs.writeFileSync(trainFile, tok.decode(ids.slice(0, LM_TRAIN_TOKENS)));
  fs.writeFileSync(heldOut, tok.decode(ids.slice(LM_TRAIN_TOKENS)));
  const score = taskData(dir, `ppl:${heldOut}`, { maxLength: LM_EVAL_WINDOW });
  const blocks = chunkTokens(ids.slice(0, LM_TRAIN_TOKENS), LM_BLOCK).length;
  log(`${path.basename(dir)}: ${ids.length} tokens of ${path.relative(root, LM_TEXT)}: ${LM_TRAIN_TOKENS} (${blocks} blocks of ${LM_BLOCK}) calibrate and fine-tune (${trainFile}), ${ids.length - LM_TRAIN_TOKENS} held out (${heldOut})`);
  return {
    label: path.basename(dir).toLowerCase(), kind: 'lm', dir, task: `ppl:${trainFile}`, score, latency: { w256: score.latencyInputs(1) }, per: LM_EVAL_WINDOW,
    batch: Math.min(batchSize, blocks), train: { max_length: LM_BLOCK }, title: `${path.relative(root, dir) || dir}, held-out perplexity`,
  };
}

function runModel(spec: ModelSpec): Record<string, unknown>[] {
  const base = path.join(outRoot, spec.label);
  const recipeDir = path.join(base, 'recipes');
  fs.mkdirSync(recipeDir, { recursive: true });
  const nLayers = Number(readConfig(spec.dir).num_hidden_layers ?? readConfig(spec.dir).n_layer);
  const points = methods.flatMap((m) => pointsFor(m, nLayers));
  log(`\n${spec.title}: ${points.length} points (${points.map((p) => `${p.method}-${p.setting}`).join(', ')}), ${finetune} fine-tuning steps each → ${base}`);

  // the teacher, and its float32 file: the size reference
  const teacher = load(spec.dir);
  const teacherFp32 = path.join(base, 'teacher-fp32');
  fs.rmSync(teacherFp32, { recursive: true, force: true });
  savePretrained(teacher as unknown as Module & { config: Record<string, unknown> }, teacherFp32);
  copyTokenizerFiles(spec.dir, teacherFp32);
  const selected = targetLinears(teacher, null, null).map(([p]) => p);
  const layerBytes = (m: Module) => selected.reduce((a, p) => a + modelSize(m.getSubmodule(p)).bytes, 0);
  const tFile = fileBytes(teacherFp32);
  const tLayers = layerBytes(teacher);

  interface Run {
    p: Point;
    name: string;
    dir: string;
    oneShotDir: string | null;
    recipes: string[];
    a: CompressReport;
    b: CompressReport | null;
  }
  const runs: Run[] = [];
  for (const p of points) {
    const name = `${p.method}-${p.setting}`;
    const br: Described = clone(baseRecipe(p.method));
    const train = { ...br.train, ...spec.train, steps: Math.max(finetune, 1), batch_size: batchSize };
    const dir = path.join(base, name);
    const oneShotDir = finetune > 0 ? path.join(base, `${name}-oneshot`) : dir;
    const a: Described = {
      description: `bench:share: ${p.step.method} ${JSON.stringify(p.step)} (one-shot)`,
      model: spec.dir, task: spec.task, ...(br.calibration_samples !== undefined ? { calibration_samples: br.calibration_samples } : {}), train, steps: [p.step],
    };
    const recipes = [path.join(recipeDir, `${name}${finetune > 0 ? '-oneshot' : ''}.json`)];
    fs.writeFileSync(recipes[0]!, JSON.stringify(a, null, 2) + '\n');
    log(`${spec.label} ${name}: ${p.step.method} → ${oneShotDir}`);
    let t = performance.now();
    const ra = compressFolder(undefined, { recipe: recipes[0]!, out: oneShotDir, force: true, log: (l) => log(`  ${l}`) });
    log(`  one-shot done in ${((performance.now() - t) / 1000).toFixed(1)} s: ${ra.metric_name} ${ra.after.metric}`);
    let rb: CompressReport | null = null;
    if (finetune > 0) {
      const b: Described = { description: `bench:share: ${finetune} fine-tuning steps of ${name}-oneshot`, model: oneShotDir, task: spec.task, train, steps: [{ method: 'finetune' }] };
      recipes.push(path.join(recipeDir, `${name}.json`));
      fs.writeFileSync(recipes[1]!, JSON.stringify(b, null, 2) + '\n');
      log(`${spec.label} ${name}: finetune ${finetune} steps → ${dir}`);
      t = performance.now();
      rb = compressFolder(undefined, { recipe: recipes[1]!, out: dir, force: true, log: (l) => log(`  ${l}`) });
      log(`  fine-tuned in ${((performance.now() - t) / 1000).toFixed(1)} s: ${rb.metric_name} ${rb.after.metric}`);
    }
    runs.push({ p, name, dir, oneShotDir: finetune > 0 ? oneShotDir : null, recipes, a: ra, b: rb });
  }

  // ---- the saved folders, loaded back and scored as `shrink eval` scores them
  log(`${spec.label}: scoring the teacher and the saved folders…`);
  const tScore = spec.score.evaluate(teacher);
  const tSize = modelSize(teacher);
  const models: Record<string, Fwd> = { teacher };
  const scored = runs.map((r) => {
    const m = load(r.dir);
    models[r.name] = m;
    const q = spec.score.evaluate(m);
    let oneShot: number | null = null;
    let oneShotBeforeSave: number | null = null;
    if (r.oneShotDir) {
      if (spec.kind === 'bert') {
        oneShot = r.b!.before.metric; // compressFolder measured the reloaded one-shot folder before fine-tuning
        oneShotBeforeSave = r.a.after.metric;
      } else oneShot = spec.score.evaluate(load(r.oneShotDir));
    }
    // the BERT folder should score exactly what compressFolder measured before saving it (the LM's compress task is the training text)
    const beforeSave = spec.kind === 'bert' ? (r.b ?? r.a).after.metric : null;
    return { r, m, q, oneShot, oneShotBeforeSave, beforeSave, size: modelSize(m), file: fileBytes(r.dir), layers: layerBytes(m) };
  });

  // ---- latency: the teacher and every fine-tuned folder, interleaved round by round
  const lat = Object.fromEntries(
    Object.entries(spec.latency).map(([b, input]) => {
      log(`${spec.label}: latency ${b}: ${Object.keys(models).length} models interleaved, 1 warm-up + ${rounds} rounds of ≥ ${LAT_MIN_MS} ms…`);
      const fns = Object.fromEntries(Object.entries(models).map(([k, m]) => [k, () => void noGrad(() => m.forward(input))]));
      return [b, compareLatency(fns, { reference: 'teacher', rounds, warmup: 1, minMs: LAT_MIN_MS })];
    }),
  );
  const latOf = (k: string): Record<string, number> => {
    if (spec.kind === 'lm') {
      const c = lat.w256!;
      return { latency_ms_per_token: r4(c.best[k]! / spec.per), speedup: r4(c.ratios[k]!.median), speedup_min: r4(c.ratios[k]!.min), speedup_max: r4(c.ratios[k]!.max) };
    }
    const o: Record<string, number> = {};
    for (const b of ['b1', 'b32']) {
      o[`latency_ms_${b}`] = r4(lat[b]!.best[k]!);
      o[`speedup_${b}`] = r4(lat[b]!.ratios[k]!.median);
      o[`speedup_${b}_min`] = r4(lat[b]!.ratios[k]!.min);
      o[`speedup_${b}_max`] = r4(lat[b]!.ratios[k]!.max);
    }
    return o;
  };
  const evalCmd = (dir: string) => `npx shrink eval ${dir} ${spec.score.evalArgs.join(' ')}`;
  const mach = machineLine();
  const common = { model: spec.label, task: spec.kind === 'bert' ? taskName : spec.score.name, metric: spec.score.metric };
  const rows: Record<string, unknown>[] = [
    {
      ...common, method: 'teacher', setting: '', finetune_steps: 0, params: tSize.parameters, bytes: tFile, file_ratio: 1, layer_bytes: tLayers, layer_ratio: 1,
      quality: r4(tScore), quality_one_shot: null, delta_vs_teacher: 0, pct_of_teacher: 100, ...latOf('teacher'),
      summary: `as stored in ${spec.dir}: ${fileBytes(spec.dir).toLocaleString('en-US')} bytes; float32 copy in ${teacherFp32}`,
      dir: spec.dir, one_shot_dir: null, recipes: [], eval_command: evalCmd(spec.dir), eval_command_one_shot: null, seconds: 0, machine: mach,
    },
    ...scored.map(({ r, q, oneShot, oneShotBeforeSave, beforeSave, size, file, layers }) => ({
      ...common, method: r.p.step.method, setting: r.p.setting, series: r.p.series, finetune_steps: finetune, params: size.parameters, bytes: file,
      file_ratio: r4(file / tFile), layer_bytes: layers, layer_ratio: r4(layers / tLayers), quality: r4(q), quality_one_shot: oneShot === null ? null : r4(oneShot),
      delta_vs_teacher: r4(q - tScore), pct_of_teacher: r4((100 * q) / tScore), ...latOf(r.name), summary: summary(r.a),
      dir: r.dir, one_shot_dir: r.oneShotDir, recipes: r.recipes, eval_command: evalCmd(r.dir), eval_command_one_shot: r.oneShotDir ? evalCmd(r.oneShotDir) : null,
      seconds: r4(r.a.seconds + (r.b?.seconds ?? 0)), machine: mach,
      ...(beforeSave !== null && Math.abs(beforeSave - q) > 1e-9 ? { quality_before_save: beforeSave } : {}),
      ...(oneShot !== null && oneShotBeforeSave !== null && Math.abs(oneShot - oneShotBeforeSave) > 1e-9 ? { one_shot_before_save: oneShotBeforeSave } : {}),
    })),
  ];

  // ---- the plot
  const pctMetric = spec.score.metric !== 'perplexity';
  // perplexities span orders of magnitude (a post-hoc hash or all-shared tiny LM reaches 1e4–1e9): the y axis is
  // ln(perplexity), the held-out loss in nats per token, and points above 100× the teacher's perplexity are left off
  const y = (v: number) => (pctMetric ? 100 * v : Math.log(v));
  const cap = pctMetric ? Infinity : 100 * tScore;
  const COLORS: Record<string, string> = { 'share.lowrank': '#1f77b4', 'share.kmeans': '#d62728', 'share.hash': '#2ca02c', 'share.layers': '#ff7f0e', 'share.layers (attention only)': '#9467bd' };
  const series: Series[] = [];
  let offScale = 0;
  const drawn: [number, number][] = [[100, y(tScore)]];
  for (const name of Object.keys(COLORS)) {
    const mine = scored.filter((s) => s.r.p.series === name);
    if (!mine.length) continue;
    const line = (val: (s: (typeof mine)[number]) => number | null) => {
      const pts: [number, number][] = [];
      for (const s of mine) {
        const v = val(s);
        if (v === null) continue;
        if (!(v <= cap)) {
          offScale++;
          continue;
        }
        pts.push([(100 * s.file) / tFile, y(v)]);
      }
      drawn.push(...pts);
      return pts.sort((a, b) => a[0] - b[0]);
    };
    const ft = line((s) => s.q);
    if (ft.length) series.push({ label: name, points: ft, color: COLORS[name]!, dots: true });
    // the one-shot points: a thin line of the same colour, out of the legend (the title says so)
    if (finetune > 0) {
      const os1 = line((s) => s.oneShot);
      if (os1.length) series.push({ label: `${name}, one-shot`, points: os1, color: COLORS[name]!, dots: true, faint: true, noLegend: true });
    }
  }
  const xmin = Math.min(...drawn.map((p) => p[0]));
  series.push({ label: `teacher (float32): ${pctMetric ? `${y(tScore).toFixed(2)} %` : `ppl ${tScore.toFixed(3)}`}`, points: [[Math.min(xmin, 100), y(tScore)], [100, y(tScore)]], color: '#555555' });
  series.push({ label: 'teacher', points: [[100, y(tScore)]], color: '#555555', dots: true, noLegend: true });
  // headroom above the data for the legend (lineChartSvg puts it top right, inside the plot area): an invisible
  // point lifts the y axis so the data stay below the legend's rows
  const W = 900;
  const H = 540;
  const plotH = H - 44 - 56;
  const legendH = series.filter((s) => !s.noLegend).length * 18 + 8 + 16;
  const ys = drawn.map((p) => p[1]);
  const [ylo, yhi] = [Math.min(...ys), Math.max(...ys)];
  const span = yhi - ylo || Math.abs(yhi) * 0.1 || 1;
  series.push({ label: 'headroom', points: [[100, yhi + (span * legendH) / (plotH - legendH)]], color: 'none', noLegend: true });
  const svg = lineChartSvg(series, {
    title: `bench:share — ${spec.title}: ${finetune > 0 ? `${finetune} fine-tuning steps (thin lines: one-shot)` : 'one-shot'}${quick ? ', --quick' : ''}${offScale ? `; ${offScale} point${offScale > 1 ? 's' : ''} above ppl ${cap.toFixed(0)} left off` : ''}`,
    xLabel: "model.safetensors size, % of the teacher's float32 file",
    yLabel: pctMetric ? `${spec.score.metric} (%, dev)` : 'held-out loss, nats per token (ln perplexity)',
    width: W,
    height: H,
  });
  const plotFile = path.join(plotDir, `share-${spec.label}.svg`);
  atomicWriteFile(plotFile, svg);

  // ---- the table
  if (json) for (const r of rows) console.log(JSON.stringify(r));
  else {
    const fq = (v: number) => (pctMetric ? `${(100 * v).toFixed(2)} %` : v.toFixed(3));
    const n = (r: Record<string, unknown>, k: string) => r[k] as number;
    console.log(`\nbench:share — ${spec.title}${quick ? ' (--quick: smoke test, the qualities mean little)' : ''}`);
    console.log(`${finetune} fine-tuning steps per point (recipes/quick-share-<method>.json's lr), batch ${spec.batch}${spec.kind === 'lm' ? `, ${LM_BLOCK}-token blocks of ${spec.task.slice(4)}` : ''}; ${((performance.now() - t0) / 1000).toFixed(0)} s so far`);
    console.log(`machine: ${mach}`);
    console.log(
      `latency: the teacher and every fine-tuned folder interleaved, 1 warm-up + ${rounds} rounds of ≥ ${LAT_MIN_MS} ms each; best round, ${spec.kind === 'lm' ? `ms per token over a ${LM_EVAL_WINDOW}-token window` : 'ms per forward'}; speed-up = teacher ms / model ms within each round, median`,
    );
    console.log("file = model.safetensors bytes (vs the teacher's float32 file); layers = the Linear layers inside the blocks, as stored\n");
    const latHead = spec.kind === 'lm' ? '| ms/token | speed-up |' : '| b1 ms | b32 ms | speed-up b1 | speed-up b32 |';
    const latSep = spec.kind === 'lm' ? ' --- | --- |' : ' --- | --- | --- | --- |';
    console.log(`| method | setting | parameters | file | file vs teacher | layers vs teacher | ${spec.score.metric}${finetune > 0 ? ' (one-shot → fine-tuned)' : ''} | Δ vs teacher ${latHead} notes |`);
    console.log(`| --- | --- | --- | --- | --- | --- | --- | --- |${latSep} --- |`);
    for (const r of rows) {
      const t = r.method === 'teacher';
      const flag = r.quality_before_save !== undefined ? ` (≠ ${fq(n(r, 'quality_before_save'))} before saving!)` : '';
      const flag1 = r.one_shot_before_save !== undefined ? ` (≠ ${fq(n(r, 'one_shot_before_save'))} before saving!)` : '';
      const quality = `${r.quality_one_shot !== null && r.quality_one_shot !== undefined ? `${fq(n(r, 'quality_one_shot'))}${flag1} → ` : ''}${fq(n(r, 'quality'))}${flag}`;
      const d = n(r, 'delta_vs_teacher');
      const delta = t ? '—' : pctMetric ? `${d >= 0 ? '+' : ''}${(100 * d).toFixed(2)} pt` : `${d >= 0 ? '+' : ''}${d.toFixed(3)}`;
      const latCells =
        spec.kind === 'lm'
          ? `| ${n(r, 'latency_ms_per_token').toFixed(4)} | ${n(r, 'speedup').toFixed(2)}× |`
          : `| ${n(r, 'latency_ms_b1').toFixed(3)} | ${n(r, 'latency_ms_b32').toFixed(3)} | ${n(r, 'speedup_b1').toFixed(2)}× | ${n(r, 'speedup_b32').toFixed(2)}× |`;
      console.log(
        `| ${r.method} | ${r.setting || '—'} | ${n(r, 'params').toLocaleString('en-US')} | ${(n(r, 'bytes') / 1024).toFixed(0)} KiB | ${(100 * n(r, 'file_ratio')).toFixed(1)} % | ${(100 * n(r, 'layer_ratio')).toFixed(1)} % | ${quality} | ${delta} ${latCells} ${r.summary} |`,
      );
    }
    console.log('\nreproduce each number:');
    for (const r of rows) {
      console.log(`  ${r.method}${settingOf(r)}: ${r.eval_command}`);
      if (r.eval_command_one_shot) console.log(`  ${r.method}${settingOf(r)} one-shot: ${r.eval_command_one_shot}`);
    }
    console.log(`\nplot: ${plotFile}; recipes in ${recipeDir} (npx shrink compress --recipe <file> -o <dir> --force); folders in ${base}`);
  }
  return rows;
}

const specs: (() => ModelSpec)[] = [];
if (bertDir) specs.push(() => bertSpec(bertDir));
if (lmDir) specs.push(() => lmSpec(lmDir, path.join(outRoot, path.basename(lmDir).toLowerCase())));
for (const make of specs) runModel(make());
log(`bench:share: ${((performance.now() - t0) / 1000).toFixed(0)} s in all; folders in ${outRoot}`);
