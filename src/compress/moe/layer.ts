/**
 * Sparse mixture-of-experts layer (ST-MoE, Zoph et al. 2022; Switch Transformers; NLLB-MoE) for the MLP slot of
 * BERT, GPT-2 and Llama blocks (src/models/anatomy.ts `replaceMlp`).
 *
 * Routing, per group of tokens (a batch row by default, `groups: 'all'` routes all tokens of a call as one group):
 * - router logits `x·W_rᵀ` without bias, at least in float32 (float16/bfloat16 inputs are cast up; float64 stays),
 *   with optional multiplicative jitter `x·U(1−j, 1+j)` while training;
 * - top-k choices: the first is argmax of the probabilities, each further one argmax of the logits with the earlier
 *   choices masked ('sampling' adds Gumbel noise first; 'random' keeps a second choice when 2·p > U(0, 1));
 * - capacity per expert and group: `capacity` when set, else `max(min_capacity, round(CF · tokens / E))` with
 *   CF = `capacity_factor` in training and `eval_capacity_factor` in eval (CF ≤ 0: unlimited);
 * - priority (ST-MoE / NLLB): every first choice is placed before any second choice, and so on; within a rank in
 *   token order, or by descending max probability with `batch_prioritized`. A choice whose position ≥ capacity
 *   is dropped;
 * - combine weights: 'softmax' gates are the router probabilities (top-1: the raw max probability, as Switch;
 *   top-k > 1: renormalised over the kept choices, or over all choices with `normalize_before_dropping`, as NLLB);
 *   'one' gates are 1 (MoEfication: the selected experts' outputs are summed unscaled).
 *
 * Dispatch: per expert the routed rows are gathered (indexSelect), run through that expert's two Linears, scaled
 * by their gates, and scattered back by one indexSelect per routing rank over the concatenated expert outputs plus
 * a zero row; no dense mask over all experts, so compute follows the number of routed tokens. A dropped token gets a
 * zero expert output (the block's residual carries it), or `dropped: 'scaled_input'` reproduces HF
 * SwitchTransformersSparseMLP v4.36 (`p_max · x`).
 *
 * Native dispatch (inference): when the native backend is active with its MoE kernel (native/moe.cc `moeFfn`), the
 * layer is in eval mode, no gradient is needed (inside noGrad, or nothing involved requires one), the input is
 * float32, every expert is a plain MoEExpert of plain float32 `Linear`s (no forward hooks, no subclasses, a known
 * activation), tokenDropout is 0 and dropped tokens get 'zero', {@link MoELayer.dispatch} runs the whole gather →
 * up → activation → down → gate → scatter in one native call (one GEMM per expert and projection). The TypeScript
 * dispatch stays the spec and runs in every other case; test/compress/moe-native.test.ts compares the two.
 *
 * Auxiliary losses (recorded with addAuxLoss while training, read by the methods with collectAuxLosses):
 * `z_loss` = mean over tokens of logsumexp(logits)² and `balance_loss` = E² · mean over groups and experts of
 * (fraction of tokens routed to e) · (mean probability of e), as transformers' router_z_loss_func and
 * load_balancing_loss_func compute them (a token counts once for each of its experts).
 */
import { keepFloat } from '../quant/apply.ts';
import { Module } from '../../nn/module.ts';
import { Linear } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { isGradEnabled, noGrad } from '../../tensor/autograd.ts';
import { backend, nativeAddon } from '../../backend/registry.ts';
import { defaultGenerator, type Generator } from '../../tensor/random.ts';
import { cat } from '../../ops/movement.ts';
import { dropout } from '../../ops/nn.ts';
import { activation } from '../../models/activations.ts';
import { addAuxLoss } from '../../nn/hooks.ts';

export type SecondPolicy = 'all' | 'random' | 'sampling';

export interface RoutingOptions {
  numExperts: number;
  topK: number;
  /** Fixed capacity per expert and group (null: from the capacity factors). */
  capacity: number | null;
  capacityFactor: number;
  evalCapacityFactor: number;
  minCapacity: number;
  secondPolicy: SecondPolicy;
  normalizeBeforeDropping: boolean;
  batchPrioritized: boolean;
  gate: 'softmax' | 'one';
}

export const ROUTING_DEFAULTS: RoutingOptions = {
  numExperts: 4, topK: 1, capacity: null, capacityFactor: 1.25, evalCapacityFactor: 2, minCapacity: 4, secondPolicy: 'all',
  normalizeBeforeDropping: false, batchPrioritized: false, gate: 'softmax',
};

/** The result of routing G groups of S tokens with k choices each (flat slot index = (g·S + s)·k + j). */
export interface Routing {
  groups: number;
  tokens: number;
  k: number;
  numExperts: number;
  capacity: number;
  /** Softmax of the logits, [G, S, E] (with gradient). */
  probs: Tensor;
  /** Expert of each slot before capacity (-1: no choice, e.g. a padding token or a rejected random second choice). */
  choice: Int32Array;
  /** 1 where the slot's choice fits in its expert's capacity. */
  kept: Uint8Array;
  /** Gate of each slot, [G·S·k] (with gradient); null for 'one' gates. */
  gates: Tensor | null;
}

/** Capacity per expert and group for S tokens. */
export function expertCapacity(o: RoutingOptions, tokens: number, training: boolean): number {
  if (o.capacity !== null) return o.capacity;
  const cf = training ? o.capacityFactor : o.evalCapacityFactor;
  if (!(cf > 0)) return Number.POSITIVE_INFINITY;
  return Math.max(o.minCapacity, Math.round((cf * tokens) / o.numExperts));
}

/** The first index of the largest v[base + e] over e < E not marked in `taken` (a NaN first in line stays). */
function argmaxMasked(v: ArrayLike<number>, base: number, E: number, taken: Uint8Array): number {
  let best = -1;
  let bv = Number.NEGATIVE_INFINITY;
  for (let e = 0; e < E; e++) {
    if (taken[e]) continue;
    const x = v[base + e]!;
    if (best < 0 || x > bv) {
      best = e;
      bv = x;
    }
  }
  return best;
}

/**
 * Route `logits` [G, S, E]: choices, priorities, capacity, gates (see the file comment). `padding` ([G·S], 1 =
 * padding) leaves tokens unrouted; `training` picks the capacity factor.
 */
export function route(logits: Tensor, o: RoutingOptions, opts: { training: boolean; padding?: ArrayLike<number> | null; generator?: Generator } = { training: false }): Routing {
  if (logits.ndim !== 3) throw new Error(`route: logits must be [groups, tokens, experts], got [${logits.shape}]`);
  const [G, S, E] = logits.shape as [number, number, number];
  if (E !== o.numExperts) throw new Error(`route: ${E} logits per token, ${o.numExperts} experts`);
  const k = o.topK;
  if (!(Number.isInteger(k) && k >= 1 && k <= E)) throw new Error(`route: top_k must be an integer in [1, ${E}], got ${k}`);
  const gen = opts.generator ?? defaultGenerator;
  const probs = logits.softmax(-1);
  const pd = noGrad(() => probs.contiguous().toArray()) as ArrayLike<number>;
  const ld = noGrad(() => logits.contiguous().toArray()) as ArrayLike<number>;
  const N = G * S;
  const choice = new Int32Array(N * k).fill(-1);
  const capacity = expertCapacity(o, S, opts.training);
  // choices
  const taken = new Uint8Array(E);
  for (let t = 0; t < N; t++) {
    if (opts.padding && opts.padding[t]) continue;
    taken.fill(0);
    for (let j = 0; j < k; j++) {
      let e: number;
      if (j === 0) e = argmaxMasked(pd, t * E, E, taken);
      else if (o.secondPolicy === 'sampling') {
        const noisy = new Float64Array(E);
        for (let x = 0; x < E; x++) noisy[x] = ld[t * E + x]! - Math.log(-Math.log(Math.max(gen.random(), 1e-20)));
        e = argmaxMasked(noisy, 0, E, taken);
      } else e = argmaxMasked(ld, t * E, E, taken);
      taken[e] = 1;
      if (j > 0 && o.secondPolicy === 'random' && !(2 * pd[t * E + e]! > gen.random())) continue;
      choice[t * k + j] = e;
    }
  }
  // priorities and capacity: all rank-j choices before any rank-(j+1) choice
  const kept = new Uint8Array(N * k);
  for (let g = 0; g < G; g++) {
    const order = Array.from({ length: S }, (_, s) => s);
    if (o.batchPrioritized) {
      const maxP = order.map((s) => {
        let m = Number.NEGATIVE_INFINITY;
        for (let e = 0; e < E; e++) m = Math.max(m, pd[(g * S + s) * E + e]!);
        return m;
      });
      order.sort((a, b) => maxP[b]! - maxP[a]! || a - b);
    }
    const count = new Float64Array(E);
    for (let j = 0; j < k; j++)
      for (const s of order) {
        const slot = (g * S + s) * k + j;
        const e = choice[slot]!;
        if (e < 0) continue;
        if (count[e]! < capacity) kept[slot] = 1;
        count[e]!++;
      }
  }
  let gates: Tensor | null = null;
  if (o.gate === 'softmax' && (probs.dtype === 'float32' || probs.dtype === 'float64') && (!isGradEnabled() || !probs.requiresGrad)) gates = gatesNoGrad(pd, choice, kept, N, E, k, o.normalizeBeforeDropping, probs.dtype);
  else if (o.gate === 'softmax') {
    const flatIdx = new Int32Array(N * k);
    for (let i = 0; i < N * k; i++) flatIdx[i] = Math.floor(i / k) * E + Math.max(choice[i]!, 0);
    const psel = probs.reshape([N * E]).indexSelect(0, Tensor.from(flatIdx, { dtype: 'int32' })).reshape([N, k]);
    if (k === 1) gates = psel.reshape([N]);
    else {
      const m = new Float64Array(N * k);
      for (let i = 0; i < N * k; i++) m[i] = o.normalizeBeforeDropping ? 1 : kept[i]!;
      const mask = Tensor.from(m, { shape: [N, k], dtype: probs.dtype });
      const eps = probs.dtype === 'float64' ? 2.220446049250313e-16 : 1.1920928955078125e-7;
      const denom = psel.mul(mask).sum(-1, true).clamp(eps);
      gates = psel.div(denom).reshape([N * k]);
    }
  }
  return { groups: G, tokens: S, k, numExperts: E, capacity, probs, choice, kept, gates };
}

/**
 * route's softmax gates without autograd, in plain loops: the same values as its tensor ops (psel, × mask, sum in
 * float64 rounded once to the dtype, clamp to eps, ÷), for float32 (each result rounded with Math.fround) and
 * float64 probabilities.
 */
function gatesNoGrad(pd: ArrayLike<number>, choice: Int32Array, kept: Uint8Array, N: number, E: number, k: number, normalizeBeforeDropping: boolean, dtype: 'float32' | 'float64'): Tensor {
  const f32 = dtype === 'float32';
  const out = f32 ? new Float32Array(N * k) : new Float64Array(N * k);
  if (k === 1) {
    for (let t = 0; t < N; t++) out[t] = pd[t * E + Math.max(choice[t]!, 0)]!;
  } else {
    const eps = f32 ? 1.1920928955078125e-7 : 2.220446049250313e-16;
    for (let t = 0; t < N; t++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += pd[t * E + Math.max(choice[t * k + j]!, 0)]! * (normalizeBeforeDropping || kept[t * k + j] ? 1 : 0);
      let d = f32 ? Math.fround(s) : s;
      if (d < eps) d = eps;
      for (let j = 0; j < k; j++) {
        const q = pd[t * E + Math.max(choice[t * k + j]!, 0)]! / d;
        out[t * k + j] = f32 ? Math.fround(q) : q;
      }
    }
  }
  return new Tensor(out, [N * k], dtype);
}

/** Dense combine weights [G·S, E] (gate of each kept slot; 1 for 'one' gates), detached: for inspection and tests. */
export function combineWeights(r: Routing): Tensor {
  const N = r.groups * r.tokens;
  const out = new Float64Array(N * r.numExperts);
  const g = r.gates ? (noGrad(() => r.gates!.toArray()) as ArrayLike<number>) : null;
  for (let i = 0; i < N * r.k; i++) if (r.kept[i]) out[Math.floor(i / r.k) * r.numExperts + r.choice[i]!] += g ? g[i]! : 1;
  return Tensor.from(out, { shape: [N, r.numExperts], dtype: r.probs.dtype });
}

/** One-hot [G·S, E] of the kept first choices (zero row: dropped or unrouted). */
export function firstChoiceMask(r: Routing): Int32Array {
  const N = r.groups * r.tokens;
  const out = new Int32Array(N * r.numExperts);
  for (let t = 0; t < N; t++) if (r.kept[t * r.k]) out[t * r.numExperts + r.choice[t * r.k]!] = 1;
  return out;
}

/** transformers' router_z_loss_func: Σ logsumexp(logits)² / (G·S) for logits [G, S, E]. */
export function routerZLoss(logits: Tensor): Tensor {
  if (logits.ndim !== 3) throw new Error(`routerZLoss: logits must be [groups, tokens, experts], got [${logits.shape}]`);
  return logits.logsumexp(-1).square().sum().div(logits.shape[0]! * logits.shape[1]!);
}

/**
 * transformers' load_balancing_loss_func: probs [G, S, E], expert indices [G, S] or [G, S, k] (a token counts once
 * for each expert it names; negative indices name none): E² · mean_{g,e}(mean_s mask · mean_s probs).
 */
export function loadBalancingLoss(probs: Tensor, indices: Tensor | { data: ArrayLike<number>; k: number }): Tensor {
  if (probs.ndim !== 3) throw new Error(`loadBalancingLoss: probs must be [groups, tokens, experts], got [${probs.shape}]`);
  const [G, S, E] = probs.shape as [number, number, number];
  let data: ArrayLike<number>;
  let k: number;
  if (indices instanceof Tensor) {
    if (indices.shape[0] !== G || indices.shape[1] !== S || indices.ndim > 3 || indices.ndim < 2) throw new Error(`loadBalancingLoss: indices [${indices.shape}] do not match probs [${probs.shape}]`);
    data = indices.contiguous().toArray() as ArrayLike<number>;
    k = indices.ndim === 3 ? indices.shape[2]! : 1;
  } else ({ data, k } = indices);
  const frac = new Float64Array(G * E);
  for (let g = 0; g < G; g++)
    for (let s = 0; s < S; s++) {
      const seen = new Set<number>();
      for (let j = 0; j < k; j++) {
        const e = Number(data[(g * S + s) * k + j]);
        if (e >= 0 && e < E) seen.add(e);
      }
      for (const e of seen) frac[g * E + e] += 1 / S;
    }
  const f = Tensor.from(frac, { shape: [G, E], dtype: probs.dtype });
  return probs.mean(1).mul(f).mean().mul(E * E);
}

// ---------------------------------------------------------------- native dispatch

interface MoeAddon {
  moeFfn(
    x: Float32Array, N: number, D: number, choice: Int32Array, kept: Uint8Array, gates: Float32Array | null, k: number,
    experts: (Float32Array | null)[], widths: Int32Array, act: number, bias: Float32Array | null, out: Float32Array,
  ): void;
}

/** The addon's MoE kernel when the native backend is active (and built with it), else null. */
export function moeAddon(): MoeAddon | null {
  if (backend().name !== 'native') return null;
  const a = nativeAddon() as unknown as Partial<MoeAddon> | null;
  return a && typeof a.moeFfn === 'function' ? (a as MoeAddon) : null;
}

/** native/moe.cc activation ids of the ACT2FN names MoEExpert accepts. */
const MOE_ACT_ID: Record<string, number> = { relu: 0, gelu: 1, gelu_new: 2, gelu_pytorch_tanh: 2, silu: 3, swish: 3, tanh: 4 };

/** Contiguous float32 values of t without a copy when possible. */
function f32(t: Tensor): Float32Array {
  const c = t.contiguous();
  if (c.dtype === 'float32') return (c.data as Float32Array).subarray(c.offset, c.offset + c.numel);
  return c.toFloat32Array();
}

/** A Linear the kernel can read: the class itself (no subclass, no forward hook), float32 [out, inF] weight and bias. */
function plainLinear(l: unknown, out: number, inF: number): l is Linear {
  if (!(l instanceof Linear) || Object.getPrototypeOf(l) !== Linear.prototype || Object.prototype.hasOwnProperty.call(l, 'forward')) return false;
  const w = l.weight;
  if (w.dtype !== 'float32' || w.ndim !== 2 || w.shape[0] !== out || w.shape[1] !== inF) return false;
  return !l.bias || (l.bias.dtype === 'float32' && l.bias.ndim === 1 && l.bias.shape[0] === out);
}

// ---------------------------------------------------------------- experts and the layer

/** One expert: down(act(up(x))), optional dropout on the hidden activations (ST-MoE expert dropout). */
export class MoEExpert extends Module {
  up: Linear;
  down: Linear;
  constructor(up: Linear, down: Linear, readonly activation: string, public dropout = 0) {
    super();
    this.up = up;
    this.down = down;
  }
  forward(x: Tensor): Tensor {
    let h = activation(this.activation, 'MoEExpert')(this.up.forward(x));
    if (this.dropout > 0) h = dropout(h, this.dropout, this.training);
    return this.down.forward(h);
  }
}

export interface MoELayerOptions extends RoutingOptions {
  /** Routing groups: each batch row ('row', Switch) or every token of the call ('all', NLLB). */
  groups: 'row' | 'all';
  /** Multiplicative router jitter while training (0: off). */
  jitter: number;
  /** Dropout on each expert's output while training; in eval its output is scaled by (1 − p) (NLLB moe_token_dropout). */
  tokenDropout: number;
  /** What a token no kept choice reaches gets: 'zero' (the residual carries it) or HF Switch's p_max · x. */
  dropped: 'zero' | 'scaled_input';
  /** Which expert indices the balance loss counts: every routed choice, or HF Switch's first choice after capacity (dropped → 0). */
  balanceIndices: 'routed' | 'after_capacity';
}

export const LAYER_DEFAULTS: MoELayerOptions = { ...ROUTING_DEFAULTS, groups: 'row', jitter: 0, tokenDropout: 0, dropped: 'zero', balanceIndices: 'routed' };

/** Running routing statistics since the last reset (load per expert, dropped slots, active experts per token). */
export interface MoEStats {
  tokens: number;
  slots: number;
  kept: number;
  load: Float64Array;
}

export class MoELayer extends Module {
  router: Linear;
  experts: MoEExpert[];
  /** Output bias added to every token (MoEfication keeps the dense FFN's down-projection bias here), or null. */
  bias: Tensor | null;
  /** Routing and dispatch options (JSON-able; saved in compression_config). */
  _opts: MoELayerOptions;
  _generator: Generator = defaultGenerator;
  _stats: MoEStats;
  /** The last call's routing (for inspection). */
  _last: Routing | null = null;
  /** Padding mask for the next call ([G·S], 1 = padding); consumed by it. */
  _padding: ArrayLike<number> | null = null;
  /** false: always the TypeScript dispatch, even where the native kernel could run (tests, benchmarks). */
  _native = true;
  constructor(router: Linear, experts: MoEExpert[], opts: Partial<MoELayerOptions> = {}, bias: Tensor | null = null) {
    super();
    if (router.bias) throw new Error('MoELayer: the router has no bias (x·W_r)');
    if (experts.length !== router.outFeatures) throw new Error(`MoELayer: ${experts.length} experts, router has ${router.outFeatures} outputs`);
    this.router = router;
    keepFloat(router); // quantization leaves the router in float (routing is computed in float32)
    this.experts = experts;
    this.bias = bias;
    this._opts = { ...LAYER_DEFAULTS, ...opts, numExperts: experts.length };
    this._stats = { tokens: 0, slots: 0, kept: 0, load: new Float64Array(experts.length) };
  }
  get numExperts(): number {
    return this.experts.length;
  }
  get options(): MoELayerOptions {
    return this._opts;
  }
  /** Change routing options (top_k, capacity factors …) in place, e.g. for evaluation. */
  setOptions(o: Partial<MoELayerOptions>): void {
    this._opts = { ...this._opts, ...o, numExperts: this.experts.length };
  }
  resetStats(): void {
    this._stats = { tokens: 0, slots: 0, kept: 0, load: new Float64Array(this.experts.length) };
  }
  get stats(): MoEStats {
    return this._stats;
  }

  /** Router logits for x [N, D] (at least float32, jitter while training). */
  routerLogits(x: Tensor): Tensor {
    let h = x.dtype === 'float16' || x.dtype === 'bfloat16' ? x.float() : x;
    const j = this._opts.jitter;
    if (this.training && j > 0) {
      const u = Tensor.rand(h.shape, { dtype: h.dtype, generator: this._generator });
      h = h.mul(noGrad(() => u.mul(2 * j).add(1 - j)));
    }
    const w = this.router.weight.dtype === h.dtype ? this.router.weight : this.router.weight.to(h.dtype);
    return h.matmul(w.t());
  }

  forward(x: Tensor): Tensor {
    const o = this._opts;
    const shape = x.shape;
    const D = shape[shape.length - 1]!;
    const N = x.numel / D;
    const G = o.groups === 'all' || shape.length < 3 ? 1 : N / shape[shape.length - 2]!;
    const S = N / G;
    const flat = x.reshape([N, D]);
    const logits = this.routerLogits(flat).reshape([G, S, o.numExperts]);
    const padding = this._padding;
    this._padding = null;
    const r = route(logits, o, { training: this.training, padding, generator: this._generator });
    this._last = r;
    if (this.training) {
      addAuxLoss(this, 'z_loss', routerZLoss(logits));
      addAuxLoss(this, 'balance_loss', loadBalancingLoss(r.probs, { data: this.balanceIndices(r), k: o.balanceIndices === 'routed' ? r.k : 1 }));
    }
    const out = this.dispatch(flat, r).reshape(shape);
    return out;
  }

  private balanceIndices(r: Routing): Int32Array {
    if (this._opts.balanceIndices === 'routed') return r.choice;
    const N = r.groups * r.tokens;
    const idx = new Int32Array(N);
    for (let t = 0; t < N; t++) idx[t] = r.kept[t * r.k] ? r.choice[t * r.k]! : 0;
    return idx;
  }

  /**
   * Gather per expert → expert → gate → scatter back (one indexSelect per rank over the stacked outputs); natively
   * when {@link MoELayer.nativeArgs} allows (see the file comment), with the same statistics.
   */
  dispatch(flat: Tensor, r: Routing): Tensor {
    const nat = this.nativeArgs(flat, r);
    if (nat) return this.dispatchNative(flat, r, nat);
    const o = this._opts;
    const [N, D] = flat.shape as [number, number];
    const k = r.k;
    const rows: Tensor[] = [];
    const inv: Int32Array[] = Array.from({ length: k }, () => new Int32Array(N).fill(-1));
    let offset = 0;
    const st = this._stats;
    st.tokens += N;
    for (let e = 0; e < this.experts.length; e++) {
      const tok: number[] = [];
      const slot: number[] = [];
      for (let t = 0; t < N; t++)
        for (let j = 0; j < k; j++) {
          const i = t * k + j;
          if (r.kept[i] && r.choice[i] === e) {
            tok.push(t);
            slot.push(i);
          }
        }
      st.load[e]! += tok.length;
      if (tok.length === 0) continue;
      const xe = flat.indexSelect(0, Tensor.from(Int32Array.from(tok), { dtype: 'int32' }));
      let ye = this.experts[e]!.forward(xe);
      if (o.tokenDropout > 0) ye = this.training ? dropout(ye, o.tokenDropout, true, this._generator) : ye.mul(1 - o.tokenDropout);
      if (r.gates) ye = ye.mul(r.gates.indexSelect(0, Tensor.from(Int32Array.from(slot), { dtype: 'int32' })).unsqueeze(1));
      rows.push(ye);
      for (let a = 0; a < tok.length; a++) inv[slot[a]! % k]![tok[a]!] = offset + a;
      offset += tok.length;
    }
    for (let i = 0; i < N * k; i++) {
      if (r.choice[i]! >= 0) st.slots++;
      if (r.kept[i]) st.kept++;
    }
    if (o.dropped === 'scaled_input') {
      const drop: number[] = [];
      for (let t = 0; t < N; t++) {
        let any = false;
        for (let j = 0; j < k; j++) any ||= r.kept[t * k + j] === 1;
        if (!any && r.choice[t * k]! >= 0) drop.push(t);
      }
      if (drop.length) {
        let yd = flat.indexSelect(0, Tensor.from(Int32Array.from(drop), { dtype: 'int32' }));
        if (r.gates) yd = yd.mul(r.gates.indexSelect(0, Tensor.from(Int32Array.from(drop.map((t) => t * k)), { dtype: 'int32' })).unsqueeze(1));
        rows.push(yd);
        drop.forEach((t, a) => (inv[0]![t] = offset + a));
        offset += drop.length;
      }
    }
    rows.push(Tensor.zeros([1, D], { dtype: flat.dtype }));
    const Y = rows.length === 1 ? rows[0]! : cat(rows, 0);
    let out: Tensor | null = null;
    for (const iv of inv) {
      if (!iv.some((v) => v >= 0)) continue;
      const idx = iv.map((v) => (v < 0 ? offset : v));
      const part = Y.indexSelect(0, Tensor.from(idx, { dtype: 'int32' }));
      out = out ? out.add(part) : part;
    }
    if (!out) out = Tensor.zeros([N, D], { dtype: flat.dtype });
    return this.bias ? out.add(this.bias) : out;
  }

  /**
   * What the native kernel needs, or null when this call must take the TypeScript dispatch: no kernel, training,
   * a gradient to record, a non-float32 input, token dropout, 'scaled_input' drops, or an expert that is not a plain
   * MoEExpert of plain float32 Linears with a supported activation.
   */
  private nativeArgs(flat: Tensor, r: Routing): { addon: MoeAddon; act: number } | null {
    const o = this._opts;
    if (!this._native || this.training || flat.dtype !== 'float32' || flat.ndim !== 2 || o.tokenDropout !== 0 || o.dropped !== 'zero') return null;
    if (r.gates && r.gates.numel !== r.groups * r.tokens * r.k) return null;
    if (this.bias && (this.bias.dtype !== 'float32' || this.bias.numel !== flat.shape[1])) return null;
    const addon = moeAddon();
    if (!addon) return null;
    const D = flat.shape[1]!;
    const grad = isGradEnabled();
    if (grad && (flat.requiresGrad || (r.gates?.requiresGrad ?? false) || (this.bias?.requiresGrad ?? false))) return null;
    let act = -1;
    for (const e of this.experts) {
      if (Object.getPrototypeOf(e) !== MoEExpert.prototype || Object.prototype.hasOwnProperty.call(e, 'forward') || e.training) return null;
      const a = MOE_ACT_ID[e.activation];
      if (a === undefined || (act >= 0 && a !== act)) return null;
      act = a;
      const F = e.up.outFeatures;
      if (!plainLinear(e.up, F, D) || !plainLinear(e.down, D, F)) return null;
      if (grad && (e.up.weight.requiresGrad || e.down.weight.requiresGrad || (e.up.bias?.requiresGrad ?? false) || (e.down.bias?.requiresGrad ?? false))) return null;
    }
    return act < 0 ? null : { addon, act };
  }

  /** The native dispatch (moeFfn): the same output and statistics as the TypeScript one. */
  private dispatchNative(flat: Tensor, r: Routing, nat: { addon: MoeAddon; act: number }): Tensor {
    const [N, D] = flat.shape as [number, number];
    const k = r.k;
    const E = this.experts.length;
    const st = this._stats;
    st.tokens += N;
    for (let i = 0; i < N * k; i++) {
      const c = r.choice[i]!;
      if (c >= 0) st.slots++;
      if (r.kept[i]) {
        st.kept++;
        if (c >= 0 && c < E) st.load[c]!++;
      }
    }
    const weights: (Float32Array | null)[] = [];
    const widths = new Int32Array(E);
    for (let e = 0; e < E; e++) {
      const ex = this.experts[e]!;
      widths[e] = ex.up.outFeatures;
      weights.push(f32(ex.up.weight), ex.up.bias ? f32(ex.up.bias) : null, f32(ex.down.weight), ex.down.bias ? f32(ex.down.bias) : null);
    }
    const gates = r.gates ? f32(noGrad(() => r.gates!.detach())) : null;
    const out = new Float32Array(N * D);
    nat.addon.moeFfn(f32(flat), N, D, r.choice, r.kept, gates, k, weights, widths, nat.act, this.bias ? f32(this.bias) : null, out);
    return new Tensor(out, [N, D], 'float32');
  }
}
