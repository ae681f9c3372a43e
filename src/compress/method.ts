/**
 * The one interface every compression method implements, and recipes that chain methods.
 *
 * A method swaps modules chosen by `targets` (globs over checkpoint names, see select.ts) and never forks a model
 * file; optional extra training losses, a finalize step (bake masks, convert fake-quant to integers) and a report.
 * A recipe is plain data (JSON for the CLI): `[{ method: 'quant.int8', targets: ['**.dense'] }, …]`.
 * `runRecipe` applies the steps in order, runs the caller's training loop if any step needs one, then finalizes in
 * order, and returns the recipe as the JSON string saved into the checkpoint's `__metadata__`.
 */
import type { Module } from '../nn/module.ts';
import type { Tensor } from '../tensor/tensor.ts';

export interface RecipeContext {
  /** Calibration or training batches, when the method needs data (GPTQ, calibration, QAT). */
  calibration?: () => Iterable<Record<string, Tensor>>;
  /** Progress and notes, one line each. */
  log?: (line: string) => void;
  /** Anything a method wants to pass to a later one (e.g. a teacher model). */
  [k: string]: unknown;
}

export interface Method<C extends object> {
  /** Dotted id: 'quant.int8', 'quant.gptq', 'prune.cofi', … */
  readonly name: string;
  /** Every knob with its default. */
  readonly defaults: C;
  /** Swap the modules chosen by cfg.targets. */
  apply(model: Module, cfg: C, ctx: RecipeContext): void;
  /** Named extra training terms, added to the task loss. */
  losses?(model: Module, cfg: C, ctx: RecipeContext): Record<string, Tensor>;
  /** Turn training-time modules into their final form. */
  finalize?(model: Module, cfg: C, ctx: RecipeContext): void;
  /** Numbers worth a table row: bits, sparsity, parameters. */
  report?(model: Module, cfg: C): Record<string, number | string>;
}

export type RecipeStep = { method: string } & Record<string, unknown>;
export type Recipe = RecipeStep[];

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

/** A step's config: the method's defaults overridden by the step's keys; unknown keys are an error. */
export function resolveStep(step: RecipeStep): { method: Method<object>; cfg: Record<string, unknown> } {
  const method = getMethod(step.method);
  const cfg: Record<string, unknown> = { ...method.defaults };
  for (const [k, v] of Object.entries(step)) {
    if (k === 'method') continue;
    if (!(k in method.defaults)) throw new Error(`recipe step '${step.method}': unknown option '${k}' (options: ${Object.keys(method.defaults).join(', ')})`);
    cfg[k] = v;
  }
  return { method, cfg };
}

/**
 * Apply every step, call `train` (if given) with the summed extra losses of all steps, then finalize every step.
 * Returns the per-step reports and the recipe JSON for the checkpoint metadata.
 */
export function runRecipe(
  model: Module,
  recipe: Recipe,
  ctx: RecipeContext = {},
  train?: (extraLosses: () => Record<string, Tensor>) => void,
): { reports: Record<string, number | string>[]; recipeJson: string } {
  const steps = recipe.map(resolveStep);
  for (const { method, cfg } of steps) {
    ctx.log?.(`apply ${method.name}`);
    method.apply(model, cfg, ctx);
  }
  if (train) {
    train(() => {
      const all: Record<string, Tensor> = {};
      for (const { method, cfg } of steps) for (const [k, v] of Object.entries(method.losses?.(model, cfg, ctx) ?? {})) all[`${method.name.split('.')[0]}.${k}`] = v;
      return all;
    });
  }
  for (const { method, cfg } of steps) {
    ctx.log?.(`finalize ${method.name}`);
    method.finalize?.(model, cfg, ctx);
  }
  return { reports: steps.map(({ method, cfg }) => ({ method: method.name, ...(method.report?.(model, cfg) ?? {}) })), recipeJson: JSON.stringify(recipe) };
}
