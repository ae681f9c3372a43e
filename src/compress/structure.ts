/**
 * `compression_config`: the part of config.json that lets `fromPretrained` rebuild the exact structure of a
 * compressed model — layers whose shapes differ from what the plain config builds (pruned heads and widths,
 * factorized layers), modules swapped for other kinds (experts, trees, codebooks), and sub-blocks pruned away.
 *
 * Saving compares the model with the skeleton its (patched) config builds, field by field along checkpoint paths:
 *
 * | entry | meaning | written when |
 * | --- | --- | --- |
 * | `{"type": "none"}` | the field is null: a pruned-away attention / MLP (an identity) | the skeleton has a module there |
 * | `{"type": "<registered>", …}` | build this module here (its `describe` output) | class or parameter shapes differ |
 * | `{"type": "fields", "numHeads": 2, …}` | set these structural numbers on the module built from config | they differ |
 *
 * Where stock Hugging Face can say it, the config says it instead and no entry is written: BERT's
 * `pruned_heads`, and `intermediate_size` when every layer's FFN has the same (pruned) width, so such a folder is a
 * plain HF folder. Quantized modules are described by `quantization_config` (quant/format.ts), which loads after
 * this section: a pruned-then-quantized layer is rebuilt at its pruned shape, then swapped for its integer form.
 *
 * Module kinds register once (`registerModuleType`), with `describe` (JSON of the numbers that fix its shapes) and
 * `build` (an empty module of that shape; the strict weight load fills it).
 */
import { Module, type LazyTensor } from '../nn/module.ts';
import { Conv1D, Embedding, LayerNorm, Linear, RMSNorm } from '../nn/layers.ts';
import { withoutInit } from '../nn/init.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { modelFromConfig, registerCheckpointDescriber, registerCheckpointPreparer } from '../models/registry.ts';
import { ShrinkError, asShrinkError, maxTensorBytes, show } from '../io/errors.ts';

export const COMPRESSION_FORMAT_VERSION = 1;

export type ModuleEntry = { type: string; [k: string]: unknown };

export interface CompressionConfig {
  format_version: number;
  modules: Record<string, ModuleEntry>;
}

export interface ModuleType<M extends Module = Module> {
  /** The `type` written in entries. */
  type: string;
  /** Instances of this class are described by this entry type. */
  cls: abstract new (...a: never[]) => M;
  /** The JSON numbers that fix the module's structure (without `type`). */
  describe(m: M): Record<string, unknown>;
  /** An empty module of that structure (weights come from the checkpoint). */
  build(entry: ModuleEntry, where: string): M;
}

const TYPES: ModuleType[] = [];
/** Classes described by another config section (quantized modules): left alone here. */
const HANDLED_ELSEWHERE: (abstract new (...a: never[]) => Module)[] = [];

/** Register a module kind for compression_config (one line per swapped-in module class). */
export function registerModuleType<M extends Module>(t: ModuleType<M>): void {
  if (TYPES.some((x) => x.type === t.type)) throw new Error(`registerModuleType: '${t.type}' is already registered`);
  TYPES.unshift(t as unknown as ModuleType); // later registrations (subclasses) are matched first
}

/** Classes whose structure another config section records (e.g. QuantLinear in quantization_config). */
export function registerDescribedElsewhere(cls: abstract new (...a: never[]) => Module): void {
  HANDLED_ELSEWHERE.push(cls);
}

/** Structural numbers a module may carry beside its parameter shapes (attention head layout). */
const STRUCTURAL_FIELDS = ['numHeads', 'numKvHeads', 'headDim'] as const;

function num(e: ModuleEntry, k: string, where: string, opts: { min?: number; optional?: boolean } = {}): number {
  const v = e[k];
  if (v === undefined && opts.optional) return NaN;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (opts.min ?? 1)) throw new ShrinkError(`${where}.${k}: expected an integer >= ${opts.min ?? 1}, got ${show(v)}`);
  return v;
}

registerModuleType<Linear>({
  type: 'linear',
  cls: Linear,
  describe: (m) => ({ in_features: m.inFeatures, out_features: m.outFeatures, bias: m.bias !== null }),
  build: (e, w) => new Linear(num(e, 'in_features', w), num(e, 'out_features', w), { bias: e.bias !== false }),
});
registerModuleType<Conv1D>({
  type: 'conv1d',
  cls: Conv1D,
  describe: (m) => ({ in_features: m.inFeatures, out_features: m.outFeatures, bias: m.bias !== null }),
  build: (e, w) => new Conv1D(num(e, 'in_features', w), num(e, 'out_features', w), 0.02, { bias: e.bias !== false }),
});
registerModuleType<LayerNorm>({
  type: 'layernorm',
  cls: LayerNorm,
  describe: (m) => ({ normalized_shape: [...m.normalizedShape], eps: m.eps, bias: m.bias !== null }),
  build: (e, w) => {
    const shape = e.normalized_shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) throw new ShrinkError(`${w}.normalized_shape: expected a list of positive integers, got ${show(shape)}`);
    return new LayerNorm(shape as number[], { eps: typeof e.eps === 'number' ? e.eps : 1e-5, bias: e.bias !== false });
  },
});
registerModuleType<RMSNorm>({
  type: 'rmsnorm',
  cls: RMSNorm,
  describe: (m) => ({ dim: m.weight.shape[0], eps: m.eps }),
  build: (e, w) => new RMSNorm(num(e, 'dim', w), { eps: typeof e.eps === 'number' ? e.eps : 1e-6 }),
});
registerModuleType<Embedding>({
  type: 'embedding',
  cls: Embedding,
  describe: (m) => ({ num_embeddings: m.numEmbeddings, embedding_dim: m.embeddingDim, padding_idx: m.paddingIdx }),
  build: (e, w) => new Embedding(num(e, 'num_embeddings', w), num(e, 'embedding_dim', w), { paddingIdx: typeof e.padding_idx === 'number' ? e.padding_idx : null }),
});

function typeOf(m: Module): ModuleType | undefined {
  return TYPES.find((t) => m instanceof (t.cls as unknown as new () => Module) && m.constructor === t.cls) ?? TYPES.find((t) => m instanceof (t.cls as unknown as new () => Module));
}

const join = (p: string, k: string) => (p ? `${p}.${k}` : k);

/** Own fields that hold modules, null slots, or lists of modules: [key, value]. */
function slots(m: Module): [string, unknown][] {
  return Object.entries(m).filter(([k, v]) => !k.startsWith('_') && (v === null || v instanceof Module || (Array.isArray(v) && v.length > 0 && v.every((x) => x instanceof Module || x === null))));
}

function describeModule(m: Module, path: string): ModuleEntry {
  const t = typeOf(m);
  if (!t) throw new Error(`cannot save the model: module '${path}' (${m.constructor.name}) differs from what config.json builds and its class is not registered with registerModuleType`);
  return { type: t.type, ...t.describe(m) };
}

function sameShapes(a: Module, b: Module): boolean {
  const pa = a.namedOwnParameters();
  const pb = b.namedOwnParameters();
  if (pa.length !== pb.length) return false;
  return pa.every(([k, t], i) => pb[i]![0] === k && t.shape.join() === pb[i]![1].shape.join());
}

function diff(actual: Module, skel: Module, path: string, out: Record<string, ModuleEntry>): void {
  if (HANDLED_ELSEWHERE.some((c) => actual instanceof c)) return;
  if (actual.constructor !== skel.constructor || !sameShapes(actual, skel)) {
    out[path] = describeModule(actual, path);
    return;
  }
  const fields: Record<string, unknown> = {};
  for (const f of STRUCTURAL_FIELDS) {
    if (!Object.getOwnPropertyDescriptor(actual, f)?.writable) continue; // getters derive from children
    const a = (actual as unknown as Record<string, unknown>)[f];
    if (typeof a === 'number' && a !== (skel as unknown as Record<string, unknown>)[f]) fields[f] = a;
  }
  if (Object.keys(fields).length) out[path] = { type: 'fields', ...fields };
  const skelSlots = new Map(slots(skel));
  for (const [k, v] of slots(actual)) {
    const s = skelSlots.get(k);
    skelSlots.delete(k);
    visit(v, s, join(path, k), out);
  }
  for (const [k, s] of skelSlots) visit(undefined, s, join(path, k), out);
}

function visit(v: unknown, s: unknown, path: string, out: Record<string, ModuleEntry>): void {
  if (Array.isArray(v) || Array.isArray(s)) {
    const a = (Array.isArray(v) ? v : []) as (Module | null)[];
    const b = (Array.isArray(s) ? s : []) as (Module | null)[];
    if (a.length !== b.length) throw new Error(`cannot save the model: '${path}' has ${a.length} entries, config.json builds ${b.length} (change the config's layer count instead)`);
    a.forEach((x, i) => visit(x, b[i], join(path, String(i)), out));
    return;
  }
  if (v instanceof Module && s instanceof Module) diff(v, s, path, out);
  else if (v instanceof Module) {
    if (!HANDLED_ELSEWHERE.some((c) => v instanceof c)) out[path] = describeModule(v, path);
  } else if ((v === null || v === undefined) && s instanceof Module) out[path] = { type: 'none' };
}

/** HF-expressible structure as config fields: BERT pruned_heads and a uniform (pruned) intermediate_size. */
function hfConfigPatch(model: Module, config: Record<string, unknown>): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  if (config.model_type !== 'bert') return patch;
  const pruned: Record<string, number[]> = {};
  const widths = new Set<number>();
  for (const [, m] of model.namedModules()) {
    const ph = (m as unknown as { prunedHeads?: () => Record<string, number[]> }).prunedHeads;
    if (typeof ph === 'function' && m.constructor.name === 'BertModel') Object.assign(pruned, ph.call(m));
    if (m.constructor.name === 'BertLayer') {
      const inter = (m as unknown as { intermediate?: { dense?: unknown } | null }).intermediate?.dense;
      if (inter instanceof Linear) widths.add(inter.outFeatures);
      else widths.add(-1);
    }
  }
  patch.pruned_heads = Object.keys(pruned).length ? pruned : undefined; // as the modules are, not as the config was
  if (widths.size === 1) {
    const w = [...widths][0]!;
    if (w > 0 && w !== config.intermediate_size) patch.intermediate_size = w;
  }
  return patch;
}

/**
 * The config sections that describe `model`'s structure against `config`: HF fields where HF can express it, and
 * `compression_config` for the rest (absent when the model is exactly what the config builds).
 */
export function describeStructure(model: Module, config: Record<string, unknown>): Record<string, unknown> {
  const patch = hfConfigPatch(model, config);
  const cfg = { ...config, ...patch };
  delete cfg.compression_config;
  delete cfg.quantization_config;
  const skel = withoutInit(() => modelFromConfig(cfg, model.constructor.name));
  const modules: Record<string, ModuleEntry> = {};
  diff(model, skel, '', modules);
  const out: Record<string, unknown> = { ...patch };
  if (Object.keys(modules).length) out.compression_config = { format_version: COMPRESSION_FORMAT_VERSION, modules } satisfies CompressionConfig;
  else out.compression_config = undefined;
  return out;
}

/** Set the field at a dotted path (a module, or null), creating nothing else: only own module slots are walked. */
function setAt(model: Module, path: string, value: Module | null, dir: string): void {
  const parts = path.split('.');
  const last = parts.pop()!;
  const missing = (upTo: string[]) => new ShrinkError(`${dir}: config.json compression_config.modules['${path}']: ${model.constructor.name} has no '${upTo.join('.')}'`, { file: dir });
  let parent: unknown = model;
  const walked: string[] = [];
  for (const p of parts) {
    walked.push(p);
    parent = slotValue(parent, p);
    if (!(parent instanceof Module) && !Array.isArray(parent)) throw missing(walked);
  }
  const cur = slotValue(parent, last);
  // only a module slot (a module, a pruned-away null, or a list entry) can be replaced
  if (cur === undefined || !(cur === null || cur instanceof Module)) throw missing([...walked, last]);
  if (Array.isArray(parent)) parent[Number(last)] = value;
  else (parent as Record<string, unknown>)[last] = value;
}

/** An own field of a module or an index of a module list (never an inherited property such as __proto__). */
function slotValue(parent: unknown, key: string): unknown {
  if (Array.isArray(parent)) return /^\d+$/.test(key) && Number(key) < parent.length ? parent[Number(key)] : undefined;
  if (parent instanceof Module && Object.hasOwn(parent, key) && !key.startsWith('_')) return (parent as unknown as Record<string, unknown>)[key];
  return undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The weight shape a built-in entry type implies (null: not known here); its size fields are checked. */
function impliedWeightShape(e: ModuleEntry, where: string): number[] | null {
  const n = (k: string) => num(e, k, where);
  switch (e.type) {
    case 'linear': case 'fake_quant_linear': return [n('out_features'), n('in_features')];
    case 'conv1d': return [n('in_features'), n('out_features')];
    case 'embedding': return [n('num_embeddings'), n('embedding_dim')];
    case 'rmsnorm': return [n('dim')];
    case 'layernorm': {
      const shape = e.normalized_shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) throw new ShrinkError(`${where}.normalized_shape: expected a list of positive integers, got ${show(shape)}`);
      return shape as number[];
    }
    default: return null;
  }
}

/**
 * Before building a module from an entry: its sizes must be integers, and what it would allocate must be what the
 * checkpoint holds (its stored weight's exact shape) or, with no stored weight, no more elements than the whole
 * checkpoint has; unknown entry types get each integer field bounded by the checkpoint's element count.
 */
function checkEntrySizes(e: ModuleEntry, path: string, weights: Map<string, Tensor | LazyTensor>, where: string, dir: string): void {
  let total = 0;
  for (const t of weights.values()) total += t.numel;
  const shape = impliedWeightShape(e, where);
  if (shape) {
    const stored = weights.get(`${path}.weight`);
    const numel = shape.reduce((a, d) => a * d, 1);
    if (stored && stored.shape.join() !== shape.join())
      throw new ShrinkError(`${where}: describes a weight of shape [${shape.join(', ')}] but the checkpoint's '${path}.weight' is [${stored.shape.join(', ')}]`, { file: dir });
    if (!stored && (numel > total || numel * 4 > maxTensorBytes()))
      throw new ShrinkError(`${where}: a weight of shape [${shape.join(', ')}] (${numel} elements) is more than the checkpoint holds (${total} elements)`, { file: dir });
    return;
  }
  for (const [k, v] of Object.entries(e))
    if (typeof v === 'number' && Number.isInteger(v) && v > Math.max(total, 1))
      throw new ShrinkError(`${where}.${k}: ${v} is larger than the checkpoint's ${total} weights`, { file: dir });
}

function prepareStructure(model: Module, section: unknown, weights: Map<string, Tensor | LazyTensor>, dir: string): void {
  if (!isPlainObject(section) || !isPlainObject(section.modules)) throw new ShrinkError(`${dir}: config.json compression_config.modules: expected an object of module entries`, { file: dir });
  const cc = section as unknown as CompressionConfig;
  if (cc.format_version !== COMPRESSION_FORMAT_VERSION) throw new ShrinkError(`${dir}: config.json compression_config.format_version ${show(cc.format_version)} is not supported (this Shrink reads ${COMPRESSION_FORMAT_VERSION})`, { file: dir });
  const entries = Object.entries(cc.modules).sort(([a], [b]) => a.split('.').length - b.split('.').length);
  for (const [path, e] of entries) {
    const where = `${dir}: config.json compression_config.modules['${path}']`;
    try {
      if (!isPlainObject(e) || typeof e.type !== 'string') throw new ShrinkError(`${where}: expected an object with a "type"`, { file: dir });
      if (e.type === 'none') setAt(model, path, null, dir);
      else if (e.type === 'fields') {
        const m = model.getSubmodule(path) as unknown as Record<string, unknown>;
        for (const [k, v] of Object.entries(e)) {
          if (k === 'type') continue;
          if (!(STRUCTURAL_FIELDS as readonly string[]).includes(k) || typeof v !== 'number') throw new ShrinkError(`${where}.${k}: not a structural field (known: ${STRUCTURAL_FIELDS.join(', ')})`, { file: dir });
          if (!Number.isInteger(v) || v < 1 || v >= 2 ** 31) throw new ShrinkError(`${where}.${k}: expected a positive integer, got ${show(v)}`, { file: dir });
          if (!Object.getOwnPropertyDescriptor(m, k)?.writable) throw new ShrinkError(`${where}.${k}: ${(m as object).constructor.name} at '${path}' has no field '${k}'`, { file: dir });
          m[k] = v;
        }
      } else {
        const t = TYPES.find((x) => x.type === e.type);
        if (!t) throw new ShrinkError(`${where}.type: unknown module type '${e.type}' (known: ${['none', 'fields', ...TYPES.map((x) => x.type)].join(', ')})`, { file: dir });
        checkEntrySizes(e as ModuleEntry, path, weights, where, dir);
        setAt(model, path, t.build(e as ModuleEntry, where), dir);
      }
    } catch (err) {
      throw asShrinkError(err, dir, where, 'cannot build it');
    }
  }
}

registerCheckpointPreparer('compression_config', prepareStructure);
registerCheckpointDescriber((model, config) => describeStructure(model, config));

