/**
 * Optimizers as torch.optim: AdamW (decoupled weight decay, bias correction) and SGD (momentum, dampening,
 * Nesterov, L2 weight decay). Parameter groups carry their own lr / weight decay (e.g. no decay for biases and
 * LayerNorm weights). State buffers are allocated once per parameter and updated in place; the AdamW update runs
 * through the backend's fused `adamw` kernel (native when built).
 */
import { Tensor } from '../tensor/tensor.ts';
import { backend, refBackend } from '../backend/registry.ts';

export interface ParamGroup {
  params: Tensor[];
  lr: number;
  weightDecay: number;
  [key: string]: unknown;
}

export interface OptimizerState {
  step: number;
  groups: { lr: number; weightDecay: number }[];
  /** Per parameter (flat order over groups) named state buffers. */
  buffers: Record<string, Tensor>[];
}

type GroupInput = Tensor[] | ({ params: Tensor[] } & Partial<Omit<ParamGroup, 'params'>>)[];

function toGroups(params: GroupInput, lr: number, weightDecay: number): ParamGroup[] {
  if (!Array.isArray(params) || params.length === 0) throw new Error('optimizer: got an empty parameter list');
  const raw = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as { params: Tensor[] }[]);
  const seen = new Set<Tensor>();
  return raw.map((g, gi) => {
    for (const p of g.params) {
      if (!(p instanceof Tensor)) throw new Error(`optimizer: group ${gi} contains a non-tensor parameter`);
      if (p.dtype !== 'float32' && p.dtype !== 'float64') throw new Error(`optimizer: parameters must be float32 or float64, got ${p.dtype}`);
      if (seen.has(p)) throw new Error(`optimizer: a parameter appears in more than one group (group ${gi})`);
      seen.add(p);
    }
    return { lr, weightDecay, ...g, params: [...g.params] } as ParamGroup;
  });
}

export abstract class Optimizer {
  readonly groups: ParamGroup[];
  stepCount = 0;
  protected state = new Map<Tensor, Record<string, Tensor>>();
  constructor(params: GroupInput, lr: number, weightDecay: number) {
    if (!(lr >= 0)) throw new Error(`optimizer: invalid learning rate ${lr}`);
    this.groups = toGroups(params, lr, weightDecay);
  }
  /** Learning rate of the first group (all groups when set). */
  get lr(): number {
    return this.groups[0]!.lr;
  }
  set lr(v: number) {
    for (const g of this.groups) g.lr = v;
  }
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.grad = null;
  }
  abstract step(): void;

  protected buffers(p: Tensor, names: string[]): Record<string, Tensor> {
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
    for (const g of this.groups) for (const p of g.params) buffers.push(this.state.get(p) ?? {});
    return { step: this.stepCount, groups: this.groups.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay })), buffers };
  }
  loadStateDict(s: OptimizerState): void {
    const params = this.groups.flatMap((g) => g.params);
    if (s.buffers.length !== params.length) throw new Error(`optimizer.loadStateDict: state has ${s.buffers.length} parameters, optimizer has ${params.length}`);
    if (s.groups.length !== this.groups.length) throw new Error(`optimizer.loadStateDict: state has ${s.groups.length} groups, optimizer has ${this.groups.length}`);
    this.stepCount = s.step;
    s.groups.forEach((g, i) => Object.assign(this.groups[i]!, g));
    params.forEach((p, i) => {
      const b = s.buffers[i]!;
      const own: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(b)) {
        if (t.shape.join(',') !== p.shape.join(',')) throw new Error(`optimizer.loadStateDict: buffer '${k}' of parameter ${i} has shape [${t.shape}], parameter has [${p.shape}]`);
        own[k] = t.to(p.dtype).clone();
      }
      if (Object.keys(own).length) this.state.set(p, own);
    });
  }
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** torch.optim.AdamW. */
export class AdamW extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  constructor(params: GroupInput, opts: AdamWOptions = {}) {
    super(params, opts.lr ?? 1e-3, opts.weightDecay ?? 0.01);
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
  }
  step(): void {
    this.stepCount++;
    const [b1, b2] = this.betas;
    const bc1 = 1 - b1 ** this.stepCount;
    const bc2 = 1 - b2 ** this.stepCount;
    for (const g of this.groups)
      for (const p of g.params) {
        if (!p.grad) continue;
        if (!p.isContiguous() || p.offset !== 0 || p.data.length !== p.numel) throw new Error('AdamW: parameters must own contiguous storage');
        const { m, v } = this.buffers(p, ['m', 'v']) as { m: Tensor; v: Tensor };
        const grad = p.grad.to(p.dtype).contiguous();
        const gd = grad.offset === 0 && grad.data.length === grad.numel ? grad.data : grad.data.subarray(grad.offset, grad.offset + grad.numel);
        const be = p.dtype === 'float64' ? refBackend : backend();
        be.adamw(p.data as Float32Array, gd as Float32Array, m.data as Float32Array, v.data as Float32Array, g.lr, b1, b2, this.eps, g.weightDecay, bc1, bc2);
      }
  }
}

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** torch.optim.SGD (weight decay is L2 added to the gradient). */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  constructor(params: GroupInput, opts: SGDOptions) {
    super(params, opts.lr, opts.weightDecay ?? 0);
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error('SGD: Nesterov momentum requires a momentum and zero dampening');
  }
  step(): void {
    this.stepCount++;
    for (const g of this.groups)
      for (const p of g.params) {
        if (!p.grad) continue;
        const grad = p.grad.to(p.dtype).contiguous().toArray();
        const w = p.data;
        const wd = g.weightDecay;
        const n = p.numel;
        if (wd !== 0) for (let i = 0; i < n; i++) grad[i]! += wd * w[i]!;
        if (this.momentum !== 0) {
          const fresh = !this.state.has(p);
          const buf = this.buffers(p, ['momentum']).momentum!.data;
          for (let i = 0; i < n; i++) {
            buf[i] = fresh ? grad[i]! : this.momentum * buf[i]! + (1 - this.dampening) * grad[i]!;
            grad[i] = this.nesterov ? grad[i]! + this.momentum * buf[i]! : buf[i]!;
          }
        }
        for (let i = 0; i < n; i++) w[i]! -= g.lr * grad[i]!;
      }
  }
}

/** Split parameters into decay / no-decay groups as HF Trainer does (no decay for biases and LayerNorm weights). */
export function decayGroups(named: [string, Tensor][], weightDecay: number): { params: Tensor[]; weightDecay: number }[] {
  const noDecay = (n: string) => n.endsWith('.bias') || n === 'bias' || /layer_?norm|LayerNorm|ln_|norm\.weight|\bnorm\b/i.test(n);
  const trainable = named.filter(([, p]) => p.requiresGrad);
  return [
    { params: trainable.filter(([n]) => !noDecay(n)).map(([, p]) => p), weightDecay },
    { params: trainable.filter(([n]) => noDecay(n)).map(([, p]) => p), weightDecay: 0 },
  ].filter((g) => g.params.length > 0);
}
