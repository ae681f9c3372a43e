/**
 * The one interface every compression method implements.
 *
 * A method is registered once under a dotted id (`quant.rtn`, `prune.cofi`, `distill.tinybert`) with its
 * defaults and its kind:
 * - **one-shot** methods (RTN, GPTQ, SVD, k-means, magnitude pruning) change the model in `apply` and are finalized
 *   at once — the next step sees the result;
 * - **trained** methods (QAT, CoFi, KD/TinyBERT, MoE, FFF, TRIME) swap modules in `apply` and return a `MethodRun`
 *   whose parameters, losses and hooks join one training stage with the other consecutive trained steps; after
 *   the stage every run's `finalize` makes the model physically what it claims (smaller layers, integer codes).
 *
 * The recipe runner (runner.ts) keeps the recipe's order, owns training, names every loss by its full id
 * (`prune.cofi.lagrangian`) and weights it from the recipe. Module targets are globs over checkpoint names
 * (select.ts) everywhere.
 */
import type { Module } from '../nn/module.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { ModelInputs, ModelOutput } from '../models/outputs.ts';
import type { ExtraParamGroup } from '../train/trainer.ts';
import type { TrainSettings } from './runner.ts';

/** What the runner hands every method. */
export interface RecipeContext {
  /** Calibration batches (model inputs), when the method needs data (GPTQ, int8-static). */
  calibration?: () => Iterable<Record<string, Tensor>>;
  /** The teacher model (frozen), for methods that distil. */
  teacher?: Module;
  /** Training steps of the stage the method runs in (schedules need the horizon). */
  totalSteps?: number;
  /** The training settings of the stage the method runs in (trained methods only). */
  train?: TrainSettings;
  /** Progress and notes, one line each. */
  log?: (line: string) => void;
}

/**
 * A group of method parameters (mask logits, Lagrange multipliers, projections) optimized beside the model: a short
 * `name` unique within the method (checkpoint keys become `<method id>.<name>.<param>`), its own `lr`,
 * `weightDecay` (default 0), `maximize` for gradient ascent and `fixedLr` to stay off the schedule.
 */
export type MethodParamGroup = ExtraParamGroup;

/** What a loss sees: the batch, the student's and the teacher's outputs (with what `needs` asked for). */
export interface LossInputs {
  batch: ModelInputs;
  student: ModelOutput;
  teacher?: ModelOutput;
  step: number;
  model: Module;
}

/** What a trained method needs from each forward pass. */
export interface ForwardNeeds {
  teacher?: boolean;
  hiddenStates?: boolean;
  attentions?: boolean;
  attentionScores?: boolean;
}

/** One application of a method to one model: everything the runner drives during and after training. */
export interface MethodRun {
  needs?: ForwardNeeds;
  /** Extra parameter groups trained with the model. */
  params?(): MethodParamGroup[];
  /** Named loss terms (short names; the runner prefixes the method id and applies the recipe's weights). */
  losses?(x: LossInputs): Record<string, Tensor>;
  /** Before each optimizer step (schedules, mask sampling). */
  beforeStep?(step: number): void;
  /** After each optimizer step (clamping, re-masking). */
  afterOptimizerStep?(step: number): void;
  /** JSON-able state for checkpoints (tensors belong in params()). */
  state?(): unknown;
  setState?(s: unknown): void;
  /** Make the result physically what it claims (smaller layers, integer codes). */
  finalize?(): void;
  /**
   * With `train.eval_every`: may the current state be kept as the stage's best? (Default yes.) prune.cofi says no
   * until its expected sparsity reaches target − ε, so a dense early state never wins on accuracy.
   */
  bestEligible?(): boolean;
  /** Numbers worth a table row: bits, sparsity, parameters. */
  report?(): Record<string, number | string>;
}

export type MethodKind = 'one-shot' | 'trained';

/** The type of each option, for checking recipes before any work: from the default, or declared where it is null. */
export type OptionType = 'number' | 'integer' | 'boolean' | 'string' | 'string[]' | 'number[]' | 'object' | readonly string[];

export interface Method<C extends object = Record<string, unknown>> {
  /** Dotted id: 'quant.rtn', 'prune.cofi', … */
  readonly name: string;
  readonly kind: MethodKind;
  /** One line for `shrink compress --list`. */
  readonly description: string;
  /** Every knob with its default. */
  readonly defaults: C;
  /** Types of options whose default cannot tell (null defaults), or enumerations. */
  readonly types?: Partial<Record<keyof C & string, OptionType>>;
  /** Options that are module-name globs (checked to match something before any work). */
  readonly globs?: readonly (keyof C & string)[];
  /** Check the resolved config against the model before any work; throw naming the option. */
  check?(model: Module, cfg: C, ctx: RecipeContext): void;
  /** Change the model; a trained method returns what training needs. */
  apply(model: Module, cfg: C, ctx: RecipeContext): MethodRun | void;
  /**
   * Present when the method is one-shot and local — each module it rewrites is computed from that module's own
   * weights alone — so streaming passes (stream.ts, `shrink compress --stream`) can run it one transformer block at
   * a time: `apply` is called with `targets` set to the exact names of one block's modules and `ignore` null.
   */
  stream?: {
    /**
     * The module names `apply` would rewrite now (none once earlier blocks are done and the rest has nothing to
     * rewrite); throws, naming the option, for a config that is not local.
     */
    targets(model: Module, cfg: C): string[];
    /** The method's report from its per-block reports (in order). */
    merge(reports: Record<string, number | string>[]): Record<string, number | string>;
    /**
     * A pass over the targets' weights as the checkpoint stores them (read from the file one at a time, in module
     * order; `weights()` may be iterated more than once) before any block is compressed — e.g. a threshold over
     * all of them. What it returns is added to the config of every per-block `apply`. Only a recipe's first step
     * can have one (a later step's targets are not in the file).
     */
    prepare?(model: Module, cfg: C, weights: () => Iterable<[name: string, stored: Float32Array]>): Record<string, unknown>;
  };
}

const REGISTRY = new Map<string, Method<object>>();

/** Add a method to the registry (one line per method folder). */
export function registerMethod<C extends object>(m: Method<C>): void {
  if (REGISTRY.has(m.name)) throw new Error(`registerMethod: '${m.name}' is already registered`);
  REGISTRY.set(m.name, m as unknown as Method<object>);
}

export function getMethod(name: string): Method<object> {
  const m = REGISTRY.get(name);
  if (!m) throw new Error(`unknown method '${name}' (known: ${[...REGISTRY.keys()].sort().join(', ') || 'none'})`);
  return m;
}

export function methodNames(): string[] {
  return [...REGISTRY.keys()].sort();
}

export function listMethods(): Method<object>[] {
  return methodNames().map((n) => REGISTRY.get(n)!);
}
