/**
 * Recipes: plain data (JSON or YAML) naming a chain of methods, and the staged runner that applies them in order.
 *
 * ```json
 * { "model": "data/models/bert-teacher-sst2", "task": "sst2",
 *   "train": { "steps": 500, "lr": 1e-4 },
 *   "steps": [ { "method": "quant.qat", "scheme": "int8-dynamic" }, { "method": "quant.rtn", "scheme": "int8" } ] }
 * ```
 *
 * Order is kept: a one-shot step applies and finalizes at once; consecutive trained steps share one training stage
 * (their parameter groups, losses and hooks join one Trainer run), finalized together at its end; every stage starts
 * from the previous stage's result. The loss of a stage is `task_weight · task loss + Σ weight · method loss`, each
 * term logged under its full id (`task`, `quant.qat.…`). Everything is checked before any work: unknown methods,
 * unknown or mistyped options, globs that match no module, a trained step without a task.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Module } from '../nn/module.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { manualSeed } from '../tensor/random.ts';
import { Trainer, checkpointStep, type ExtraParamGroup, type LogEntry } from '../train/trainer.ts';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.ts';
import type { ModelInputs, ModelOutput, ForwardOptions } from '../models/outputs.ts';
import { getMethod, type Method, type MethodRun, type OptionType, type RecipeContext } from './method.ts';
import { matchesAny } from './select.ts';
import type { TaskData } from './tasks.ts';
import { ShrinkError, show } from '../io/errors.ts';

/** Training settings of a recipe (snake_case as in the file); each stage uses them. */
export interface TrainSettings {
  steps: number;
  lr: number;
  batch_size: number;
  /** Warm-up: a fraction of the steps (< 1) or a step count. */
  warmup: number;
  weight_decay: number;
  max_grad_norm: number;
  schedule: 'linear' | 'cosine' | 'constant';
  /** Weight of the task loss (0 drops it, e.g. for pure distillation). */
  task_weight: number;
  /** Tokens per example / block. */
  max_length: number;
  seed: number;
  /** Save a checkpoint every N steps (with an output folder). */
  save_every: number;
  /**
   * Score the model on the task's dev set every N steps (and after the last) and end the stage on the best-scoring
   * state, counting only evaluations at which every method of the stage agrees (`MethodRun.bestEligible`, e.g.
   * prune.cofi once its expected sparsity is within ε of the target). 0: off, the stage ends on its last step.
   */
  eval_every: number;
  /**
   * Train on this file instead of the task's train split (GLUE: a TSV in the task's train.tsv format, e.g. what
   * `shrink augment` writes); dev evaluation, calibration and latency inputs stay the task's. Unset (or null): the
   * task's own train split. `shrink compress` resolves a relative path against the recipe file's folder.
   */
  data?: string | null;
}

export const TRAIN_DEFAULTS: TrainSettings = { steps: 500, lr: 1e-4, batch_size: 32, warmup: 0.1, weight_decay: 0.01, max_grad_norm: 1, schedule: 'linear', task_weight: 1, max_length: 64, seed: 0, save_every: 100, eval_every: 0 };

const TRAIN_TYPES: Record<keyof TrainSettings, OptionType> = {
  steps: 'integer', lr: 'number', batch_size: 'integer', warmup: 'number', weight_decay: 'number', max_grad_norm: 'number',
  schedule: ['linear', 'cosine', 'constant'], task_weight: 'number', max_length: 'integer', seed: 'integer', save_every: 'integer', eval_every: 'integer', data: 'string',
};

/** Keys every step may carry beside the method's own options. */
const STEP_KEYS = ['method', 'weight', 'loss_weights', 'train'] as const;

/** Training settings a step may override for the stage it starts (the data pipeline's batch_size and max_length stay the recipe's). */
const STAGE_TRAIN_KEYS = ['steps', 'lr', 'warmup', 'weight_decay', 'max_grad_norm', 'schedule', 'task_weight', 'seed', 'save_every', 'eval_every', 'data'] as const;

export interface RecipeStep {
  method: string;
  /** Multiplies every loss of this step (default 1). */
  weight?: number;
  /** Per-loss weights by short name (multiplied with `weight`). */
  loss_weights?: Record<string, number>;
  /**
   * A trained step with its own `train` settings starts a new training stage (instead of joining the previous
   * trained steps) and overrides the recipe's settings for that stage: CoFi's pruning stage, then a fine-tuning
   * stage of its own length and learning rate.
   */
  train?: Partial<TrainSettings>;
  [option: string]: unknown;
}

export interface Recipe {
  /** Model folder (the CLI's <model> argument overrides it). */
  model?: string;
  /** GLUE task or ppl:<file> (the CLI's --task overrides it). */
  task?: string;
  /** Teacher folder for distilling methods (default: the input model). */
  teacher?: string;
  /** Calibration examples for methods that need data (default 128). */
  calibration_samples?: number;
  train?: Partial<TrainSettings>;
  steps: RecipeStep[];
}

const RECIPE_KEYS = ['model', 'task', 'teacher', 'calibration_samples', 'train', 'steps', 'description'] as const;

/** A resolved step: the method, its full config (defaults filled in), its weights. */
export interface ResolvedStep {
  index: number;
  method: Method<object>;
  cfg: Record<string, unknown>;
  weight: number;
  lossWeights: Record<string, number>;
  /** The step's own stage settings (see RecipeStep.train). */
  train?: Partial<TrainSettings>;
}

function typeName(t: OptionType): string {
  return Array.isArray(t) ? `one of ${(t as readonly string[]).map((x) => `'${x}'`).join(', ')}` : String(t);
}

function checkType(v: unknown, t: OptionType): boolean {
  if (Array.isArray(t)) return typeof v === 'string' && (t as readonly string[]).includes(v);
  switch (t) {
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'number[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'number');
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
  return false;
}

function inferType(d: unknown): OptionType | null {
  if (typeof d === 'number') return 'number';
  if (typeof d === 'boolean') return 'boolean';
  if (typeof d === 'string') return 'string';
  if (Array.isArray(d)) return d.every((x) => typeof x === 'number') && d.length ? 'number[]' : 'string[]';
  if (d !== null && typeof d === 'object') return 'object';
  return null;
}

/** Check a recipe's shape and every field; returns it typed. `where` names the file in errors. */
export function parseRecipe(raw: unknown, where = 'recipe'): Recipe {
  const r: Record<string, unknown> = Array.isArray(raw) ? { steps: raw } : (raw as Record<string, unknown>);
  if (r !== null && typeof r === 'object' && Object.getPrototypeOf(r) !== Object.prototype && Object.getPrototypeOf(r) !== null)
    throw new ShrinkError(`${where}: expected a plain object with "steps" (or a list of steps)`);
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new ShrinkError(`${where}: expected an object with "steps" (or a list of steps)`);
  for (const k of Object.keys(r)) if (!(RECIPE_KEYS as readonly string[]).includes(k)) throw new ShrinkError(`${where}: unknown field '${k}' (fields: ${RECIPE_KEYS.join(', ')})`);
  for (const k of ['model', 'task', 'teacher', 'description'] as const)
    if (r[k] !== undefined && typeof r[k] !== 'string') throw new ShrinkError(`${where}: "${k}" must be a string, got ${show(r[k])}`);
  if (r.calibration_samples !== undefined && !(Number.isInteger(r.calibration_samples) && (r.calibration_samples as number) >= 1))
    throw new ShrinkError(`${where}: "calibration_samples" must be a positive integer, got ${show(r.calibration_samples)}`);
  if (!Array.isArray(r.steps) || r.steps.length === 0) throw new ShrinkError(`${where}: "steps" must be a non-empty list of steps`);
  if (r.train !== undefined) checkTrain(r.train, Object.keys(TRAIN_TYPES), `${where}: train`);
  r.steps.forEach((s, i) => {
    if (s === null || typeof s !== 'object' || Array.isArray(s) || typeof (s as RecipeStep).method !== 'string')
      throw new ShrinkError(`${where}: step ${i + 1}: expected an object with a "method" string, got ${show(s)}`);
    const t = (s as RecipeStep).train;
    if (t !== undefined) checkTrain(t, STAGE_TRAIN_KEYS, `${where}: step ${i + 1} (${(s as RecipeStep).method}): train`);
  });
  return r as unknown as Recipe;
}

function checkTrain(train: unknown, keys: readonly string[], where: string): void {
  if (typeof train !== 'object' || train === null || Array.isArray(train)) throw new ShrinkError(`${where}: must be an object`);
  for (const [k, v] of Object.entries(train)) {
    const t = TRAIN_TYPES[k as keyof TrainSettings];
    if (!t || !keys.includes(k)) throw new ShrinkError(`${where}: unknown field '${k}' (fields: ${keys.join(', ')})`);
    if (k === 'data' && v === null) continue; // the task's own train split
    if (k === 'data' && v === '') throw new ShrinkError(`${where}.data: expected the path of a train file, got ""`);
    if (!checkType(v, t)) throw new ShrinkError(`${where}.${k}: expected ${typeName(t)}, got ${show(v)}`);
    if (typeof v === 'number' && v < 0) throw new ShrinkError(`${where}.${k}: must not be negative, got ${v}`);
  }
  if ((train as Partial<TrainSettings>).steps === 0) throw new ShrinkError(`${where}.steps: must be at least 1`);
}

/** Resolve every step against the registry and the model: defaults filled in, types and globs checked. */
export function resolveSteps(recipe: Recipe, model: Module | null, where = 'recipe'): ResolvedStep[] {
  const names = model ? model.namedModules().map(([n]) => n).filter((n) => n !== '') : null;
  return recipe.steps.map((step, i) => {
    const label = `${where}: step ${i + 1} (${step.method})`;
    let method: Method<object>;
    try {
      method = getMethod(step.method);
    } catch (e) {
      throw new ShrinkError(`${where}: step ${i + 1}: ${(e as Error).message}`, { cause: e });
    }
    const defaults = method.defaults as Record<string, unknown>;
    const types = (method.types ?? {}) as Record<string, OptionType>;
    const cfg: Record<string, unknown> = { ...defaults };
    for (const [k, v] of Object.entries(step)) {
      if ((STEP_KEYS as readonly string[]).includes(k)) continue;
      if (!Object.hasOwn(defaults, k)) throw new ShrinkError(`${label}: unknown option '${k}' (options: ${[...Object.keys(defaults), 'weight', 'loss_weights'].join(', ')})`);
      const t = types[k] ?? inferType(defaults[k]);
      if (v !== null && t && !checkType(v, t)) throw new ShrinkError(`${label}: option '${k}' expects ${typeName(t)}, got ${show(v)}`);
      cfg[k] = v;
    }
    if (step.weight !== undefined && !(typeof step.weight === 'number' && step.weight >= 0)) throw new ShrinkError(`${label}: "weight" must be a number >= 0, got ${show(step.weight)}`);
    if (step.loss_weights !== undefined && !checkType(step.loss_weights, 'object')) throw new ShrinkError(`${label}: "loss_weights" must be an object of numbers`);
    for (const [k, v] of Object.entries(step.loss_weights ?? {})) if (typeof v !== 'number') throw new ShrinkError(`${label}: loss_weights.${k}: expected a number, got ${show(v)}`);
    if (names)
      for (const g of method.globs ?? []) {
        const globs = cfg[g];
        if (globs === null || globs === undefined) continue;
        for (const glob of globs as string[]) if (!names.some((n) => matchesAny(n, [glob]))) throw new ShrinkError(`${label}: ${g} glob '${glob}' matches no module of ${model!.constructor.name}`);
      }
    if (step.train && method.kind !== 'trained') throw new ShrinkError(`${label}: "train" applies to trained steps only (${method.name} is one-shot)`);
    return { index: i, method, cfg, weight: step.weight ?? 1, lossWeights: step.loss_weights ?? {}, ...(step.train ? { train: step.train } : {}) };
  });
}

/** Training settings with defaults filled in. */
export function resolveTrain(recipe: Recipe): TrainSettings {
  return { ...TRAIN_DEFAULTS, ...(recipe.train ?? {}) };
}

/** The recipe with every default written out (what report.json records). */
export function resolvedRecipe(recipe: Recipe, steps: ResolvedStep[]): Record<string, unknown> {
  const needsTraining = steps.some((s) => s.method.kind === 'trained');
  return {
    ...(recipe.model ? { model: recipe.model } : {}),
    ...(recipe.task ? { task: recipe.task } : {}),
    ...(recipe.teacher ? { teacher: recipe.teacher } : {}),
    ...(needsTraining ? { train: resolveTrain(recipe) } : {}),
    steps: steps.map((s) => ({ method: s.method.name, ...s.cfg, ...(s.weight !== 1 ? { weight: s.weight } : {}), ...(Object.keys(s.lossWeights).length ? { loss_weights: s.lossWeights } : {}), ...(s.train ? { train: s.train } : {}) })),
  };
}

export interface RunOptions {
  /** Training data and evaluation (needed by trained steps, and for calibration when none is given). */
  task?: TaskData;
  /** The teacher, built on first use (only when a method asks for it). */
  teacher?: () => Module;
  calibration?: () => Iterable<Record<string, Tensor>>;
  /** Checkpoints of training stages go to `<checkpointDir>/stage-<k>` (resumable). */
  checkpointDir?: string;
  resume?: boolean;
  log?: (line: string) => void;
  onLog?: (stage: number, e: LogEntry, totalSteps: number) => void;
}

export interface StepReport {
  step: number;
  method: string;
  kind: string;
  stage: number;
  ms: number;
  [k: string]: unknown;
}

export interface RunResult {
  steps: StepReport[];
  interrupted: boolean;
  /** Loss history per training stage. */
  history: LogEntry[][];
}

type ForwardModel = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };

/** Group steps into stages: each one-shot step alone, consecutive trained steps together (a step with its own `train` starts a new stage). */
export function stagesOf(steps: ResolvedStep[]): ResolvedStep[][] {
  const out: ResolvedStep[][] = [];
  for (const s of steps) {
    const last = out[out.length - 1];
    if (s.method.kind === 'trained' && !s.train && last && last[0]!.method.kind === 'trained') last.push(s);
    else out.push([s]);
  }
  return out;
}

/**
 * Check what can be checked before any work: tasks for trained steps, each method's own checks, and with `train`
 * (the recipe's resolved settings) every training stage's `train.data` file: it is loaded and parsed now (the task
 * keeps it for the stage). `dataKey` names the recipe-level key in errors (the CLI says which flag set it).
 */
export function checkRun(model: Module, steps: ResolvedStep[], opts: RunOptions, where = 'recipe', train?: TrainSettings, dataKey = 'train.data'): void {
  for (const stage of stagesOf(steps)) {
    // a trained stage's methods see its train settings (the recipe's, then the stage's own), as apply will
    const stageTrain = train && stage[0]!.method.kind === 'trained' ? { ...train, ...(stage[0]!.train ?? {}) } : undefined;
    for (const s of stage) {
      if (s.method.kind === 'trained' && !opts.task) throw new Error(`${where}: step ${s.index + 1} (${s.method.name}) trains the model and needs a task (recipe "task" or --task)`);
      s.method.check?.(model, s.cfg, contextFor(opts, stageTrain?.steps ?? 0, stageTrain));
    }
  }
  if (train) for (const stage of stagesOf(steps)) stageTask(stage, train, opts.task, where, dataKey);
}

/** The task a training stage draws its batches from: the task itself, or the task on the stage's `train.data` file (errors name the key). */
function stageTask(stage: ResolvedStep[], train: TrainSettings, task: TaskData | undefined, where: string, dataKey = 'train.data'): TaskData | undefined {
  const first = stage[0]!;
  if (first.method.kind !== 'trained') return task;
  const own = first.train && Object.hasOwn(first.train, 'data');
  const file = own ? first.train!.data : train.data;
  if (file === undefined || file === null || !task) return task;
  const key = own ? `step ${first.index + 1} (${first.method.name}): train.data` : dataKey;
  if (!task.withTrainData) throw new ShrinkError(`${where}: ${key}: task ${task.name} cannot train on a file (train.data takes a GLUE task: sst2, mrpc, rte, cola)`);
  try {
    return task.withTrainData(file);
  } catch (e) {
    throw new ShrinkError(`${where}: ${key}: ${(e as Error).message}`, { cause: e });
  }
}

function contextFor(opts: RunOptions, totalSteps: number, train?: TrainSettings): RecipeContext {
  let teacher: Module | undefined;
  const ctx: RecipeContext = {
    calibration: opts.calibration ?? (opts.task ? () => opts.task!.calibration() : undefined),
    totalSteps,
    train,
    log: opts.log,
  };
  Object.defineProperty(ctx, 'teacher', { enumerable: true, get: () => (teacher ??= opts.teacher?.()) });
  return ctx;
}

/**
 * Run resolved steps on `model` in recipe order (see the file comment). Returns per-step reports; stops after the
 * current training step on Ctrl-C (`interrupted`), leaving later steps undone.
 */
export function runSteps(model: Module, steps: ResolvedStep[], train: TrainSettings, opts: RunOptions = {}): RunResult {
  const reports: StepReport[] = [];
  const history: LogEntry[][] = [];
  const stages = stagesOf(steps);
  for (const [k, stage] of stages.entries()) {
    const t0 = performance.now();
    const kind = stage[0]!.method.kind;
    if (kind === 'one-shot') {
      const s = stage[0]!;
      opts.log?.(`stage ${k + 1}/${stages.length}: ${s.method.name}`);
      const run = s.method.apply(model, s.cfg, contextFor(opts, 0)) ?? {};
      run.finalize?.();
      reports.push({ step: s.index + 1, method: s.method.name, kind, stage: k + 1, ms: Math.round(performance.now() - t0), ...(run.report?.() ?? {}) });
      continue;
    }
    const stageTrain = { ...train, ...(stage[0]!.train ?? {}) };
    opts.log?.(`stage ${k + 1}/${stages.length}: train ${stage.map((s) => s.method.name).join(' + ')} for ${stageTrain.steps} steps`);
    const ctx = contextFor(opts, stageTrain.steps, stageTrain);
    const runs: [ResolvedStep, MethodRun][] = stage.map((s) => [s, s.method.apply(model, s.cfg, ctx) ?? {}]);
    const task = stageTask(stage, train, opts.task, 'recipe');
    if (task?.trainFile) opts.log?.(`stage ${k + 1}/${stages.length}: training batches from ${task.trainFile} (${task.trainRows} rows)`);
    const r = trainStage(model, runs, stageTrain, { ...opts, task }, ctx, k);
    history.push(r.history);
    if (r.interrupted) return { steps: reports, interrupted: true, history };
    for (const [s, run] of runs) {
      run.finalize?.();
      reports.push({ step: s.index + 1, method: s.method.name, kind, stage: k + 1, ms: Math.round(performance.now() - t0), ...(run.report?.() ?? {}) });
    }
  }
  return { steps: reports, interrupted: false, history };
}

function trainStage(model: Module, runs: [ResolvedStep, MethodRun][], train: TrainSettings, opts: RunOptions, ctx: RecipeContext, k: number) {
  const task = opts.task!;
  manualSeed(train.seed);
  const needs = runs.reduce((a, [, r]) => ({ ...a, ...Object.fromEntries(Object.entries(r.needs ?? {}).filter(([, v]) => v)) }), {} as Record<string, boolean>);
  const paramGroups: ExtraParamGroup[] = [];
  const stateful: Record<string, { state(): unknown; setState(s: never): void }> = { sampler: task.sampler };
  for (const [s, run] of runs) {
    for (const g of run.params?.() ?? []) paramGroups.push({ ...g, name: `${s.method.name}.${g.name}`, lr: g.lr ?? train.lr });
    if (run.state && run.setState) stateful[`step${s.index + 1}:${s.method.name}`] = { state: () => run.state!(), setState: (x: never) => run.setState!(x) };
  }
  const fwdOpts: ForwardOptions = { outputHiddenStates: needs.hiddenStates, outputAttentions: needs.attentions, outputAttentionScores: needs.attentionScores };
  const teacher = needs.teacher ? ctx.teacher : undefined; // the one the methods saw in apply (loaded once per stage)
  if (needs.teacher && !teacher) throw new Error(`${runs.map(([s]) => s.method.name).join(', ')}: needs a teacher model, and none was given`);
  const warmup = train.warmup < 1 ? Math.floor(train.warmup * train.steps) : Math.floor(train.warmup);
  const stageDir = opts.checkpointDir ? `${opts.checkpointDir}/stage-${k + 1}` : undefined;
  const trainer = new Trainer(
    model,
    {
      totalSteps: train.steps,
      lr: train.lr,
      weightDecay: train.weight_decay,
      warmupSteps: warmup,
      schedule: train.schedule,
      maxGradNorm: train.max_grad_norm,
      outDir: stageDir,
      saveEvery: opts.checkpointDir ? train.save_every : 0,
      resume: opts.resume ?? true,
      greaterIsBetter: task.greaterIsBetter,
      evalEvery: train.eval_every || undefined,
      saveBest: false, // the stage writes its own best state, method parameters included (best-state.safetensors)
    },
    {
      lossFn: ({ step }) => {
        const batch = task.nextBatch();
        const student = (model as ForwardModel).forward(batch, fwdOpts);
        // the teacher never sees labels: its loss is unused, and an MLM teacher cannot score classification labels
        const t = teacher ? noGrad(() => (teacher as ForwardModel).forward({ ...batch, labels: null }, fwdOpts)) : undefined;
        const parts: Record<string, Tensor> = {};
        let total: Tensor | null = null;
        const add = (name: string, v: Tensor, w: number) => {
          if (parts[name]) throw new Error(`two losses are named '${name}'`);
          parts[name] = v;
          if (w !== 0) total = total ? total.add(w === 1 ? v : v.mul(w)) : w === 1 ? v : v.mul(w);
        };
        if (train.task_weight !== 0) {
          if (!student.loss) throw new Error(`the model returned no task loss (labels missing?); set train.task_weight to 0 to train on method losses only`);
          add('task', student.loss, train.task_weight);
        }
        for (const [s, run] of runs)
          for (const [name, v] of Object.entries(run.losses?.({ batch, student, teacher: t, step, model }) ?? {})) add(`${s.method.name}.${name}`, v, s.weight * (s.lossWeights[name] ?? 1));
        if (!total) throw new Error(`stage ${k + 1} has no loss to train on (task_weight is 0 and no method adds a loss)`);
        return { loss: total, parts };
      },
      stateful,
      paramGroups,
      teacher,
      beforeStep: (step) => runs.forEach(([, r]) => r.beforeStep?.(step)),
      afterOptimizerStep: (step) => runs.forEach(([, r]) => r.afterOptimizerStep?.(step)),
      onLog: (e) => opts.onLog?.(k + 1, e, train.steps),
      evaluate: train.eval_every
        ? (step) => {
            const metric = task.evaluate(model);
            const eligible = runs.every(([, r]) => r.bestEligible?.() ?? true);
            const better = best === undefined || (task.greaterIsBetter ? metric > best.metric : metric < best.metric);
            if (eligible && better) {
              best = { step, metric, tensors: [...tracked()].map(([n, t]) => [n, t.clone()]) };
              if (stageDir) saveBest(stageDir, best);
            }
            opts.log?.(`stage ${k + 1}: step ${step}: dev ${task.metric} ${metric.toFixed(4)}${eligible ? (better ? ' (best so far)' : '') : ' (not eligible for best)'}`);
            return { metric, eligible: eligible ? 1 : 0 };
          }
        : undefined,
    },
  );
  // With eval_every: the best eligible state, kept in memory: the model's tensors and the methods' own parameters
  // (taken afresh each time: the optimizer may give a parameter new storage). With checkpoints it is also written
  // beside them (best-state.safetensors), so a stage killed after its best evaluation and resumed still ends on it.
  const tracked = () => new Map<string, Tensor>([...model.stateDict(), ...paramGroups.flatMap((g) => g.params.map(([n, t]) => [`${g.name}.${n}`, t] as [string, Tensor]))]);
  let best: BestState | undefined = train.eval_every && stageDir && (opts.resume ?? true) ? loadBest(stageDir, tracked()) : undefined;
  if (best) opts.log?.(`stage ${k + 1}: resumed with its best eligible evaluation so far: step ${best.step}, dev ${task.metric} ${best.metric.toFixed(4)}`);
  const r = trainer.train();
  if (train.eval_every && !r.interrupted) {
    if (best) {
      const now = tracked();
      for (const [n, t] of best.tensors) now.get(n)!.copy_(t);
      opts.log?.(`stage ${k + 1}: ends on the best eligible evaluation: step ${best.step}, dev ${task.metric} ${best.metric.toFixed(4)}`);
    } else opts.log?.(`stage ${k + 1}: no evaluation was eligible for best (eval_every ${train.eval_every}); the stage ends on its last step`);
  }
  return { ...r, best: best && { step: best.step, metric: best.metric } };
}

interface BestState {
  step: number;
  metric: number;
  tensors: [string, Tensor][];
}

const BEST_FILE = 'best-state.safetensors';

/** Write the best state beside the stage's checkpoints (atomic: a kill mid-write leaves the previous one). */
function saveBest(stageDir: string, best: BestState): void {
  fs.mkdirSync(stageDir, { recursive: true });
  const file = path.join(stageDir, BEST_FILE);
  const tmp = `${file}.tmp-${process.pid}`;
  saveSafetensors(tmp, new Map(best.tensors), { step: String(best.step), metric: String(best.metric) });
  fs.renameSync(tmp, file);
}

/**
 * The best state a resumed stage starts from: the saved one when it was taken at or before the checkpoint the trainer
 * resumes from (a later one belongs to steps the resumed run replays, and evaluates again). Its tensors must be the
 * stage's own (same names and shapes); anything else means the folder holds another recipe's run.
 */
function loadBest(stageDir: string, now: Map<string, Tensor>): BestState | undefined {
  const file = path.join(stageDir, BEST_FILE);
  if (!fs.existsSync(file)) return undefined;
  const { tensors, metadata } = loadSafetensors(file);
  const step = Number(metadata?.step), metric = Number(metadata?.metric);
  if (!Number.isInteger(step) || !Number.isFinite(metric)) throw new Error(`resume: ${file}: metadata lacks a step and a metric (written by another version?)`);
  const resumed = checkpointStep(stageDir);
  if (resumed === null || step > resumed) return undefined;
  for (const [n, t] of now) {
    const v = tensors.get(n);
    if (!v) throw new Error(`resume: ${file} lacks '${n}' (written by another recipe?)`);
    if (v.shape.join() !== t.shape.join()) throw new Error(`resume: ${file}: '${n}' has shape [${v.shape}], expected [${t.shape}]`);
  }
  return { step, metric, tensors: [...now.keys()].map((n) => [n, tensors.get(n)!]) };
}

/**
 * Parse, resolve, check and run a recipe on a model in one call (the library's entry point; `shrink compress` does
 * the same around a model folder, with before/after measurements and an atomic output folder).
 */
export function runRecipe(model: Module, recipe: Recipe | RecipeStep[] | unknown, opts: RunOptions = {}): RunResult & { recipe: Record<string, unknown> } {
  const r = parseRecipe(recipe);
  const steps = resolveSteps(r, model);
  checkRun(model, steps, opts, 'recipe', resolveTrain(r));
  const result = runSteps(model, steps, resolveTrain(r), opts);
  return { ...result, recipe: resolvedRecipe(r, steps) };
}
