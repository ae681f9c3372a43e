/**
 * `share.layers` (one-shot; the shared weights train afterwards): ALBERT's cross-layer parameter sharing (Lan et al.
 * 2020, §3.1) on a trained BERT, GPT-2 or Llama. The blocks are split into groups — `group_size` k (blocks 0..k−1
 * share, k..2k−1 share, …; the last group may be shorter), explicit `groups` ([[0, 1, 2], [3, 4, 5]]; blocks in no
 * group stay as they are), or, with neither, one group of every block (ALBERT's all-shared) — and within a group
 * the attention projections (`share: "attention"`: q, k, v, o; GPT-2's fused c_attn and c_proj), the MLP's
 * (`"ffn"`: up, gate, down) or both (`"all"`) become one set of weights, initialised as the group's mean
 * (`init: "mean"`) or as its lowest-numbered block's (`"first"`).
 *
 * Sharing is by identity: the group's lowest-numbered block holds the tensors (its layers become
 * {@link SharedLinear} / {@link SharedConv1D} "owners"), and the same slot in every other block of the group is a
 * "member" whose `weight` and `bias` are the owner's very Tensor objects (non-enumerable accessors, so the module
 * walk — parameters(), stateDict(), the optimizer, the size count — sees each shared tensor once, under the owner).
 * Every use adds its gradient into the one tensor, so a following `finetune` step trains each shared weight once
 * with the sum of its layers' gradients.
 *
 * LayerNorms (RMSNorms) stay per block: ALBERT shares them too, but they cost 2·hidden values a block and let each
 * block rescale the shared projections' outputs, which helps when sharing is imposed on an already trained model.
 * Biases are shared with their weights.
 *
 * Checkpoint: each shared tensor is stored once, under its owner's key; a member has no keys at all. Both roles get
 * a `shared_linear` / `shared_conv1d` entry in compression_config — `{"group": <owner path>, "owner": true,
 * "members": n}` for the owner, `{"group": <owner path>, "owner": false}` for a member — and fromPretrained builds
 * the owner first (entries of one depth load in model order, and the owner is the lowest block) and ties every
 * member to it. (GPT-2's tied lm_head works the other way: the class declares the tie with `tiedKeys()` and the
 * duplicate key is dropped from the file; sharing decided by a method at run time has no class to declare it, so
 * here the members simply own no keys.)
 *
 * Later steps that swap layers (quantization, k-means, low rank, hashing) swap owners and members separately, each
 * from the same shared values: the result is right, but no longer shared in the file.
 */
import { Module } from '../../nn/module.ts';
import { Conv1D, Linear, type LinearLike } from '../../nn/layers.ts';
import { withoutInit } from '../../nn/init.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { anatomy, type BlockAnatomy } from '../../models/anatomy.ts';
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import { registerModuleType, type ModuleEntry } from '../structure.ts';
import { named } from './common.ts';

// ---------------------------------------------------------------- shared layers

/** What a layer in a sharing group carries beside its Linear / Conv1D self. */
export interface SharedRole {
  /** The owner's checkpoint path: the group's id. */
  readonly group: string;
  /** The owner (null when this layer is the owner). */
  readonly owner: (LinearLike & SharedRole) | null;
  /** Members tied to this owner (owners only). */
  members: number;
}

/** Make m's `weight` and `bias` the owner's tensors: accessors that are not enumerable, so the module walk skips them. */
function tieTo(m: Module, owner: LinearLike): void {
  for (const k of ['weight', 'bias'] as const)
    Object.defineProperty(m, k, {
      get: () => owner[k],
      set: (v: Tensor) => {
        (owner as unknown as Record<string, unknown>)[k] = v;
      },
      enumerable: false,
      configurable: true,
    });
}

/** A Linear in a cross-layer sharing group (see the file comment): the owner holds weight and bias, members use them. */
export class SharedLinear extends Linear implements SharedRole {
  readonly group: string;
  members = 0;
  /** Private (`_`): the module walk must not see the owner as a child. */
  private readonly _owner: SharedLinear | null;
  /** Use {@link SharedLinear.makeOwner} / {@link SharedLinear.makeMember}. */
  constructor(inFeatures: number, outFeatures: number, group: string, opts: { bias?: boolean; owner?: SharedLinear | null } = {}) {
    super(inFeatures, outFeatures, { bias: opts.bias });
    this.group = group;
    this._owner = opts.owner ?? null;
    if (this._owner) tieTo(this, this._owner);
  }
  get owner(): SharedLinear | null {
    return this._owner;
  }
  /** An owner holding copies of weight [out, in] and bias [out] as trainable leaves. */
  static makeOwner(group: string, weight: Tensor, bias: Tensor | null): SharedLinear {
    const m = withoutInit(() => new SharedLinear(weight.shape[1]!, weight.shape[0]!, group, { bias: bias !== null }));
    noGrad(() => {
      m.weight.copy_(weight);
      if (bias) m.bias!.copy_(bias);
    });
    return m;
  }
  static makeMember(owner: SharedLinear): SharedLinear {
    owner.members++;
    return withoutInit(() => new SharedLinear(owner.inFeatures, owner.outFeatures, owner.group, { bias: owner.bias !== null, owner }));
  }
}

/** GPT-2's Conv1D in a cross-layer sharing group (weight [in, out]); as {@link SharedLinear}. */
export class SharedConv1D extends Conv1D implements SharedRole {
  readonly group: string;
  members = 0;
  /** Private (`_`): the module walk must not see the owner as a child. */
  private readonly _owner: SharedConv1D | null;
  constructor(inFeatures: number, outFeatures: number, group: string, opts: { bias?: boolean; owner?: SharedConv1D | null } = {}) {
    super(inFeatures, outFeatures, 0.02, { bias: opts.bias });
    this.group = group;
    this._owner = opts.owner ?? null;
    if (this._owner) tieTo(this, this._owner);
  }
  get owner(): SharedConv1D | null {
    return this._owner;
  }
  /** An owner holding copies of weight [in, out] (Conv1D's own layout) and bias [out]. */
  static makeOwner(group: string, weight: Tensor, bias: Tensor | null): SharedConv1D {
    const m = withoutInit(() => new SharedConv1D(weight.shape[0]!, weight.shape[1]!, group, { bias: bias !== null }));
    noGrad(() => {
      m.weight.copy_(weight);
      if (bias) m.bias!.copy_(bias);
    });
    return m;
  }
  static makeMember(owner: SharedConv1D): SharedConv1D {
    owner.members++;
    return withoutInit(() => new SharedConv1D(owner.inFeatures, owner.outFeatures, owner.group, { bias: owner.bias !== null, owner }));
  }
}

/**
 * Owners built by the fromPretrained call under way, by group, so that the members after them can tie to them.
 * `load` tells loads apart (the entry's location without the module path); an entry is dropped once all its
 * members are tied, and holds its owner weakly.
 */
const LOADING = new Map<string, { load: string; owner: WeakRef<SharedLinear | SharedConv1D>; left: number }>();

const loadOf = (where: string) => where.replace(/\[[^\]]*\]$/, '');

type Shared = SharedLinear | SharedConv1D;
type SharedCtor = new (inF: number, outF: number, group: string, opts: { bias?: boolean; owner?: Shared | null }) => Shared;

function registerShared(type: string, cls: SharedCtor): void {
  registerModuleType<Shared>({
    type,
    cls,
    describe: (m) => ({
      in_features: m.inFeatures,
      out_features: m.outFeatures,
      bias: m.bias !== null,
      group: m.group,
      owner: m.owner === null,
      ...(m.owner === null ? { members: m.members } : {}),
    }),
    build: (e: ModuleEntry, where: string) => {
      const n = (k: string, min = 1) => {
        const v = e[k];
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error(`${where}.${k}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
        return v;
      };
      const [inF, outF] = [n('in_features'), n('out_features')];
      const group = e.group;
      if (typeof group !== 'string' || !group) throw new Error(`${where}.group: expected the path of the group's owner, got ${JSON.stringify(group)}`);
      if (typeof e.owner !== 'boolean') throw new Error(`${where}.owner: expected true or false, got ${JSON.stringify(e.owner)}`);
      const bias = e.bias !== false;
      const load = loadOf(where);
      if (e.owner) {
        const members = n('members', 0);
        const m = withoutInit(() => new cls(inF, outF, group, { bias }));
        for (const [g, x] of LOADING) if (x.load !== load) LOADING.delete(g); // a new load: forget older ones
        if (members > 0) LOADING.set(group, { load, owner: new WeakRef(m), left: members });
        return m;
      }
      const x = LOADING.get(group);
      const owner = x && x.load === load ? x.owner.deref() : undefined;
      if (!x || !owner) throw new Error(`${where}.group: its owner '${group}' has not been built before it (it must be an entry of this compression_config, with "owner": true)`);
      if (owner.inFeatures !== inF || owner.outFeatures !== outF || (owner.bias !== null) !== bias)
        throw new Error(`${where}: [${outF}, ${inF}]${bias ? '' : ' without bias'} does not match its owner '${group}' ([${owner.outFeatures}, ${owner.inFeatures}]${owner.bias ? '' : ' without bias'})`);
      if (--x.left <= 0) LOADING.delete(group);
      owner.members++;
      return withoutInit(() => new cls(inF, outF, group, { bias, owner }));
    },
  });
}

registerShared('shared_linear', SharedLinear as SharedCtor);
registerShared('shared_conv1d', SharedConv1D as SharedCtor);

// ---------------------------------------------------------------- the method

export type ShareWhat = 'attention' | 'ffn' | 'all';
export const SHARE_WHAT: readonly ShareWhat[] = ['attention', 'ffn', 'all'];
export type ShareInit = 'mean' | 'first';
export const SHARE_INITS: readonly ShareInit[] = ['mean', 'first'];

export interface LayersConfig {
  /** Consecutive blocks per group (the last may be shorter). */
  group_size: number | null;
  /** Explicit groups of block indices; blocks in no group are not shared. */
  groups: number[][] | null;
  /** Which sub-block's projections are shared. */
  share: ShareWhat;
  /** The shared value: the group's mean, or its lowest-numbered block's weights. */
  init: ShareInit;
}

const defaults: LayersConfig = { group_size: null, groups: null, share: 'all', init: 'mean' };

export interface LayersPlan {
  /** Groups of block indices (ascending), only those of two or more blocks. */
  groups: number[][];
  /** Block paths by index. */
  blocks: string[];
  /** Shared slots (paths relative to the block: `attention.self.query`), the same in every block of a group. */
  slots: string[][];
}

/** The slots of `block` that `share` shares, relative to its path; throws naming the block when it has none. */
function slotsOf(block: BlockAnatomy, share: ShareWhat): string[] {
  const rel = (p: string) => p.slice(block.path.length + 1);
  const out: string[] = [];
  if (share !== 'ffn') {
    if (!block.attention) throw new Error(`layer ${block.index} has no attention (pruned away): it cannot share one`);
    const a = block.attention;
    for (const p of [a.q, a.k, a.v, a.o]) if (!out.includes(rel(p))) out.push(rel(p));
  }
  if (share !== 'attention') {
    if (!block.mlp) throw new Error(`layer ${block.index} has no MLP (pruned away): it cannot share one`);
    if (block.mlp.kind === 'custom') throw new Error(`layer ${block.index}'s MLP is a ${block.mlp.module}, not a dense or gated MLP: it cannot share one`);
    for (const p of [block.mlp.up, block.mlp.gate, block.mlp.down]) if (p) out.push(rel(p));
  }
  return out;
}

/** The groups a config gives for a model of L blocks (only those of ≥ 2 blocks); throws naming the option. */
export function layerGroups(cfg: Pick<LayersConfig, 'group_size' | 'groups'>, L: number): number[][] {
  const hasSize = cfg.group_size !== null && cfg.group_size !== undefined;
  const hasGroups = cfg.groups !== null && cfg.groups !== undefined;
  if (hasSize && hasGroups) throw new Error(`options 'group_size' and 'groups' both set the groups: give one`);
  let groups: number[][];
  if (hasSize) {
    const k = cfg.group_size!;
    if (!(Number.isInteger(k) && k >= 2)) throw new Error(`option 'group_size' must be an integer >= 2, got ${JSON.stringify(k)}`);
    if (k > L) throw new Error(`option 'group_size' ${k} is larger than the model's ${L} layers`);
    groups = [];
    for (let s = 0; s < L; s += k) groups.push(Array.from({ length: Math.min(k, L - s) }, (_, i) => s + i));
  } else if (hasGroups) {
    const g = cfg.groups as unknown;
    if (!Array.isArray(g) || !g.every((x) => Array.isArray(x) && x.length > 0 && x.every((i) => Number.isInteger(i))))
      throw new Error(`option 'groups' must be a list of non-empty lists of layer indices, e.g. [[0, 1, 2], [3, 4, 5]], got ${JSON.stringify(g)}`);
    const seen = new Map<number, number>();
    (g as number[][]).forEach((grp, gi) => {
      for (const i of grp) {
        if (i < 0 || i >= L) throw new Error(`option 'groups': layer ${i} (group ${gi}) is out of range: the model has ${L} layers, 0..${L - 1}`);
        if (seen.has(i)) throw new Error(`option 'groups': layer ${i} is in group ${seen.get(i)} and group ${gi}`);
        seen.set(i, gi);
      }
    });
    groups = (g as number[][]).map((x) => [...x].sort((a, b) => a - b));
  } else groups = [Array.from({ length: L }, (_, i) => i)];
  return groups.filter((x) => x.length >= 2);
}

/** Check a config against the model and say what will be shared; throws naming the option or the layer. */
export function planLayers(model: Module, cfg: LayersConfig): LayersPlan {
  if (!SHARE_WHAT.includes(cfg.share)) throw new Error(`option 'share' must be one of ${SHARE_WHAT.join(', ')}, got ${JSON.stringify(cfg.share)}`);
  if (!SHARE_INITS.includes(cfg.init)) throw new Error(`option 'init' must be one of ${SHARE_INITS.join(', ')}, got ${JSON.stringify(cfg.init)}`);
  const a = anatomy(model);
  const L = a.blocks.length;
  const groups = layerGroups(cfg, L);
  const slots: string[][] = [];
  for (const g of groups) {
    const first = a.blocks[g[0]!]!;
    const names = slotsOf(first, cfg.share);
    for (const i of g.slice(1)) {
      const other = slotsOf(a.blocks[i]!, cfg.share);
      if (other.join() !== names.join()) throw new Error(`layers ${g[0]} and ${i} have different ${cfg.share} layers (${names.join(', ')} vs ${other.join(', ')})`);
    }
    for (const s of names) {
      const mods = g.map((i) => [i, model.getSubmodule(`${a.blocks[i]!.path}.${s}`)] as const);
      for (const [i, m] of mods) {
        const cls = m instanceof Conv1D ? 'Conv1D' : m instanceof Linear ? 'Linear' : null;
        if (!cls) throw new Error(`layer ${i}'s '${s}' is a ${m.constructor.name}: share.layers shares Linear / Conv1D layers (put it before steps that replace them)`);
      }
      const [i0, m0] = mods[0]! as readonly [number, LinearLike];
      for (const [i, m] of mods.slice(1) as (readonly [number, LinearLike])[]) {
        if ((m instanceof Conv1D) !== (m0 instanceof Conv1D) || m.weight.shape.join() !== m0.weight.shape.join() || (m.bias === null) !== (m0.bias === null))
          throw new Error(`layer ${i}'s '${s}' is [${m.outFeatures}, ${m.inFeatures}]${m.bias ? '' : ' without bias'}, layer ${i0}'s is [${m0.outFeatures}, ${m0.inFeatures}]${m0.bias ? '' : ' without bias'}: layers of a group must have the same shapes`);
      }
    }
    slots.push(names);
  }
  return { groups, blocks: a.blocks.map((b) => b.path), slots };
}

export interface LayersGroupReport {
  layers: number[];
  slots: string[];
  params_before: number;
  params_after: number;
  /** ‖W_l − W_shared‖_F / ‖W_l‖_F over the shared weights of each layer of the group, in group order. */
  weight_errors: number[];
}

const f32 = (t: Tensor) => noGrad(() => t.contiguous().toFloat32Array());

/** Share the layers of `model` in place (what the method's apply does). */
export function shareLayersModel(model: Module, cfg: Partial<LayersConfig>, log?: (l: string) => void): LayersGroupReport[] {
  const c: LayersConfig = { ...defaults, ...cfg };
  const p = planLayers(model, c);
  const out: LayersGroupReport[] = [];
  p.groups.forEach((g, gi) => {
    const errNum = new Float64Array(g.length);
    const errDen = new Float64Array(g.length);
    let before = 0;
    let after = 0;
    for (const s of p.slots[gi]!) {
      const paths = g.map((i) => `${p.blocks[i]}.${s}`);
      const mods = paths.map((q) => model.getSubmodule(q) as LinearLike);
      const m0 = mods[0]!;
      const ws = mods.map((m) => f32(m.weight));
      const bs = mods.map((m) => (m.bias ? f32(m.bias) : null));
      const pick = (xs: Float32Array[]) => {
        if (c.init === 'first') return Float32Array.from(xs[0]!);
        const acc = new Float64Array(xs[0]!.length);
        for (const x of xs) for (let i = 0; i < x.length; i++) acc[i] += x[i]!;
        return Float32Array.from(acc, (v) => v / xs.length);
      };
      const w = pick(ws);
      const b = bs[0] ? pick(bs as Float32Array[]) : null;
      ws.forEach((x, li) => {
        for (let i = 0; i < x.length; i++) {
          errNum[li] += (x[i]! - w[i]!) ** 2;
          errDen[li] += x[i]! ** 2;
        }
      });
      const wt = new Tensor(w, [...m0.weight.shape], 'float32');
      const bt = b ? new Tensor(b, [b.length], 'float32') : null;
      const owner = m0 instanceof Conv1D ? SharedConv1D.makeOwner(paths[0]!, wt, bt) : SharedLinear.makeOwner(paths[0]!, wt, bt);
      const trainable = m0.weight.requiresGrad;
      owner.weight.requiresGrad_(trainable);
      owner.bias?.requiresGrad_(trainable);
      owner.training = m0.training;
      model.setSubmodule(paths[0]!, owner);
      paths.slice(1).forEach((q, k) => {
        const mem = owner instanceof SharedConv1D ? SharedConv1D.makeMember(owner) : SharedLinear.makeMember(owner as SharedLinear);
        mem.training = mods[k + 1]!.training;
        model.setSubmodule(q, mem);
      });
      const n = w.length + (b ? b.length : 0);
      before += n * g.length;
      after += n;
    }
    const rep: LayersGroupReport = { layers: g, slots: p.slots[gi]!, params_before: before, params_after: after, weight_errors: g.map((_, li) => Math.sqrt(errNum[li]! / Math.max(errDen[li]!, 1e-300))) };
    out.push(rep);
    log?.(`share.layers group [${g.join(', ')}] (${c.share}, init ${c.init}): ${rep.slots.length} layers each shared, params ${before} → ${after}, weight error per layer ${rep.weight_errors.map((e) => e.toExponential(3)).join(' / ')}`);
  });
  return out;
}

export function layersSummary(groups: LayersGroupReport[], cfg: LayersConfig): Record<string, number | string> {
  const before = groups.reduce((a, g) => a + g.params_before, 0);
  const after = groups.reduce((a, g) => a + g.params_after, 0);
  const errs = groups.flatMap((g) => g.weight_errors);
  return {
    groups: groups.map((g) => g.layers.join('-')).join('/'),
    share: cfg.share,
    init: cfg.init,
    shared_layers_per_block: groups[0]?.slots.length ?? 0,
    params_before: before,
    params_after: after,
    params_ratio: before ? after / before : 1,
    mean_weight_error: errs.length ? errs.reduce((a, b) => a + b, 0) / errs.length : 0,
  };
}

export const shareLayers: Method<LayersConfig> = {
  name: 'share.layers',
  kind: 'one-shot',
  description: "cross-layer parameter sharing (ALBERT): blocks in groups share their attention and/or FFN weights (one tensor, trained once); LayerNorms stay per layer",
  defaults,
  types: { group_size: 'integer', share: SHARE_WHAT, init: SHARE_INITS },
  check: (model, cfg) => void named('share.layers', () => planLayers(model, cfg)),
  apply: (model, cfg, ctx) => {
    const groups = named('share.layers', () => shareLayersModel(model, cfg, ctx.log));
    return { report: () => layersSummary(groups, cfg) };
  },
};

registerMethod(shareLayers);
