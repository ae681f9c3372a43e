/**
 * npm run bench:distill [-- --quick] [-- --json] [-- --model <dir>] [-- --task sst2] [-- --general-teacher <dir>]
 *                       [-- --student layers=2,hidden=312,heads=6,intermediate=1200] [-- --general-steps N]
 *                       [-- --inter-steps N] [-- --pred-steps N] [-- --aug <tsv>] [-- --rows scratch,kd,…]
 *                       [-- --batch-size N] [-- --lr X] [-- --repeats N] [-- --threads N] [-- --out <dir>]
 *
 * Issue 15's distillation table on a fine-tuned BERT teacher (default data/models/bert-minilm-sst2: 6 layers, hidden
 * 384, 6 heads, SST-2), every student of one fresh config (--student, default layers 2, hidden 312, heads 6,
 * intermediate 1200: TinyBERT-4's widths at 2 layers; the heads must divide hidden, and TinyBERT's attention loss needs
 * the teacher's head count), all against the teacher, in one process:
 * - each row is a recipe object run through compressFolder (as `shrink compress --force`) into <out>/<row>:
 *   - teacher: the --model folder itself (no run);
 *   - scratch: `distill.kd` with `student` (a fresh model of that config, Hugging Face init) and `alpha: 0`, i.e.
 *     task loss only — the fine-tuning-from-scratch baseline as a one-step recipe (the teacher still runs each step,
 *     its KD term is logged with weight 0 and trains nothing);
 *   - kd: the same fresh student, `distill.kd` T 2, α 0.5 (0.5·T²·KL + 0.5·task loss);
 *     scratch and kd train for inter + pred steps (the same budget as TinyBERT's two task stages), lr --lr with 10 %
 *     warm-up and linear decay;
 *   - tinybert: recipes/distill-tinybert.json's three stages on the same student: general distillation from
 *     --general-teacher (default data/models/bert-minilm, the teacher's pretrained MLM parent; same vocabulary) on the
 *     task's text, labels unused, for --general-steps (lr --lr, warm-up + linear decay); intermediate distillation
 *     from the fine-tuned teacher for --inter-steps (lr --lr, constant); prediction distillation (T 1) for
 *     --pred-steps (lr 0.4·--lr, warm-up + linear decay: the recipe's 2e-4 against its 5e-4);
 *   - tinybert-aug: the same, the intermediate and prediction stages training on --aug <tsv> (recipe `train.data`: a
 *     TSV in the task's train.tsv format, what `npx shrink augment` writes); skipped, with a line saying so, without
 *     --aug. The general stage stays on the task's own text (upstream augments task data only);
 *   - tinybert-int8: the tinybert recipe followed by `quant.rtn` int8-dynamic (recipes/int8-dynamic.json's step) in
 *     the same recipe — the chain distil-then-quantize. Its float student retrains from the same seed, so it is the
 *     tinybert row's model unless the kernels' summation order differs between the runs.
 *   Defaults: --general-steps 2000, --inter-steps 1000, --pred-steps 1000 (recipes/distill-tinybert.json's), so
 *   scratch and kd get 2000; --batch-size 32, --lr 5e-4 (the recipe's; a fresh 2-layer student wants more than the
 *   5e-5 of fine-tuning a pretrained BERT), 64 tokens, seed 0. Before each run the global RNG is seeded with 0, so
 *   every row starts from the same fresh student. The folders are kept (default: a fresh temporary folder; --out
 *   to choose), and each row's accuracy is reproduced by the `npx shrink eval <dir> -t <task>` printed under it.
 * - parameters: non-embedding (everything but the word / position / token-type embedding tables; quantized layers
 *   count their weights) and whole-model (modelSize, embeddings and classifier included); compression = teacher's
 *   non-embedding parameters / the row's. Bytes: the folder's model.safetensors on disk (the bundled MiniLM teacher
 *   is stored as float16 and loads as float32; students are saved as float32, int8 rows as integers + scales).
 * - accuracy: the saved folder loaded back and scored on the dev set (what `shrink eval` prints); it is checked
 *   against the accuracy compressFolder measured before saving (a mismatch is flagged in the row).
 * - latency: after every run, the teacher and every saved model are loaded at once and timed INTERLEAVED, round by
 *   round (teacher, scratch, kd, …, teacher, …), at batch 1 and at batch 32 on the task's latency inputs (the first
 *   dev examples, TaskData.latencyInputs, the inputs `shrink compress` times): 1 untimed warm-up call each, then
 *   --repeats rounds (default 5); each turn repeats its forward for ≥ 20 ms and takes the mean. The table shows the
 *   best round's ms per forward, and the speed-up teacher ms / model ms taken within each round, as the median over
 *   the rounds (min–max in --json), so load from elsewhere on a shared machine hits every model alike.
 * --rows: a subset of scratch,kd,tinybert,tinybert-aug,tinybert-int8 (the teacher row is always there).
 * --quick: 10 general, 10 intermediate and 10 prediction steps (scratch and kd 20), batch 16 (a smoke test:
 *   accuracies mean nothing). With the small bundled models it runs in a few minutes:
 *   npm run bench:distill -- --quick --model data/models/bert-teacher-sst2 --general-teacher data/models/bert-teacher
 *     --student layers=1,hidden=64,heads=2,intermediate=256
 * --json: one object per row: {"row","student","non_embedding_params","params","bytes","accuracy","delta_vs_teacher",
 *   "pct_of_teacher","compression","latency_ms_b1","latency_ms_b32","speedup_b1","speedup_b1_min","speedup_b1_max",
 *   "speedup_b32",…,"train_steps","dir","eval_command","seconds","machine"}; a skipped row {"row","skipped"}.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressFolder, readRecipe, type CompressReport } from '../src/cli/compress.ts';
import type { Recipe, RecipeStep } from '../src/compress/runner.ts';
import type { StudentSpec } from '../src/compress/distill/student.ts';
import { isTaskName, taskData } from '../src/compress/tasks.ts';
import { readConfig } from '../src/io/hf.ts';
import { fromPretrained } from '../src/models/registry.ts';
import type { ModelInputs } from '../src/models/outputs.ts';
import type { Module } from '../src/nn/module.ts';
import { modelSize } from '../src/eval/size.ts';
import { manualSeed } from '../src/tensor/random.ts';
import { setNumThreads } from '../src/backend/registry.ts';
import { batchLatency, benchArgs, latencyFields, machineLine } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { has, arg, intArg } = benchArgs('bench/distill.ts', ['--json', '--quick'], ['--model', '--task', '--general-teacher', '--student', '--general-steps', '--inter-steps', '--pred-steps', '--aug', '--rows', '--batch-size', '--lr', '--repeats', '--threads', '--out']);
const json = has('--json');
const quick = has('--quick');

const modelDir = path.resolve(arg('--model') ?? path.join(root, 'data/models/bert-minilm-sst2'));
const generalTeacher = path.resolve(arg('--general-teacher') ?? path.join(root, 'data/models/bert-minilm'));
for (const [k, d] of [['--model', modelDir], ['--general-teacher', generalTeacher]] as const)
  if (!fs.existsSync(path.join(d, 'config.json'))) throw new Error(`${k}: ${d} is not a model folder (no config.json)`);
const taskName = arg('--task') ?? 'sst2';
if (!isTaskName(taskName) || taskName.startsWith('ppl:')) throw new Error(`--task must be a GLUE task (sst2, mrpc, rte, cola), got '${taskName}'`);
const STUDENT_KEYS = ['layers', 'hidden', 'heads', 'intermediate'] as const;
const student: StudentSpec = Object.fromEntries(
  (arg('--student') ?? 'layers=2,hidden=312,heads=6,intermediate=1200').split(',').map((kv) => {
    const [k, v] = kv.split('=');
    const n = Number(v);
    if (!(STUDENT_KEYS as readonly string[]).includes(k!) || !(Number.isInteger(n) && n >= 1))
      throw new Error(`--student: expected key=value pairs of ${STUDENT_KEYS.join(', ')} with positive integers, got '${kv}'`);
    return [k!, n];
  }),
);
const studentLabel = STUDENT_KEYS.filter((k) => student[k] !== undefined).map((k) => `${k} ${student[k]}`).join(', ');
const ROWS = ['scratch', 'kd', 'tinybert', 'tinybert-aug', 'tinybert-int8'] as const;
type RowName = (typeof ROWS)[number];
const rowNames = (arg('--rows') ?? ROWS.join(',')).split(',').map((r) => {
  if (!(ROWS as readonly string[]).includes(r)) throw new Error(`--rows: each must be one of ${ROWS.join(', ')}, got '${r}'`);
  return r as RowName;
});
const TINYBERT_RECIPE = path.join(root, 'recipes/distill-tinybert.json');
type Described = Recipe & { description?: string };
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const base: Described = readRecipe(TINYBERT_RECIPE);
const [gen0, inter0, pred0] = base.steps;
if (gen0?.stage !== 'general' || inter0?.stage !== 'intermediate' || pred0?.stage !== 'prediction') throw new Error(`${TINYBERT_RECIPE}: expected the stages general, intermediate, prediction`);
const generalSteps = intArg('--general-steps', quick ? 10 : (gen0.train?.steps ?? 2000), 1);
const interSteps = intArg('--inter-steps', quick ? 10 : (inter0.train?.steps ?? 1000), 1);
const predSteps = intArg('--pred-steps', quick ? 10 : (pred0.train?.steps ?? 1000), 1);
const taskSteps = interSteps + predSteps;
const batchSize = intArg('--batch-size', quick ? 16 : (base.train?.batch_size ?? 32), 1);
const lrArg = arg('--lr');
const lr = lrArg === undefined ? (base.train?.lr ?? 5e-4) : Number(lrArg);
if (!(lr > 0 && Number.isFinite(lr))) throw new Error(`--lr must be a positive number, got ${lrArg}`);
const predLr = +(lr * ((pred0.train?.lr ?? 2e-4) / (base.train?.lr ?? 5e-4))).toPrecision(6);
const aug = arg('--aug') !== undefined ? path.resolve(arg('--aug')!) : undefined;
const rounds = intArg('--repeats', 5, 1);
if (arg('--threads') !== undefined) setNumThreads(intArg('--threads', 1, 1));
const outRoot = path.resolve(arg('--out') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-distill-')));
fs.mkdirSync(outRoot, { recursive: true });
const LAT_MIN_MS = 20;
const SEED = 0;
const log = (s: string) => process.stderr.write(s + '\n');

/** Logit KD into the fresh student for inter + pred steps; alpha 0 = the task loss only (the from-scratch baseline). */
function kdRecipe(alpha: number): Described {
  return {
    description: alpha === 0 ? `bench:distill: a fresh student (${studentLabel}) fine-tuned on the task loss only, ${taskSteps} steps` : `bench:distill: logit KD (T 2, alpha ${alpha}) into a fresh student (${studentLabel}), ${taskSteps} steps`,
    model: modelDir,
    task: taskName,
    train: { steps: taskSteps, lr, batch_size: batchSize, warmup: 0.1, schedule: 'linear', task_weight: 0, seed: SEED },
    steps: [{ method: 'distill.kd', student: { ...student }, temperature: 2, alpha }],
  };
}
/** recipes/distill-tinybert.json with this bench's teacher, student, steps and rates; `data` for the two task stages. */
function tinybertRecipe(data?: string, quantize = false): Described {
  const r: Described = clone(base);
  r.model = modelDir;
  r.task = taskName;
  r.train = { ...r.train, lr, batch_size: batchSize, seed: SEED };
  const [gen, inter, pred] = r.steps as [RecipeStep, RecipeStep, RecipeStep];
  Object.assign(gen, { teacher: generalTeacher, student: { ...student } });
  gen.train = { ...gen.train, steps: generalSteps };
  inter.train = { ...inter.train, steps: interSteps, ...(data ? { data } : {}) };
  pred.train = { ...pred.train, steps: predSteps, lr: predLr, ...(data ? { data } : {}) };
  if (quantize) {
    const q = readRecipe(path.join(root, 'recipes/int8-dynamic.json')).steps;
    if (q.length !== 1 || q[0]!.method !== 'quant.rtn') throw new Error('recipes/int8-dynamic.json: expected one quant.rtn step');
    r.steps.push(clone(q[0]!));
  }
  r.description = `bench:distill: TinyBERT general (${generalSteps} steps from ${path.relative(root, generalTeacher) || generalTeacher}) + intermediate (${interSteps}) + prediction (${predSteps})${data ? ` on ${data}` : ''}${quantize ? ', then int8-dynamic RTN' : ''} into ${studentLabel}`;
  return r;
}
const recipes: Record<RowName, () => Described | string> = {
  scratch: () => kdRecipe(0),
  kd: () => kdRecipe(0.5),
  tinybert: () => tinybertRecipe(),
  'tinybert-aug': () => (aug ? tinybertRecipe(aug) : 'no --aug <tsv> given (make one with: npx shrink augment <mlm model> --task <task> -o aug.tsv)'),
  'tinybert-int8': () => tinybertRecipe(undefined, true),
};

interface Run {
  row: RowName;
  dir: string;
  report: CompressReport;
  steps: number;
}
const runs: Run[] = [];
const skipped: { row: RowName; skipped: string }[] = [];
const t0 = performance.now();
for (const row of rowNames) {
  const recipe = recipes[row]();
  if (typeof recipe === 'string') {
    log(`${row}: skipped: ${recipe}`);
    skipped.push({ row, skipped: recipe });
    continue;
  }
  const dir = path.join(outRoot, row);
  log(`${row} → ${dir}`);
  const t = performance.now();
  manualSeed(SEED); // every row's fresh student from the same initialisation
  const report = compressFolder(modelDir, { recipe: { recipe, where: `bench:distill ${row}` }, out: dir, force: true, log: (l) => log(`  ${l}`) });
  log(`  done in ${((performance.now() - t) / 1000).toFixed(1)} s: accuracy ${report.after.metric}`);
  const steps = (recipe.steps as RecipeStep[]).reduce((n, s) => n + (s.train?.steps ?? 0), 0) || (recipe.train?.steps ?? 0);
  runs.push({ row, dir, report, steps });
}

// ---- the teacher and every saved folder, loaded back; accuracy as `shrink eval` computes it
type Fwd = Module & { forward(i: ModelInputs): unknown };
const task = taskData(modelDir, taskName, { batchSize });
const load = (dir: string) => {
  const m = fromPretrained(dir) as unknown as Fwd;
  m.eval();
  return m;
};
/** Weights of everything but the word / position / token-type embedding tables (as stored: quantized layers count their weights). */
const EMBEDDING = /(^|\.)embeddings\.(word|position|token_type)_embeddings$/;
const nonEmbedding = (m: Module) => modelSize(m).parameters - m.namedModules().filter(([n]) => EMBEDDING.test(n)).reduce((s, [, e]) => s + modelSize(e).parameters, 0);
const fileBytes = (dir: string) => fs.statSync(path.join(dir, 'model.safetensors')).size;
const teacher = load(modelDir);
log('scoring the teacher and the saved folders…');
const teacherAcc = task.evaluate(teacher);
const teacherNonEmb = nonEmbedding(teacher);
const models: Record<string, Fwd> = { teacher };
const shape = (dir: string) => {
  const c = readConfig(dir);
  return `${c.num_hidden_layers} layer${c.num_hidden_layers === 1 ? '' : 's'}, hidden ${c.hidden_size}, heads ${c.num_attention_heads}, FFN ${c.intermediate_size}${c.quantization_config ? `, ${(c.quantization_config as { scheme?: string }).scheme ?? 'quantized'}` : ''}`;
};
const loaded = runs.map((r) => {
  const m = load(r.dir);
  models[r.row] = m;
  return { run: r, acc: task.evaluate(m), nonEmb: nonEmbedding(m), size: modelSize(m) };
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
    row: 'teacher', student: shape(modelDir), non_embedding_params: teacherNonEmb, params: tSize.parameters, bytes: fileBytes(modelDir), accuracy: r4(teacherAcc),
    delta_vs_teacher: 0, pct_of_teacher: 100, compression: 1, ...latOf('teacher'), train_steps: 0, dir: modelDir, eval_command: evalCmd(modelDir), seconds: 0, machine,
  },
  ...loaded.map(({ run: r, acc, nonEmb, size }) => {
    const measured = r.report.after.metric;
    return {
      row: r.row, student: shape(r.dir), non_embedding_params: nonEmb, params: size.parameters, bytes: fileBytes(r.dir), accuracy: r4(acc),
      delta_vs_teacher: r4(acc - teacherAcc), pct_of_teacher: r4((100 * acc) / teacherAcc), compression: r4(teacherNonEmb / nonEmb), ...latOf(r.row),
      train_steps: r.steps, dir: r.dir, eval_command: evalCmd(r.dir), seconds: r.report.seconds, machine,
      // the folder should score exactly what compressFolder measured on the model before saving it
      ...(measured !== null && Math.abs(measured - acc) > 1e-9 ? { accuracy_before_save: measured } : {}),
    };
  }),
];

if (json) {
  for (const r of rows) console.log(JSON.stringify(r));
  for (const s of skipped) console.log(JSON.stringify(s));
} else {
  const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
  console.log(`\nbench:distill — ${path.relative(root, modelDir) || modelDir} on ${taskName}${quick ? ' (--quick: smoke test, accuracies mean nothing)' : ''}`);
  console.log(
    `student: ${studentLabel}, fresh; scratch / kd: ${taskSteps} steps at lr ${lr}; tinybert: general ${generalSteps} steps from ${path.relative(root, generalTeacher) || generalTeacher} (lr ${lr}), intermediate ${interSteps} (lr ${lr}, constant), prediction ${predSteps} (lr ${predLr})${aug ? `; aug: ${aug}` : ''}; batch ${batchSize}; ${((performance.now() - t0) / 1000).toFixed(0)} s in all`,
  );
  console.log(`machine: ${machine}`);
  console.log(`latency: all models interleaved, 1 warm-up + ${rounds} rounds of ≥ ${LAT_MIN_MS} ms each; best round, ms per forward; speed-up = teacher ms / model ms within each round, median\n`);
  console.log('| row | model | non-embedding params | compression | parameters | bytes | accuracy | Δ vs teacher | % of teacher | b1 ms | b32 ms | speed-up b1 | speed-up b32 | train steps |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const n = (k: string) => r[k] as number;
    const t = r.row === 'teacher';
    const flag = r.accuracy_before_save !== undefined ? ` (≠ ${pct(n('accuracy_before_save'))} before saving!)` : '';
    console.log(
      `| ${r.row} | ${r.student} | ${n('non_embedding_params').toLocaleString('en-US')} | ${t ? '1×' : `${n('compression').toFixed(2)}×`} | ${n('params').toLocaleString('en-US')} | ${(n('bytes') / 1024).toFixed(0)} KiB | ${pct(n('accuracy'))}${flag} | ${t ? '—' : `${n('delta_vs_teacher') >= 0 ? '+' : ''}${(100 * n('delta_vs_teacher')).toFixed(2)} pt`} | ${n('pct_of_teacher').toFixed(1)} % | ${n('latency_ms_b1').toFixed(3)} | ${n('latency_ms_b32').toFixed(3)} | ${n('speedup_b1').toFixed(2)}× | ${n('speedup_b32').toFixed(2)}× | ${t ? '—' : n('train_steps')} |`,
    );
  }
  for (const s of skipped) console.log(`\n${s.row}: skipped (${s.skipped})`);
  console.log('\nreproduce each accuracy:');
  for (const r of rows) console.log(`  ${r.row}: ${r.eval_command}`);
  console.log(`\nmodels kept in ${outRoot}`);
}
