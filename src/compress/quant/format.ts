/**
 * Quantized checkpoints: a Hugging Face folder whose model.safetensors holds integer tensors beside their scales,
 * with `quantization_config` in config.json describing every quantized module, and the recipe in the file's
 * `__metadata__`. Keys per quantized module `<name>`:
 *
 * | key | dtype | shape |
 * | --- | --- | --- |
 * | `<name>.weight` (8-bit) | I8 | [out, in] (GPT-2 Conv1D too: stored transposed, `type: "conv1d"`) |
 * | `<name>.weight_packed` (2–4-bit) | U8 | [out, in/2], low nibble = even column |
 * | `<name>.weight_scale` | F32 | [1] per tensor, [out] per channel, [out, in/group] per group |
 * | `<name>.weight_zero_point` | I8 / U8 | as weight_scale (asymmetric and 2–4-bit only) |
 * | `<name>.bias` | F32 | [out] |
 *
 * A head tied to an embedding shares its integer tensors; the duplicates are left out of the file and listed in
 * `quantization_config.tied_keys` (as HF leaves tied weights out). Loading (registered with fromPretrained)
 * rebuilds the QuantLinear / QuantEmbedding skeleton from the config, so `shrink eval` runs the integer kernels
 * directly.
 */
import type { LazyTensor, Module } from '../../nn/module.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { registerCheckpointDescriber, registerCheckpointPreparer, savePretrained } from '../../models/registry.ts';
import { registerDescribedElsewhere } from '../structure.ts';
import { QuantEmbedding, QuantLinear, type QuantScheme, type QuantizedWeight } from './modules.ts';
import type { QuantModuleEntry } from './apply.ts';
import { ShrinkError, asShrinkError, show } from '../../io/errors.ts';

export const QUANT_FORMAT_VERSION = 1;

export interface QuantizationConfig {
  quant_method: 'shrink';
  format_version: number;
  scheme: QuantScheme;
  bits: number;
  method: 'rtn' | 'gptq' | 'qat';
  granularity: string;
  modules: Record<string, QuantModuleEntry>;
  tied_keys: Record<string, string>;
}

/** State dict with tensors shared by storage written once: returns the kept tensors and dropped → kept keys. */
function dedupe(sd: Map<string, Tensor>): { tensors: Map<string, Tensor>; tied: Record<string, string> } {
  const seen = new Map<unknown, string>();
  const tensors = new Map<string, Tensor>();
  const tied: Record<string, string> = {};
  for (const [k, t] of sd) {
    const first = seen.get(t.data);
    if (first !== undefined && t.numel === sd.get(first)!.numel) tied[k] = first;
    else {
      seen.set(t.data, k);
      tensors.set(k, t);
    }
  }
  return { tensors, tied };
}

/** quantization_config.modules for every QuantLinear / QuantEmbedding in the model (heads sharing codes marked). */
export function describeQuantized(model: Module): Record<string, QuantModuleEntry> {
  const owners = new Map<unknown, string>();
  const out: Record<string, QuantModuleEntry> = {};
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof QuantLinear || m instanceof QuantEmbedding)) continue;
    const q = m.qweight;
    const owner = owners.get(q.codes);
    const base = {
      bits: q.bits,
      shape: q.shape,
      group_size: q.groupSize,
      per_tensor: q.perTensor,
      symmetric: q.symmetric ?? q.zero === null,
    };
    if (m instanceof QuantEmbedding) {
      out[name] = { type: 'embedding', scheme: q.bits < 8 ? 'int4' : 'int8', ...base, bias: false, padding_idx: m.paddingIdx };
    } else {
      out[name] = { type: m.origin, scheme: m.scheme, ...base, bias: m.bias !== null, ...(m.inFeatures !== q.shape[1] ? { in_features: m.inFeatures } : {}), ...(owner ? { shares: owner } : {}) };
    }
    if (!owner) owners.set(q.codes, name);
  }
  return out;
}

/** The quantization_config section for a model with quantized modules (undefined when it has none). */
export function quantizationSection(model: Module, qc: Partial<QuantizationConfig> = {}): { section: QuantizationConfig | undefined; tied: Record<string, string> } {
  const modules = describeQuantized(model);
  const names = Object.keys(modules);
  if (names.length === 0) return { section: undefined, tied: {} };
  const { tied } = dedupe(model.stateDict({ forSave: true }));
  const first = modules[names.find((n) => modules[n]!.type !== 'embedding') ?? names[0]!]!;
  const section: QuantizationConfig = {
    quant_method: 'shrink',
    format_version: QUANT_FORMAT_VERSION,
    scheme: first.scheme,
    bits: first.bits,
    method: 'rtn',
    granularity: first.per_tensor ? 'tensor' : first.group_size === first.shape[1] ? 'channel' : `group:${first.group_size}`,
    ...qc,
    modules,
    tied_keys: tied,
  };
  return { section, tied };
}

/** Write a quantized model as a HF folder (config.json with quantization_config, model.safetensors). */
export function saveQuantized(
  model: Module & { config: Record<string, unknown> },
  dir: string,
  qc: Omit<QuantizationConfig, 'quant_method' | 'format_version' | 'tied_keys' | 'modules'>,
  metadata: Record<string, string> = {},
): QuantizationConfig {
  const { section } = quantizationSection(model, qc);
  if (!section) throw new Error(`saveQuantized ${dir}: the model has no quantized modules`);
  savePretrained(model, dir, metadata, { quantization_config: section });
  return section;
}

function emptyWeight(e: QuantModuleEntry): QuantizedWeight {
  const [N, K] = e.shape;
  const ns = e.per_tensor ? 1 : N * (K / e.group_size);
  const asym = e.bits < 8 || !e.symmetric;
  return {
    shape: [N, K],
    bits: e.bits,
    codes: e.bits === 8 ? new Int8Array(N * K) : new Uint8Array((N * K) / 2),
    groupSize: e.group_size,
    perTensor: e.per_tensor,
    scale: new Float32Array(ns),
    zero: asym ? (e.bits === 8 ? new Int8Array(ns) : new Uint8Array(ns)) : null,
  };
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkEntry(name: string, e: QuantModuleEntry, dir: string): void {
  const where = `${dir}: config.json quantization_config.modules['${name}']`;
  const bad = (field: string, msg: string) => new ShrinkError(`${where}${field}: ${msg}`, { file: dir });
  if (!isPlainObject(e)) throw bad('', `expected an object, got ${show(e)}`);
  if (!['linear', 'conv1d', 'embedding'].includes(e.type)) throw bad('.type', `expected linear, conv1d or embedding, got ${show(e.type)}`);
  if (!['int8', 'int8-dynamic', 'int8-static', 'int4'].includes(e.scheme)) throw bad('.scheme', `expected int8, int8-dynamic, int8-static or int4, got ${show(e.scheme)}`);
  if (![2, 3, 4, 8].includes(e.bits)) throw bad('.bits', `unsupported bits ${show(e.bits)} (expected 2, 3, 4 or 8)`);
  if (!Array.isArray(e.shape) || e.shape.length !== 2 || !e.shape.every((d) => Number.isSafeInteger(d) && d > 0)) throw bad('.shape', `expected [out, in], got ${show(e.shape)}`);
  if (e.bits < 8 && e.shape[1] % 2 !== 0) throw bad('.shape', `${e.bits}-bit codes pack two per byte, so in_features must be even, got ${e.shape[1]}`);
  for (const k of ['per_tensor', 'symmetric', 'bias'] as const) if (e[k] !== undefined && typeof e[k] !== 'boolean') throw bad(`.${k}`, `expected true or false, got ${show(e[k])}`);
  if (!e.per_tensor && !(Number.isSafeInteger(e.group_size) && e.group_size > 0 && e.shape[1] % e.group_size === 0))
    throw bad('.group_size', `${show(e.group_size)} does not divide in_features ${e.shape[1]}`);
  if (e.shares !== undefined && typeof e.shares !== 'string') throw bad('.shares', `expected a module name, got ${show(e.shares)}`);
  if (e.in_features !== undefined && !(Number.isSafeInteger(e.in_features) && e.in_features >= 1 && e.in_features <= e.shape[1]))
    throw bad('.in_features', `expected an integer in [1, ${e.shape[1]}], got ${show(e.in_features)}`);
  if (e.padding_idx !== undefined && e.padding_idx !== null && !(Number.isSafeInteger(e.padding_idx) && e.padding_idx >= 0 && e.padding_idx < e.shape[0]))
    throw bad('.padding_idx', `expected null or an integer in [0, ${e.shape[0]}), got ${show(e.padding_idx)}`);
}

/**
 * The stored integer codes of an (owner) entry must be in the checkpoint with exactly the shape the entry claims,
 * so the skeleton never allocates more than the file holds.
 */
function checkStoredCodes(name: string, e: QuantModuleEntry, weights: Map<string, Tensor | LazyTensor>, tied: Record<string, string>, dir: string): void {
  const [N, K] = e.shape;
  const key = e.bits === 8 ? `${name}.weight` : `${name}.weight_packed`;
  const want = e.bits === 8 ? [N, K] : [N, K / 2];
  const t = weights.get(key) ?? (typeof tied[key] === 'string' ? weights.get(tied[key]) : undefined);
  const where = `${dir}: config.json quantization_config.modules['${name}'].shape`;
  if (!t) throw new ShrinkError(`${where}: [${N}, ${K}] at ${e.bits} bits needs '${key}' in the checkpoint, which is missing`, { file: dir });
  if (t.shape.join() !== want.join()) throw new ShrinkError(`${where}: [${N}, ${K}] at ${e.bits} bits needs '${key}' of shape [${want.join(', ')}], the checkpoint has [${t.shape.join(', ')}]`, { file: dir });
}

/** fromPretrained hook: swap in quantized modules per the config, then let the strict load fill them. */
function prepareQuantized(model: Module, section: unknown, weights: Map<string, Tensor | LazyTensor>, dir: string): void {
  try {
    prepareQuantizedUnchecked(model, section, weights, dir);
  } catch (e) {
    throw asShrinkError(e, dir, `${dir}: config.json quantization_config`, 'cannot build the quantized modules');
  }
}

function prepareQuantizedUnchecked(model: Module, section: unknown, weights: Map<string, Tensor | LazyTensor>, dir: string): void {
  if (!isPlainObject(section)) throw new ShrinkError(`${dir}: config.json quantization_config: expected an object, got ${show(section)}`, { file: dir });
  const qc = section as unknown as QuantizationConfig;
  if (qc.quant_method !== 'shrink') throw new ShrinkError(`${dir}: quantization_config.quant_method ${show(qc.quant_method)} is not supported (Shrink reads its own 'shrink' format)`, { file: dir });
  if (!isPlainObject(qc.modules)) throw new ShrinkError(`${dir}: config.json quantization_config.modules is missing (expected an object of module entries)`, { file: dir });
  const tiedKeys = qc.tied_keys ?? {};
  if (!isPlainObject(tiedKeys) || !Object.values(tiedKeys).every((v) => typeof v === 'string'))
    throw new ShrinkError(`${dir}: config.json quantization_config.tied_keys: expected an object of key names, got ${show(tiedKeys)}`, { file: dir });
  const entries = Object.entries(qc.modules as Record<string, QuantModuleEntry>);
  for (const [name, e] of entries) checkEntry(name, e, dir);
  for (const [name, e] of entries) if (!e.shares) checkStoredCodes(name, e, weights, tiedKeys as Record<string, string>, dir);
  installQuantModules(model, qc.modules as Record<string, QuantModuleEntry>, dir);
  // shared tensors were written once: point the duplicates at the kept copies
  const missingScales: string[] = [];
  for (const [dup, kept] of Object.entries(tiedKeys as Record<string, string>)) {
    const t = weights.get(kept);
    if (t && !weights.has(dup)) weights.set(dup, t);
  }
  for (const [name, e] of entries) {
    if (e.shares) continue; // reported under its owner
    if (!weights.has(`${name}.weight_scale`)) missingScales.push(`${name}.weight_scale`);
    if ((e.bits < 8 || !e.symmetric) && !weights.has(`${name}.weight_zero_point`)) missingScales.push(`${name}.weight_zero_point`);
  }
  if (missingScales.length) throw new ShrinkError(`${dir}: quantized checkpoint is missing ${missingScales.length} scale/zero-point tensor(s): ${missingScales.join(', ')}`, { file: dir });
}

/**
 * Swap in the QuantLinear / QuantEmbedding modules the (checked) entries describe, with zero-filled integer weights
 * for a load to fill (fromPretrained) — or to stand for blocks already written (a resumed streaming pass).
 */
export function installQuantModules(model: Module, modules: Record<string, QuantModuleEntry>, dir: string): void {
  const built = new Map<string, QuantizedWeight>();
  const entries = Object.entries(modules);
  // owners first, then heads that share their weight
  for (const [name, e] of [...entries.filter(([, e]) => !e.shares), ...entries.filter(([, e]) => e.shares)]) {
    let q: QuantizedWeight;
    if (e.shares) {
      const owner = Object.hasOwn(modules, e.shares) ? built.get(e.shares) : undefined;
      if (!owner) throw new ShrinkError(`${dir}: quantization_config.modules['${name}'] shares '${e.shares}', which is not a quantized module`, { file: dir });
      if (owner.shape.join() !== e.shape.join() || owner.bits !== e.bits)
        throw new ShrinkError(`${dir}: config.json quantization_config.modules['${name}']: shares '${e.shares}' but claims shape [${e.shape.join(', ')}] at ${e.bits} bits, the owner is [${owner.shape.join(', ')}] at ${owner.bits} bits`, { file: dir });
      q = owner;
    } else {
      q = emptyWeight(e);
      built.set(name, q);
    }
    let old: Module;
    try {
      if (name === '') throw new Error('empty module name');
      old = model.getSubmodule(name);
    } catch {
      throw new ShrinkError(`${dir}: quantization_config names module '${name}', which ${(model as object).constructor.name} does not have`, { file: dir });
    }
    // the float module's bias, or (for a layer pruned before quantization) a fresh one of the stored width
    const oldBias = (old as unknown as { bias?: Tensor | null }).bias ?? null;
    const bias = e.bias ? (oldBias && oldBias.shape[0] === e.shape[0] ? oldBias : Tensor.zeros([e.shape[0]])) : null;
    if (e.type === 'embedding') model.setSubmodule(name, new QuantEmbedding(q, e.padding_idx ?? null));
    else {
      const ql = new QuantLinear(e.scheme, q, bias, e.in_features ?? e.shape[1]);
      ql.origin = e.type;
      model.setSubmodule(name, ql);
    }
  }
}

registerCheckpointPreparer('quantization_config', prepareQuantized);
registerCheckpointDescriber((model) => {
  const { section, tied } = quantizationSection(model);
  return { quantization_config: section, dropKeys: Object.keys(tied) };
});
registerDescribedElsewhere(QuantLinear);
registerDescribedElsewhere(QuantEmbedding);
