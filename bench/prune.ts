/**
 * npm run bench:prune [-- --quick] [-- --json] [-- --model <dir>] [-- --task sst2] [-- --sparsities 0.6,0.8,0.9,0.95]
 *                     [-- --methods cofi,structured] [-- --steps N] [-- --finetune N] [-- --batch-size N] [-- --repeats N]
 *                     [-- --threads N] [-- --out <dir>] [-- --eval-every N]
 *                     [-- --reg-lr X] [-- --lagrangian-warmup X] [-- --reuse]
 *
 * CoFiPruning (`prune.cofi`) against plain structured pruning (`prune.structured`) at several sparsities, on a BERT
 * classifier (default: the bundled SST-2 teacher), both against the unpruned teacher, in one process:
 * - for every target sparsity s, each method runs as a recipe through compressFolder (as `shrink compress --force`)
 *   into <out>/<method>-<s>:
 *   - cofi: recipes/quick-prune-cofi.json with target_sparsity s, a pruning stage of --steps steps (default 200;
 *     prepruning_steps = 10 % of them) distilled from the teacher, then --finetune steps (default 60) of the fixed
 *     structure (that recipe's own fine-tuning settings: lr 3e-5, constant, task loss);
 *   - structured: recipes/quick-prune-structured.json with heads = neurons = s (gradient importance on 64
 *     calibration examples, per_layer scope), then --finetune steps (that recipe's train settings: lr 5e-5).
 *     A layer keeps at least one head: on a model with H heads per layer the head fraction is capped at (H − 1)/H
 *     (the bundled teacher has 2, so s ≥ 0.75 removes 1 of 2); the row's `heads` says what was applied.
 *   With --eval-every N the CoFi pruning stage scores the dev set every N steps and ends on its best evaluation
 *   once ŝ ≥ target − 0.01 (train.eval_every; upstream keeps its best checkpoint the same way); default 0: the last step.
 *   --reg-lr and --lagrangian-warmup replace the recipe's reg_lr (0.05) and lagrangian_warmup (0.5 of the pruning
 *   steps) for CoFi: a higher target needs the Lagrangian to pull harder or sooner within a short run.
 *   --reuse: a method/sparsity whose <out> folder already holds a report.json is not run again; its saved folder
 *   (made with whatever settings its report.json records) is scored and timed with the rest.
 *   Both use --batch-size (default 16). The pruned folders are kept (default: a fresh temporary folder; --out to
 *   choose), so each row's accuracy can be reproduced with the `npx shrink eval <dir> -t <task>` printed under it.
 * - achieved sparsity: CoFi's own report (1 − encoder params after / before, `encoderParams`: attention q/k/v/o and
 *   FFN up/down weights and biases — the fraction CoFi's target is of); for structured the same ratio, computed on
 *   the saved folder. Parameters and bytes are the whole model's (modelSize: embeddings and classifier included).
 * - accuracy: the saved folder loaded back and scored on the dev set (what `shrink eval` prints); it is checked
 *   against the accuracy compressFolder measured before saving (a mismatch is flagged in the row).
 * - latency: after every run, the teacher and every pruned model are loaded at once and timed INTERLEAVED, round by
 *   round (teacher, cofi-0.6, structured-0.6, …, teacher, …), at batch 1 and at batch 32 on the task's latency
 *   inputs (the first dev examples, TaskData.latencyInputs, the inputs `shrink compress` times): 1 untimed warm-up
 *   call each, then --repeats rounds (default 5); each turn repeats its forward for ≥ 20 ms and takes the mean. The
 *   table shows the best round's ms per forward, and the speed-up teacher ms / model ms taken within each round, as
 *   the median over the rounds (min–max in --json), so load from elsewhere on a shared machine hits both alike.
 * --quick: 20 CoFi steps, 5 fine-tuning steps, sparsity 0.6 only (a smoke test: accuracies mean nothing).
 * --json: one object per row: {"method","target_sparsity","achieved_sparsity","params","bytes","accuracy",
 *   "delta_vs_teacher","pct_of_teacher","latency_ms_b1","latency_ms_b32","speedup_b1","speedup_b1_min",
 *   "speedup_b1_max","speedup_b32",…,"structure","heads","dir","eval_command","seconds","machine"}.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressFolder, readRecipe, type CompressReport } from '../src/cli/compress.ts';
import type { Recipe } from '../src/compress/runner.ts';
import { encoderParams } from '../src/compress/cofi/method.ts';
import { structureSummary } from '../src/compress/prune/importance.ts';
import { isTaskName, taskData } from '../src/compress/tasks.ts';
import { readConfig } from '../src/io/hf.ts';
import { fromPretrained } from '../src/models/registry.ts';
import type { ModelInputs } from '../src/models/outputs.ts';
import type { Module } from '../src/nn/module.ts';
import { modelSize } from '../src/eval/size.ts';
import { setNumThreads } from '../src/backend/registry.ts';
import { batchLatency, benchArgs, latencyFields, machineLine } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { has, arg, intArg } = benchArgs('bench/prune.ts', ['--json', '--quick', '--reuse'], ['--reg-lr', '--lagrangian-warmup', '--eval-every', '--model', '--task', '--sparsities', '--methods', '--steps', '--finetune', '--batch-size', '--repeats', '--threads', '--out']);
const json = has('--json');
const quick = has('--quick');

const modelDir = path.resolve(arg('--model') ?? path.join(root, 'data/models/bert-teacher-sst2'));
const taskName = arg('--task') ?? 'sst2';
if (!isTaskName(taskName) || taskName.startsWith('ppl:')) throw new Error(`--task must be a GLUE task (sst2, mrpc, rte, cola), got '${taskName}'`);
const sparsities = (arg('--sparsities') ?? (quick ? '0.6' : '0.6,0.8,0.9,0.95')).split(',').map((s) => {
  const v = Number(s);
  if (!(v > 0 && v < 1)) throw new Error(`--sparsities: each must be in (0, 1), got '${s}'`);
  return v;
});
const METHODS = ['cofi', 'structured'] as const;
type MethodName = (typeof METHODS)[number];
const methods = (arg('--methods') ?? METHODS.join(',')).split(',').map((m) => {
  if (!(METHODS as readonly string[]).includes(m)) throw new Error(`--methods: each must be one of ${METHODS.join(', ')}, got '${m}'`);
  return m as MethodName;
});
const cofiSteps = intArg('--steps', quick ? 20 : 200, 2);
const prepruning = Math.round(0.1 * cofiSteps);
const finetune = intArg('--finetune', quick ? 5 : 60, 0);
const batchSize = intArg('--batch-size', 16, 1);
const evalEvery = intArg('--eval-every', 0, 0);
const reuse = has('--reuse');
const numArg = (k: string) => {
  const v = arg(k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${k} must be a positive number, got ${v}`);
  return n;
};
const regLr = numArg('--reg-lr');
const lagWarmup = numArg('--lagrangian-warmup');
const rounds = intArg('--repeats', 5, 1);
if (arg('--threads') !== undefined) setNumThreads(intArg('--threads', 1, 1));
const outRoot = path.resolve(arg('--out') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-prune-')));
fs.mkdirSync(outRoot, { recursive: true });
const LAT_MIN_MS = 20;
const log = (s: string) => process.stderr.write(s + '\n');

const config = readConfig(modelDir);
const headsPerLayer = Number(config.num_attention_heads);
/** The head fraction prune.structured gets for sparsity s: s, capped so that every layer keeps a head (per_layer). */
const headFraction = (s: number) => (Math.round(s * headsPerLayer + 1e-9) >= headsPerLayer ? (headsPerLayer - 1) / headsPerLayer : s);

/** A recipe with its description (parseRecipe accepts one; the Recipe type does not name it). */
type Described = Recipe & { description?: string };
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
function cofiRecipe(s: number): Recipe {
  const r: Described = clone(readRecipe(path.join(root, 'recipes/quick-prune-cofi.json')));
  r.model = modelDir;
  r.task = taskName;
  r.train = { ...r.train, steps: cofiSteps, batch_size: batchSize, ...(evalEvery ? { eval_every: evalEvery } : {}) };
  const [prune, ft] = r.steps;
  if (prune?.method !== 'prune.cofi' || ft?.method !== 'finetune') throw new Error('recipes/quick-prune-cofi.json: expected the steps prune.cofi, finetune');
  Object.assign(prune, { target_sparsity: s, prepruning_steps: prepruning, ...(regLr !== undefined ? { reg_lr: regLr } : {}), ...(lagWarmup !== undefined ? { lagrangian_warmup: lagWarmup } : {}) });
  ft.train = { ...ft.train, steps: finetune };
  if (finetune === 0) r.steps = [prune];
  r.description = `bench:prune: CoFi to ${s} (${cofiSteps} steps, ${prepruning} pre-pruning${evalEvery ? `, best of the evaluations every ${evalEvery} steps once at the target` : ''}), then ${finetune} fine-tuning steps`;
  return r;
}
function structuredRecipe(s: number): Recipe {
  const r: Described = clone(readRecipe(path.join(root, 'recipes/quick-prune-structured.json')));
  r.model = modelDir;
  r.task = taskName;
  r.train = { ...r.train, steps: Math.max(finetune, 1), batch_size: batchSize };
  const h = headFraction(s);
  r.steps = [
    { method: 'prune.structured', heads: h, neurons: s, head_importance: 'gradient', neuron_importance: 'gradient', scope: 'per_layer' },
    ...(finetune > 0 ? [{ method: 'finetune' }] : []),
  ];
  r.description = `bench:prune: structured heads ${+h.toFixed(4)}, neurons ${s} by gradient importance, then ${finetune} fine-tuning steps`;
  return r;
}

interface Run {
  method: MethodName;
  s: number;
  dir: string;
  report: CompressReport;
  /** The head fraction prune.structured was given (null for CoFi, which learns its own). */
  heads: number | null;
}
const runs: Run[] = [];
const t0 = performance.now();
for (const s of sparsities)
  for (const method of methods) {
    const dir = path.join(outRoot, `${method}-${s}`);
    const recipe = method === 'cofi' ? cofiRecipe(s) : structuredRecipe(s);
    log(`${method} ${s} → ${dir}`);
    const t = performance.now();
    const saved = path.join(dir, 'report.json');
    let report: CompressReport;
    if (reuse && fs.existsSync(saved)) {
      report = JSON.parse(fs.readFileSync(saved, 'utf8')) as CompressReport;
      log(`  --reuse: the folder's own run (its recipe is in report.json): accuracy ${report.after.metric}`);
    } else {
      report = compressFolder(modelDir, { recipe: { recipe, where: `bench:prune ${method} ${s}` }, out: dir, force: true, log: (l) => log(`  ${l}`) });
      log(`  done in ${((performance.now() - t) / 1000).toFixed(1)} s: accuracy ${report.after.metric}`);
    }
    runs.push({ method, s, dir, report, heads: method === 'cofi' ? null : headFraction(s) });
  }

// ---- the teacher and every saved folder, loaded back; accuracy as `shrink eval` computes it
type Fwd = Module & { forward(i: ModelInputs): unknown };
const task = taskData(modelDir, taskName, { batchSize });
const load = (dir: string) => {
  const m = fromPretrained(dir) as unknown as Fwd;
  m.eval();
  return m;
};
const teacher = load(modelDir);
const teacherEnc = encoderParams(teacher);
log('scoring the teacher and the saved folders…');
const teacherAcc = task.evaluate(teacher);
const models: Record<string, Fwd> = { teacher };
const structure = (m: Module, hidden: unknown) => {
  const st = structureSummary(m);
  return `heads ${st.heads.join('/')}, FFN ${st.ffn.join('/')}, hidden ${hidden}`;
};
const loaded = runs.map((r) => {
  const m = load(r.dir);
  models[`${r.method}-${r.s}`] = m;
  const step0 = r.report.steps[0]!;
  const acc = task.evaluate(m);
  return {
    run: r,
    acc,
    enc: encoderParams(m),
    structure: structure(m, step0.hidden ?? (m as unknown as { config?: { hidden_size?: number } }).config?.hidden_size ?? '?'),
    size: modelSize(m),
  };
});

// ---- latency: everything interleaved, round by round, at batch 1 and batch 32
const inputs = { b1: task.latencyInputs(1), b32: task.latencyInputs(32) };
const lat = batchLatency(models, inputs, rounds, LAT_MIN_MS, log);

const machine = machineLine();
const r4 = (x: number) => +x.toFixed(4);
const latOf = (k: string) => latencyFields(lat, k);
const evalCmd = (dir: string) => `npx shrink eval ${dir} ${task.evalArgs.join(' ')}`;
const tSize = modelSize(teacher);
const rows: Record<string, unknown>[] = [
  {
    method: 'teacher', target_sparsity: 0, achieved_sparsity: 0, params: tSize.parameters, bytes: tSize.bytes, accuracy: r4(teacherAcc),
    delta_vs_teacher: 0, pct_of_teacher: 100, ...latOf('teacher'), structure: structure(teacher, config.hidden_size), heads: null,
    dir: modelDir, eval_command: evalCmd(modelDir), seconds: 0, machine,
  },
  ...loaded.map(({ run: r, acc, enc, structure: st, size }) => {
    const reportSparsity = r.report.steps[0]!.sparsity;
    const achieved = r.method === 'cofi' && typeof reportSparsity === 'number' ? reportSparsity : 1 - enc / teacherEnc;
    const measured = r.report.after.metric;
    return {
      method: r.method, target_sparsity: r.s, achieved_sparsity: r4(achieved), params: size.parameters, bytes: size.bytes, accuracy: r4(acc),
      delta_vs_teacher: r4(acc - teacherAcc), pct_of_teacher: r4((100 * acc) / teacherAcc), ...latOf(`${r.method}-${r.s}`), structure: st,
      heads: r.heads === null ? null : r4(r.heads), dir: r.dir, eval_command: evalCmd(r.dir), seconds: r.report.seconds, machine,
      // the folder should score exactly what compressFolder measured on the model before saving it
      ...(measured !== null && Math.abs(measured - acc) > 1e-9 ? { accuracy_before_save: measured } : {}),
    };
  }),
];

if (json) for (const r of rows) console.log(JSON.stringify(r));
else {
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  console.log(`\nbench:prune — ${path.relative(root, modelDir) || modelDir} on ${taskName}${quick ? ' (--quick: smoke test, accuracies mean nothing)' : ''}`);
  console.log(`CoFi: ${cofiSteps} steps (${prepruning} pre-pruning), structured: gradient importance, per_layer; then ${finetune} fine-tuning steps each; batch ${batchSize}; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`);
  console.log(`machine: ${machine}`);
  console.log(`latency: all models interleaved, 1 warm-up + ${rounds} rounds of ≥ ${LAT_MIN_MS} ms each; best round, ms per forward; speed-up = teacher ms / model ms within each round, median\n`);
  console.log('| method | target sparsity | achieved sparsity | parameters | bytes | accuracy | Δ vs teacher | % of teacher | b1 ms | b32 ms | speed-up b1 | speed-up b32 | structure |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const n = (k: string) => r[k] as number;
    const t = r.method === 'teacher';
    const flag = r.accuracy_before_save !== undefined ? ` (≠ ${pct(n('accuracy_before_save'))} before saving!)` : '';
    const heads = r.method === 'structured' && n('heads') !== n('target_sparsity') ? `; head fraction capped at ${+n('heads').toFixed(3)}` : '';
    console.log(
      `| ${r.method} | ${t ? '—' : n('target_sparsity')} | ${t ? '—' : pct(n('achieved_sparsity'))} | ${n('params').toLocaleString('en-US')} | ${(n('bytes') / 1024).toFixed(0)} KiB | ${pct(n('accuracy'))}${flag} | ${t ? '—' : `${n('delta_vs_teacher') >= 0 ? '+' : ''}${(100 * n('delta_vs_teacher')).toFixed(2)} pt`} | ${n('pct_of_teacher').toFixed(1)} % | ${n('latency_ms_b1').toFixed(3)} | ${n('latency_ms_b32').toFixed(3)} | ${n('speedup_b1').toFixed(2)}× | ${n('speedup_b32').toFixed(2)}× | ${r.structure}${heads} |`,
    );
  }
  console.log('\nreproduce each accuracy:');
  for (const r of rows) console.log(`  ${r.method}${r.method === 'teacher' ? '' : ` ${r.target_sparsity}`}: ${r.eval_command}`);
  console.log(`\npruned models kept in ${outRoot}`);
}
