/**
 * Students for distillation, made in place from the model a step is given (the runner, the CLI and the saved
 * folder keep holding the same object):
 * - `keep_layers: [i, …]` / `layers: n`: the model's own blocks, a subset kept in order (DistilBERT-style: with
 *   `layers: n` of L blocks, blocks round(j·L/n), j = 0..n−1, i.e. every k-th from the first); embeddings, heads,
 *   pruned structure and weights stay as they are;
 * - `student: {layers, hidden, heads, intermediate}`: a fresh model of the same class and config with those sizes
 *   (missing ones kept from the model), randomly initialised as Hugging Face's _init_weights does (normal(0,
 *   initializer_range) for Linear/Embedding weights, zero biases and padding rows, LayerNorm 1/0), swapped into the
 *   model object;
 * - neither: the model as it comes (e.g. after pruning).
 */
import type { Module } from '../../nn/module.ts';
import { Embedding, LayerNorm, Linear } from '../../nn/layers.ts';
import { normal_ } from '../../nn/init.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { anatomy } from '../../models/anatomy.ts';
import { modelFromConfig } from '../../models/registry.ts';

export interface StudentSpec {
  layers?: number;
  hidden?: number;
  heads?: number;
  intermediate?: number;
}

export interface StudentOptions {
  keep_layers: number[] | null;
  layers: number | null;
  student: StudentSpec | null;
}

export const STUDENT_DEFAULTS: StudentOptions = { keep_layers: null, layers: null, student: null };
export const STUDENT_TYPES = { keep_layers: 'number[]', layers: 'integer', student: 'object' } as const;

type Cfg = Record<string, unknown>;
const configOf = (model: Module): Cfg => {
  const c = (model as unknown as { config?: Cfg }).config;
  if (!c || typeof c !== 'object') throw new Error(`${model.constructor.name} has no config`);
  return c;
};

/** Config field names per model type: [layers, hidden, heads, intermediate]. */
const FIELDS: Record<string, [string, string, string, string]> = {
  bert: ['num_hidden_layers', 'hidden_size', 'num_attention_heads', 'intermediate_size'],
  gpt2: ['n_layer', 'n_embd', 'n_head', 'n_inner'],
  llama: ['num_hidden_layers', 'hidden_size', 'num_attention_heads', 'intermediate_size'],
};

const STUDENT_KEYS = ['layers', 'hidden', 'heads', 'intermediate'] as const;

/** Layers kept by `layers: n` out of L: round(j·L/n), j = 0..n−1. */
export function everyKth(L: number, n: number): number[] {
  return Array.from({ length: n }, (_, j) => Math.round((j * L) / n));
}

/** Check the student options against the model (before any work); `name` prefixes errors. */
export function checkStudent(name: string, model: Module, o: StudentOptions): void {
  const given = [o.keep_layers !== null, o.layers !== null, o.student !== null].filter(Boolean).length;
  if (given > 1) throw new Error(`${name}: give at most one of 'keep_layers', 'layers' and 'student'`);
  const L = anatomy(model).blocks.length;
  if (o.keep_layers !== null) {
    const k = o.keep_layers;
    if (k.length === 0) throw new Error(`${name}: option 'keep_layers' must name at least one layer`);
    for (const i of k) if (!Number.isInteger(i) || i < 0 || i >= L) throw new Error(`${name}: option 'keep_layers': ${i} is not a layer index of the model (0..${L - 1})`);
    for (let j = 1; j < k.length; j++) if (!(k[j]! > k[j - 1]!)) throw new Error(`${name}: option 'keep_layers' must be strictly increasing, got [${k}]`);
  }
  if (o.layers !== null && !(o.layers >= 1 && o.layers <= L)) throw new Error(`${name}: option 'layers' must be in 1..${L} (the model's layers), got ${o.layers}`);
  if (o.student !== null) {
    const type = String(anatomy(model).modelType);
    if (!FIELDS[type]) throw new Error(`${name}: option 'student' is not supported for model_type '${type}'`);
    for (const [k, v] of Object.entries(o.student)) {
      if (!(STUDENT_KEYS as readonly string[]).includes(k)) throw new Error(`${name}: student: unknown field '${k}' (fields: ${STUDENT_KEYS.join(', ')})`);
      if (!(Number.isInteger(v) && (v as number) >= 1)) throw new Error(`${name}: student.${k} must be a positive integer, got ${JSON.stringify(v)}`);
    }
    const hidden = o.student.hidden ?? (configOf(model)[FIELDS[type]![1]] as number);
    const heads = o.student.heads ?? (configOf(model)[FIELDS[type]![2]] as number);
    if (hidden % heads !== 0) throw new Error(`${name}: student.hidden ${hidden} is not a multiple of student.heads ${heads}`);
  }
}

/** Walk `path` (dotted, as anatomy names modules) to the object holding the block list. */
function holderOf(model: Module, blockPath: string): { holder: Record<string, unknown>; key: string } {
  const parts = blockPath.split('.');
  parts.pop(); // the index
  const key = parts.pop()!;
  let cur: unknown = model;
  for (const p of parts) cur = (cur as Record<string, unknown>)[p];
  return { holder: cur as Record<string, unknown>, key };
}

/** Keep blocks `keep` (in order) of the model's stack; the config's layer count and pruned_heads follow. */
export function keepLayers(model: Module, keep: readonly number[]): void {
  const a = anatomy(model);
  const { holder, key } = holderOf(model, a.blocks[0]!.path);
  const list = holder[key] as Module[];
  const kept = keep.map((i) => list[i]!);
  holder[key] = kept;
  // per-layer indices (KV-cache slots, GPT-2's inverse-layer-index scaling) become the new positions, as a reload builds them
  kept.forEach((blk, j) => {
    for (const [, m] of blk.namedModules()) if (Object.hasOwn(m, 'layerIdx')) (m as unknown as { layerIdx: number }).layerIdx = j;
  });
  const cfg = configOf(model);
  cfg[FIELDS[a.modelType]![0]] = keep.length;
  const pruned = cfg.pruned_heads as Record<string, number[]> | undefined;
  if (pruned && Object.keys(pruned).length) {
    const out: Record<string, number[]> = {};
    keep.forEach((i, j) => {
      if (pruned[String(i)]) out[String(j)] = pruned[String(i)]!;
    });
    cfg.pruned_heads = out;
  }
}

/** Hugging Face _init_weights for BERT-style models: normal(0, std) weights, zero biases / padding rows, LayerNorm 1/0. */
export function hfInit(model: Module, std: number): void {
  noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof Linear) {
        normal_(m.weight, 0, std);
        m.bias?.data.fill(0);
      } else if (m instanceof Embedding) {
        normal_(m.weight, 0, std);
        if (m.paddingIdx !== null) m.weight.data.fill(0, m.paddingIdx * m.embeddingDim, (m.paddingIdx + 1) * m.embeddingDim);
      } else if (m instanceof LayerNorm) {
        m.weight?.data.fill(1);
        m.bias?.data.fill(0);
      }
    }
  });
}

/** Replace the model's contents by a fresh model of the same class with the student's sizes (random init). */
export function studentFromConfig(model: Module, spec: StudentSpec): void {
  const a = anatomy(model);
  const f = FIELDS[a.modelType]!;
  const base = configOf(model);
  const cfg: Cfg = { ...base, pruned_heads: {} };
  delete cfg.compression_config;
  delete cfg.quantization_config;
  const vals = [spec.layers, spec.hidden, spec.heads, spec.intermediate];
  f.forEach((k, i) => {
    if (vals[i] !== undefined) cfg[k] = vals[i];
  });
  if (a.modelType === 'llama' && spec.heads !== undefined) cfg.num_key_value_heads = spec.heads;
  if (a.modelType === 'llama' && spec.hidden !== undefined) delete cfg.head_dim;
  const fresh = modelFromConfig({ ...cfg, model_type: a.modelType }, model.constructor.name);
  if (a.modelType === 'bert') hfInit(fresh, Number(base.initializer_range ?? 0.02));
  const training = model.training;
  for (const k of Object.keys(model)) if (!Object.hasOwn(fresh, k)) delete (model as unknown as Cfg)[k];
  Object.assign(model, fresh);
  model.training = training;
}

/** Apply the student options to `model` in place; returns a line describing what was done. */
export function makeStudent(model: Module, o: StudentOptions): string {
  const L = anatomy(model).blocks.length;
  if (o.keep_layers) {
    keepLayers(model, o.keep_layers);
    return `student: layers [${o.keep_layers}] of ${L} kept`;
  }
  if (o.layers !== null) {
    const keep = everyKth(L, o.layers);
    keepLayers(model, keep);
    return `student: layers [${keep}] of ${L} kept`;
  }
  if (o.student) {
    studentFromConfig(model, o.student);
    const a = anatomy(model);
    return `student: new ${model.constructor.name} with ${a.blocks.length} layers, hidden ${a.hiddenSize} (random init)`;
  }
  return 'student: the model as given';
}
