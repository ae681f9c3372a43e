/**
 * Optimizers as torch.optim: AdamW (decoupled weight decay, bias correction) and SGD (momentum, dampening,
 * Nesterov, L2 weight decay). Parameter groups carry their own hyperparameters (lr, weightDecay, and betas/eps or
 * momentum/…), e.g. no decay for biases and LayerNorm weights. Parameters whose grad is null are skipped and, as
 * in torch, their AdamW step count does not advance (bias correction is per parameter).
 *
 * Memory: state buffers (AdamW m and v, SGD momentum) are allocated once per parameter on its first update and
 * then updated in place; a step allocates nothing else. The float32 AdamW update runs through the active
 * backend's fused `adamw` kernel (native when built); float64 parameters always run on `ref`.
 */
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { fmtShape } from '../tensor/shape.ts';
import type { FArray } from '../backend/backend.ts';
import { backend, refBackend } from '../backend/registry.ts';
import { Module } from './module.ts';
import { LayerNorm, RMSNorm } from './layers.ts';

/** A parameter group: its parameters and every hyperparameter of the optimizer, resolved (torch param_groups). */
export interface ParamGroup extends Hyperparameters {
  params: Tensor[];
}

/** lr and weightDecay, plus the optimizer's own (betas, eps; momentum, dampening, nesterov). */
export interface Hyperparameters {
  lr: number;
  weightDecay: number;
  [key: string]: unknown;
}

/** What a caller may pass per group: parameters plus any hyperparameters to override. */
export type ParamGroupInput = { params: Tensor[]; lr?: number; weightDecay?: number; [key: string]: unknown };

/** JSON-able hyperparameters of one group, plus the per-parameter step counts where the optimizer keeps them. */
export interface GroupState {
  lr: number;
  weightDecay: number;
  /** Per-parameter update counts (AdamW bias correction), in the group's parameter order. */
  steps?: number[];
  [key: string]: unknown;
}

/**
 * Optimizer checkpoint: `step` and `groups` are JSON-able; `buffers` holds, per parameter (flat order over
 * groups), its named state tensors (empty where the parameter has had no update). The tensors are the live
 * buffers, not copies (as torch's state_dict): serialise them before the next step().
 */
export interface OptimizerState {
  step: number;
  groups: GroupState[];
  buffers: Record<string, Tensor>[];
}

type GroupsInput = Tensor[] | ParamGroupInput[];

function isSerialisable(v: unknown): boolean {
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'number'));
}

/** Contiguous float storage of a tensor (a subarray view when it does not start at 0 or spans more). */
function flat(t: Tensor, what: string): FArray {
  if (!t.isContiguous()) throw new Error(`${what} must be contiguous`);
  const d = t.data as FArray;
  return t.offset === 0 && d.length === t.numel ? d : (d.subarray(t.offset, t.offset + t.numel) as FArray);
}

export abstract class Optimizer {
  readonly groups: ParamGroup[] = [];
  /** Number of step() calls. */
  stepCount = 0;
  protected state = new Map<Tensor, Record<string, Tensor>>();
  /** Updates applied to each parameter (only optimizers with per-parameter bias correction use it). */
  protected paramSteps = new Map<Tensor, number>();
  /** Whether stateDict() records per-parameter step counts. */
  protected readonly tracksParamSteps: boolean = false;

  /** Hyperparameters a group takes when it does not set them. */
  protected readonly defaults: Hyperparameters;

  constructor(params: GroupsInput, defaults: Hyperparameters) {
    this.defaults = defaults;
    if (!Array.isArray(params) || params.length === 0) throw new Error(`${this.constructor.name}: got an empty parameter list`);
    const raw: ParamGroupInput[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroupInput[]);
    for (const g of raw) this.addParamGroup(g);
  }

  /** Add a group (torch add_param_group); missing hyperparameters take the optimizer's defaults. */
  addParamGroup(group: ParamGroupInput): void {
    const name = this.constructor.name;
    const gi = this.groups.length;
    if (!group || !Array.isArray(group.params)) throw new Error(`${name}: group ${gi} has no params array`);
    const seen = new Set(this.groups.flatMap((g) => g.params));
    for (const p of group.params) {
      if (!(p instanceof Tensor)) throw new Error(`${name}: group ${gi} contains a non-tensor parameter`);
      if (p.dtype !== 'float32' && p.dtype !== 'float64') throw new Error(`${name}: parameters must be float32 or float64, got ${p.dtype} (group ${gi})`);
      if (seen.has(p)) throw new Error(`${name}: a parameter appears more than once (group ${gi})`);
      seen.add(p);
    }
    const g: ParamGroup = { ...this.defaults, params: [...group.params] };
    for (const [k, v] of Object.entries(group)) if (k !== 'params' && v !== undefined) g[k] = v;
    this.validateGroup(g, gi);
    this.groups.push(g);
  }

  protected validateGroup(g: ParamGroup, gi: number): void {
    if (!(g.lr >= 0)) throw new Error(`${this.constructor.name}: invalid learning rate ${g.lr} (group ${gi})`);
    if (!(g.weightDecay >= 0)) throw new Error(`${this.constructor.name}: invalid weight decay ${g.weightDecay} (group ${gi})`);
  }

  /** Learning rate of the first group; setting it sets every group (use `groups[i].lr` for one group). */
  get lr(): number {
    return this.groups[0]!.lr;
  }
  set lr(v: number) {
    for (const g of this.groups) g.lr = v;
  }

  /** Set every parameter's grad to null (torch zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.grad = null;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    noGrad(() => {
      for (const g of this.groups) for (const p of g.params) if (p.grad) this.update(p, this.gradOf(p), g);
    });
  }

  /** Update one parameter given its gradient as contiguous data of the parameter's dtype. */
  protected abstract update(p: Tensor, grad: FArray, group: ParamGroup): void;

  private gradOf(p: Tensor): FArray {
    const g = p.grad!;
    if (g.shape.length !== p.shape.length || g.shape.some((s, i) => s !== p.shape[i]))
      throw new Error(`${this.constructor.name}: gradient of shape ${fmtShape(g.shape)} for a parameter of shape ${fmtShape(p.shape)}`);
    return flat(g.to(p.dtype).contiguous(), `${this.constructor.name}: gradients`);
  }

  /** The named state buffers of p, created (zero) on first use. */
  protected buffers(p: Tensor, names: readonly string[]): Record<string, Tensor> {
    let s = this.state.get(p);
    if (!s) {
      s = {};
      for (const n of names) s[n] = Tensor.zeros(p.shape, { dtype: p.dtype });
      this.state.set(p, s);
    }
    return s;
  }

  stateDict(): OptimizerState {
    const buffers: Record<string, Tensor>[] = [];
    for (const g of this.groups) for (const p of g.params) buffers.push({ ...(this.state.get(p) ?? {}) });
    const groups = this.groups.map((g) => {
      const out: GroupState = { lr: g.lr, weightDecay: g.weightDecay };
      for (const [k, v] of Object.entries(g)) if (k !== 'params' && isSerialisable(v)) out[k] = Array.isArray(v) ? [...v] : v;
      if (this.tracksParamSteps) out.steps = g.params.map((p) => this.paramSteps.get(p) ?? 0);
      return out;
    });
    return { step: this.stepCount, groups, buffers };
  }

  /**
   * Restore a stateDict() into an optimizer over the same parameters (same groups, same order). Hyperparameters
   * are restored too (torch does the same). Buffers are copied into existing state (or cloned), converted to each
   * parameter's dtype. Without per-parameter `steps` (older checkpoints), parameters with state take `step`.
   */
  loadStateDict(s: OptimizerState): void {
    const name = this.constructor.name;
    const params = this.groups.flatMap((g) => g.params);
    if (s.groups.length !== this.groups.length) throw new Error(`${name}.loadStateDict: state has ${s.groups.length} groups, optimizer has ${this.groups.length}`);
    if (s.buffers.length !== params.length) throw new Error(`${name}.loadStateDict: state has ${s.buffers.length} parameters, optimizer has ${params.length}`);
    s.groups.forEach((gs, i) => {
      const n = this.groups[i]!.params.length;
      if (gs.steps !== undefined && gs.steps.length !== n) throw new Error(`${name}.loadStateDict: group ${i} has ${gs.steps.length} step counts for ${n} parameters`);
    });
    params.forEach((p, i) => {
      for (const [k, t] of Object.entries(s.buffers[i]!))
        if (t.shape.length !== p.shape.length || t.shape.some((d, j) => d !== p.shape[j]))
          throw new Error(`${name}.loadStateDict: buffer '${k}' of parameter ${i} has shape ${fmtShape(t.shape)}, parameter has ${fmtShape(p.shape)}`);
    });
    this.stepCount = s.step;
    s.groups.forEach((gs, i) => {
      const g = this.groups[i]!;
      for (const [k, v] of Object.entries(gs)) if (k !== 'steps' && k !== 'params' && v !== undefined) g[k] = Array.isArray(v) ? [...v] : v;
      this.validateGroup(g, i);
    });
    this.state.clear();
    this.paramSteps.clear();
    noGrad(() => {
      let i = 0;
      s.groups.forEach((gs, gi) =>
        this.groups[gi]!.params.forEach((p, j) => {
          const b = s.buffers[i++]!;
          const own: Record<string, Tensor> = {};
          for (const [k, t] of Object.entries(b)) own[k] = t.dtype === p.dtype ? t.contiguous().clone() : t.to(p.dtype);
          const has = Object.keys(own).length > 0;
          if (has) this.state.set(p, own);
          const st = gs.steps ? gs.steps[j]! : has ? s.step : 0;
          if (st > 0) this.paramSteps.set(p, st);
        }),
      );
    });
  }
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/**
 * torch.optim.AdamW (amsgrad=False). Per parameter, with t its own update count:
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr·(m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + eps)
 * Groups may override lr, weightDecay, betas and eps; a group with `maximize: true` ascends (g ← −g, as torch's
 * maximize=True), which is how Lagrange multipliers are trained.
 */
export class AdamW extends Optimizer {
  protected override readonly tracksParamSteps = true;
  constructor(params: GroupsInput, opts: AdamWOptions = {}) {
    super(params, { lr: opts.lr ?? 1e-3, weightDecay: opts.weightDecay ?? 0.01, betas: opts.betas ?? [0.9, 0.999], eps: opts.eps ?? 1e-8 });
  }
  get betas(): [number, number] {
    return this.defaults.betas as [number, number];
  }
  get eps(): number {
    return this.defaults.eps as number;
  }
  protected override validateGroup(g: ParamGroup, gi: number): void {
    super.validateGroup(g, gi);
    const b = g.betas as unknown;
    if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => typeof x === 'number' && x >= 0 && x < 1))
      throw new Error(`AdamW: betas must be two numbers in [0, 1), got ${JSON.stringify(b)} (group ${gi})`);
    if (!((g.eps as number) >= 0)) throw new Error(`AdamW: invalid eps ${String(g.eps)} (group ${gi})`);
  }
  protected update(p: Tensor, grad: FArray, g: ParamGroup): void {
    const [b1, b2] = g.betas as [number, number];
    const { m, v } = this.buffers(p, ['m', 'v']) as { m: Tensor; v: Tensor };
    const t = (this.paramSteps.get(p) ?? 0) + 1;
    this.paramSteps.set(p, t);
    const be = p.dtype === 'float64' ? refBackend : backend();
    if (g.maximize === true) grad = grad.map((x: number) => -x) as FArray;
    // The kernel is typed for Float32Array; ref also takes Float64Array (native sends float64 to ref as well).
    be.adamw(flat(p, 'AdamW: parameters') as Float32Array, grad as Float32Array, m.data as Float32Array, v.data as Float32Array, g.lr, b1, b2, g.eps as number, g.weightDecay, 1 - b1 ** t, 1 - b2 ** t);
  }
}

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/**
 * torch.optim.SGD (maximize=False). Weight decay is L2 added to the gradient:
 *   d ← g + wd·p;  buf ← d on the first step, else momentum·buf + (1 − dampening)·d;
 *   d ← nesterov ? d + momentum·buf : buf (when momentum ≠ 0);  p ← p − lr·d
 * Groups may override lr, weightDecay, momentum, dampening and nesterov.
 */
export class SGD extends Optimizer {
  constructor(params: GroupsInput, opts: SGDOptions = {}) {
    super(params, { lr: opts.lr ?? 1e-3, weightDecay: opts.weightDecay ?? 0, momentum: opts.momentum ?? 0, dampening: opts.dampening ?? 0, nesterov: opts.nesterov ?? false });
  }
  get momentum(): number {
    return this.defaults.momentum as number;
  }
  protected override validateGroup(g: ParamGroup, gi: number): void {
    super.validateGroup(g, gi);
    const mom = g.momentum as number;
    if (!(mom >= 0)) throw new Error(`SGD: invalid momentum ${String(mom)} (group ${gi})`);
    if (g.nesterov && (mom <= 0 || g.dampening !== 0)) throw new Error(`SGD: Nesterov momentum requires a momentum and zero dampening (group ${gi})`);
  }
  protected update(p: Tensor, gd: FArray, g: ParamGroup): void {
    const w = flat(p, 'SGD: parameters');
    const { lr, weightDecay: wd } = g;
    const mom = g.momentum as number;
    const damp = g.dampening as number;
    const nesterov = g.nesterov as boolean;
    const n = w.length;
    if (mom === 0) {
      for (let i = 0; i < n; i++) w[i]! -= lr * (gd[i]! + wd * w[i]!);
      return;
    }
    const fresh = !this.state.has(p);
    const buf = this.buffers(p, ['momentum']).momentum!.data as FArray;
    for (let i = 0; i < n; i++) {
      const d = gd[i]! + wd * w[i]!;
      const b = fresh ? d : mom * buf[i]! + (1 - damp) * d;
      buf[i] = b;
      w[i]! -= lr * (nesterov ? d + mom * b : b);
    }
  }
}

const NO_DECAY_NAME = /(^|\.)(bias|[\w]*layer_?norm[\w]*\.weight|ln_\w*\.weight|norm\.weight)$/i;

/**
 * Split parameters into a decay and a no-decay group as the HF Trainer does: no decay for biases and for the
 * parameters of normalisation layers. Given a Module, norm layers are found by type (LayerNorm, RMSNorm) and
 * biases by name; given named parameters, both by name (`*.bias`, `*LayerNorm.weight`, `ln_*.weight`,
 * `norm.weight`). Frozen parameters are left out; empty groups are dropped.
 */
export function decayGroups(model: Module | [string, Tensor][], weightDecay: number): ParamGroupInput[] {
  let named: [string, Tensor, boolean][];
  if (model instanceof Module) {
    const normParams = new Set<Tensor>();
    for (const m of model.modules()) if (m instanceof LayerNorm || m instanceof RMSNorm) for (const [, t] of m.namedOwnParameters()) normParams.add(t);
    named = model.namedParameters().map(([n, p]) => [n, p, normParams.has(p) || /(^|\.)[^.]*bias[^.]*$/.test(n)]);
  } else named = model.map(([n, p]) => [n, p, NO_DECAY_NAME.test(n)]);
  const trainable = named.filter(([, p]) => p.requiresGrad);
  return [
    { params: trainable.filter(([, , nd]) => !nd).map(([, p]) => p), weightDecay },
    { params: trainable.filter(([, , nd]) => nd).map(([, p]) => p), weightDecay: 0 },
  ].filter((g) => g.params.length > 0);
}
