/**
 * model_type → classes, and loading/saving Hugging Face folders (config.json + model.safetensors).
 * `fromPretrained(dir)` reads config.json, builds the class named by `architectures[0]` (or the one asked for),
 * and loads the weights strictly: one error lists every missing, unexpected and wrong-shape key.
 */
import type { LazyTensor, Module } from '../nn/module.ts';
import type { Tensor } from '../tensor/tensor.ts';
import path from 'node:path';
import { withoutInit } from '../nn/init.ts';
import { ShrinkError, asShrinkError } from '../io/errors.ts';
import { openWeights, readConfig, writePretrained } from '../io/hf.ts';
import { BertForMaskedLM, BertForSequenceClassification, BertModel, bertConfig } from './bert/modeling.ts';
import { GPT2LMHeadModel, GPT2Model, gpt2Config } from './gpt2/modeling.ts';
import { LlamaForCausalLM, LlamaModel, llamaConfig } from './llama/modeling.ts';

type AnyConfig = Record<string, unknown>;
interface Entry {
  config: (raw: AnyConfig) => AnyConfig;
  classes: Record<string, new (cfg: never) => Module>;
  default: string;
}

export const MODEL_REGISTRY: Record<string, Entry> = {
  bert: {
    config: bertConfig as (raw: AnyConfig) => AnyConfig,
    classes: { BertModel, BertForMaskedLM, BertForSequenceClassification } as Entry['classes'],
    default: 'BertModel',
  },
  gpt2: { config: gpt2Config as (raw: AnyConfig) => AnyConfig, classes: { GPT2Model, GPT2LMHeadModel } as Entry['classes'], default: 'GPT2LMHeadModel' },
  llama: { config: llamaConfig as (raw: AnyConfig) => AnyConfig, classes: { LlamaModel, LlamaForCausalLM } as Entry['classes'], default: 'LlamaForCausalLM' },
};

export function supportedModelTypes(): string[] {
  return Object.keys(MODEL_REGISTRY);
}

/** Build a model (random init) from a config object. */
export function modelFromConfig(raw: AnyConfig, className?: string): Module {
  const type = raw.model_type;
  if (typeof type !== 'string') throw new Error(`config: missing "model_type" (supported: ${supportedModelTypes().join(', ')})`);
  const entry = MODEL_REGISTRY[type];
  if (!entry) throw new Error(`config: unknown model_type '${type}' (supported: ${supportedModelTypes().join(', ')})`);
  const name = className ?? (Array.isArray(raw.architectures) && typeof raw.architectures[0] === 'string' ? raw.architectures[0] : entry.default);
  const cls = entry.classes[name];
  if (!cls) throw new Error(`config: class '${name}' is not available for model_type '${type}' (available: ${Object.keys(entry.classes).join(', ')})`);
  const cfg = entry.config(raw);
  return new cls(cfg as never);
}

export interface FromPretrainedOptions {
  /** Class to build instead of config.architectures[0] (e.g. 'BertForSequenceClassification' on an MLM checkpoint). */
  className?: string;
  /** Config fields to override (e.g. { num_labels: 2 }). */
  configOverrides?: AnyConfig;
  /** Strict key checking (default true). With false, missing keys keep their random init. */
  strict?: boolean;
}

/**
 * Hooks that turn a freshly built float model into the skeleton a compressed checkpoint needs before its weights
 * load (e.g. `quantization_config` swaps Linear for QuantLinear). Compression methods register them, so models
 * do not depend on compress/.
 */
export type CheckpointPreparer = (model: Module, section: unknown, weights: Map<string, Tensor | LazyTensor>, dir: string) => void;
const PREPARERS = new Map<string, CheckpointPreparer>();

/** Register the preparer for a config.json section (one per section name). */
export function registerCheckpointPreparer(configKey: string, fn: CheckpointPreparer): void {
  PREPARERS.set(configKey, fn);
}

/**
 * Hooks that describe a compressed model's structure when it is saved: each returns config.json fields to set
 * (e.g. `quantization_config`, `compression_config`, HF's `pruned_heads`; `undefined` removes a field) and the
 * checkpoint keys that share storage with a kept key and are left out of the file. Mirrors the preparers.
 */
export type CheckpointDescriber = (model: Module, config: AnyConfig) => AnyConfig & { dropKeys?: string[] };
const DESCRIBERS: CheckpointDescriber[] = [];

/** Register a describer (one per compressed-structure kind). */
export function registerCheckpointDescriber(fn: CheckpointDescriber): void {
  DESCRIBERS.push(fn);
}

/** Sections loaded in this order: structure first, then the integer weights that sit in it. */
const SECTIONS = ['compression_config', 'quantization_config'];

/** Load a Hugging Face model folder (plain, or compressed by Shrink: its config sections rebuild the structure). */
export function fromPretrained<M extends Module = Module>(dir: string, opts: FromPretrainedOptions = {}): M {
  const raw = { ...readConfig(dir), ...(opts.configOverrides ?? {}) };
  // every weight is loaded in strict mode, so skip random init (faster, and no resident memory for a skeleton)
  const strict = opts.strict ?? true;
  let model: Module;
  try {
    model = strict ? withoutInit(() => modelFromConfig(raw, opts.className)) : modelFromConfig(raw, opts.className);
  } catch (e) {
    // a config that builds no model (a bad size, dropout or activation) names the file it came from
    throw asShrinkError(e, path.join(dir, 'config.json'), path.join(dir, 'config.json'), 'cannot build the model');
  }
  const sections = SECTIONS.filter((key) => raw[key] !== undefined && raw[key] !== null);
  // the checkpoint streams in tensor by tensor (peak memory: the model plus one file tensor); compressed formats'
  // preparers see the tensors' shapes (headers) first, to build the skeleton the strict load fills
  const lazy = openWeights(dir);
  try {
    const weights: Map<string, Tensor | LazyTensor> = lazy.weights;
    for (const key of sections) {
      const prep = PREPARERS.get(key);
      if (!prep) throw new Error(`${dir}: config.json has "${key}" but no loader for it is registered (import Shrink's compress module, e.g. from 'src/index.ts')`);
      prep(model, raw[key], weights, dir);
    }
    try {
      model.loadStateDict(weights, { strict });
    } catch (e) {
      if (e instanceof ShrinkError && e.file) throw e; // a read error names its file already
      throw new ShrinkError(`${dir}: the weights do not fit config.json: ${e instanceof Error ? e.message : String(e)}`, { file: dir, cause: e });
    }
  } finally {
    lazy.close();
  }
  model.eval();
  return model as M;
}

/** config.json fields describing `model` (architectures and every registered describer's sections). */
export function describeForSave(model: Module & { config: AnyConfig }): { config: AnyConfig; dropKeys: Set<string> } {
  let config: AnyConfig = { ...model.config, architectures: [model.constructor.name] };
  const dropKeys = new Set<string>();
  for (const d of DESCRIBERS) {
    const { dropKeys: drop, ...fields } = d(model, config);
    for (const k of drop ?? []) dropKeys.add(k);
    config = { ...config, ...fields };
    for (const [k, v] of Object.entries(fields)) if (v === undefined) delete config[k];
  }
  return { config, dropKeys };
}

/**
 * Write config.json + model.safetensors (tied duplicates left out, as HF saves them). A compressed model's
 * structure goes into config.json (see the describers), so `fromPretrained` rebuilds it exactly.
 */
export function savePretrained(model: Module & { config: AnyConfig }, dir: string, metadata: Record<string, string> = {}, configOverrides: AnyConfig = {}): void {
  const { config, dropKeys } = describeForSave(model);
  const tensors = model.stateDict({ forSave: true });
  for (const k of dropKeys) tensors.delete(k);
  writePretrained(dir, { config: { ...config, ...configOverrides }, tensors, metadata: { format: 'pt', ...metadata } });
}
