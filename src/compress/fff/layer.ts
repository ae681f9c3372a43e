/**
 * Fast feedforward layers: the MLP replaced by a balanced binary tree whose per-token path is all that runs at
 * inference.
 *
 * - {@link FFFLayer}: UltraFastBERT's FFF (Belcak & Wattenhofer 2023, "Exponentially Faster Language Modelling";
 *   pbelcak/UltraFastBERT@295c7b6 training/cramming/architectures/fff.py for training,
 *   benchmark_pytorch/fff/fff_bmm.py for inference). Every node is one GELU neuron: `linear_in` [P·N, K] with
 *   bias, `linear_out` [O, P·N] without. Training runs the dense masked form (all N logits, GELU, times the
 *   0/1 mask of the D + 1 visited nodes, then linear_out), so autograd goes through the visited nodes only;
 *   eval runs conditional matrix multiplication (cmm.ts, native/fff.cc) on the same numbers.
 * - {@link FFFLeafLayer}: the original FFF (Belcak & Wattenhofer 2023, "Fast Feedforward Networks";
 *   pbelcak/fastfeedforward v0.2.1 fastfeedforward/fff.py): 2^D leaves, each an MLP of width w, chosen by D
 *   sigmoid nodes; training mixes every leaf by the soft routing probabilities (and records a hardening loss,
 *   the mean Bernoulli entropy of the decisions, with addAuxLoss), eval takes the hard path (≥ 0 goes right).
 *
 * Shapes: M tokens (leading dims folded), K input width, O output width, P parallel trees, D depth, N = 2^(D+1) − 1
 * (FFFLayer) nodes per tree; FFFLeafLayer: 2^D − 1 nodes, L = 2^D leaves of width w.
 * Fixture: methods/fff (test/compress/fff.test.ts).
 */
import { Module } from '../../nn/module.ts';
import { Linear } from '../../nn/layers.ts';
import { uniform_ } from '../../nn/init.ts';
import { addAuxLoss } from '../../nn/hooks.ts';
import { Tensor, storageVersion } from '../../tensor/tensor.ts';
import { isGradEnabled, noGrad } from '../../tensor/autograd.ts';
import { defaultGenerator, type Generator } from '../../tensor/random.ts';
import { cat, linear, stack } from '../../ops/index.ts';
import { cmmForward, fffDescend, fffNodes, fffVisitedMask, transpose2d, type CmmPath, type CmmWeights } from './cmm.ts';

/** Contiguous float32 values of t without a copy when possible. */
function f32(t: Tensor): Float32Array {
  const c = t.contiguous();
  if (c.dtype === 'float32') return (c.data as Float32Array).subarray(c.offset, c.offset + c.numel);
  return c.toFloat32Array();
}

function checkInt(where: string, name: string, v: number, min: number, max = Infinity): void {
  if (!(Number.isInteger(v) && v >= min && v <= max)) throw new Error(`${where}: ${name} must be an integer in [${min}, ${max}], got ${v}`);
}

/**
 * UltraFastBERT's training form as a function of its tensors (autograd through existing ops): x (M, K), w1
 * [P·N, K], b1 [P·N] or null, w2 [O, P·N] → (M, O) = (GELU(x·w1ᵀ + b1) ⊙ visited-node mask)·w2ᵀ, going right iff
 * logit > 0. The mask is a constant (no gradient through the decisions, as upstream's no_grad descent).
 */
export function fffMasked(x2: Tensor, w1: Tensor, b1: Tensor | null, w2: Tensor, depth: number, P: number): Tensor {
  const M = x2.shape[0]!;
  const logits = linear(x2, w1, b1); // (M, P·N)
  const nodes = fffDescend(logits.toArray(), M, P, depth, true);
  let mask = new Tensor(fffVisitedMask(nodes, M, P, depth), [M, P * fffNodes(depth)], 'float32'); // (M, P·N)
  if (logits.dtype !== 'float32') mask = mask.to(logits.dtype);
  return linear(logits.gelu().mul(mask), w2, null); // (M, O)
}

export interface FFFLayerOptions {
  /** Parallel trees P (UltraFastBERT's parallel_size; their outputs add up). Default 1. */
  parallelSize?: number;
  generator?: Generator;
}

/**
 * UltraFastBERT's fast feedforward layer: (…, K) → (…, O). Checkpoint keys `linear_in.weight` [P·N, K],
 * `linear_in.bias` [P·N], `linear_out.weight` [O, P·N], as upstream.
 *
 * Forward: the masked dense form while training, or whenever gradients are needed (grad mode on and a parameter
 * or the input requires grad) or the input is float64; otherwise (eval mode without gradients) CMM, natively when
 * the native backend is active. Both go right iff logit > 0 (the training module's decision), so they agree up to
 * float summation order. `cmmPath` forces a native kernel path (tests, benches).
 *
 *   const fff = new FFFLayer(768, 768, 11).eval();
 *   const y = noGrad(() => fff.forward(x));   // x (B, T, 768): 12 of 4,095 neurons per token
 */
export class FFFLayer extends Module {
  linear_in: Linear;
  linear_out: Linear;
  readonly depth: number;
  readonly parallelSize: number;
  /** Native CMM path for eval forwards ('auto': the best the CPU allows). */
  cmmPath: CmmPath = 'auto';
  private w2tCache: { src: ArrayBufferView; offset: number; version: number; w2t: Float32Array } | null = null;

  constructor(inputWidth: number, outputWidth: number, depth: number, opts: FFFLayerOptions = {}) {
    super();
    const P = opts.parallelSize ?? 1;
    checkInt('FFFLayer', 'depth', depth, 0, 24);
    checkInt('FFFLayer', 'parallel size', P, 1);
    checkInt('FFFLayer', 'input width', inputWidth, 1);
    checkInt('FFFLayer', 'output width', outputWidth, 1);
    this.depth = depth;
    this.parallelSize = P;
    const n = P * fffNodes(depth);
    const g = opts.generator ?? defaultGenerator;
    // upstream init: linear_in weight and bias U(±1/√K), linear_out U(±1/√((D+1)·P))
    const k1 = Math.sqrt(1 / inputWidth);
    const k2 = Math.sqrt(1 / ((depth + 1) * P));
    const w1 = uniform_(Tensor.empty([n, inputWidth]), -k1, k1, g);
    const b1 = uniform_(Tensor.empty([n]), -k1, k1, g);
    const w2 = uniform_(Tensor.empty([outputWidth, n]), -k2, k2, g);
    this.linear_in = Linear.fromWeights(w1, b1);
    this.linear_out = Linear.fromWeights(w2, null);
  }

  get inputWidth(): number {
    return this.linear_in.inFeatures;
  }
  get outputWidth(): number {
    return this.linear_out.outFeatures;
  }
  /** Nodes per tree, 2^(D+1) − 1. */
  get nNodes(): number {
    return fffNodes(this.depth);
  }

  forward(x: Tensor): Tensor {
    const K = x.shape[x.ndim - 1];
    if (K !== this.inputWidth) throw new Error(`FFFLayer: input [${x.shape}] has ${K} features, expected ${this.inputWidth}`);
    const lead = x.shape.slice(0, -1);
    const x2 = x.reshape([-1, K]); // (M, K)
    const y = this.useCmm(x2) ? this.forwardCmm(x2) : this.forwardMasked(x2); // (M, O)
    return y.reshape([...lead, this.outputWidth]);
  }

  private useCmm(x2: Tensor): boolean {
    if (this.training || x2.dtype !== 'float32') return false;
    if (!isGradEnabled()) return true;
    return !(x2.requiresGrad || this.linear_in.weight.requiresGrad || this.linear_out.weight.requiresGrad || (this.linear_in.bias?.requiresGrad ?? false));
  }

  /** The visited nodes [M, P, D + 1] of x (M, K) (heap order within each tree), from the dense logits. */
  route(x2: Tensor): Int32Array {
    return noGrad(() => fffDescend(this.linear_in.forward(x2).toArray(), x2.shape[0]!, this.parallelSize, this.depth, true));
  }

  /**
   * The training form: all logits, GELU, times the visited-node mask, then linear_out (UltraFastBERT's training
   * module). Gradients reach the visited nodes' rows and columns only.
   */
  forwardMasked(x2: Tensor): Tensor {
    this.w2tCache = null; // a training step may follow: rebuild the transposed copy at the next eval forward
    return fffMasked(x2, this.linear_in.weight, this.linear_in.bias, this.linear_out.weight, this.depth, this.parallelSize);
  }

  /** The weights in the layouts the CMM kernel reads (linear_out transposed once, cached until it changes). */
  cmmWeights(): CmmWeights {
    const wt = this.linear_out.weight;
    const v = storageVersion(wt.data);
    let c = this.w2tCache;
    if (!c || c.src !== wt.data || c.version !== v || c.offset !== wt.offset || !wt.isContiguous())
      c = this.w2tCache = { src: wt.data, offset: wt.offset, version: v, w2t: transpose2d(f32(wt), this.outputWidth, this.parallelSize * this.nNodes) };
    return {
      K: this.inputWidth, O: this.outputWidth, depth: this.depth, P: this.parallelSize, strict: true,
      w1: f32(this.linear_in.weight), b1: this.linear_in.bias ? f32(this.linear_in.bias) : null, w2t: c.w2t,
    };
  }

  /** The inference form: conditional matrix multiplication (no gradients). */
  forwardCmm(x2: Tensor): Tensor {
    const M = x2.shape[0]!;
    const out = new Float32Array(M * this.outputWidth);
    cmmForward(this.cmmWeights(), f32(x2), M, out, { path: this.cmmPath });
    return new Tensor(out, [M, this.outputWidth], 'float32');
  }

  /** Drop the cached transposed linear_out (after editing its weight in place without a tensor op). */
  invalidateCache(): void {
    this.w2tCache = null;
  }
}

export type LeafActivation = 'relu' | 'gelu';

export interface FFFLeafLayerOptions {
  activation?: LeafActivation;
  /** Hard (rounded) decisions in training too (upstream train_hardened). */
  trainHardened?: boolean;
  /**
   * Add each leaf's output bias b2s in the eval (hard) forward. Default false, as upstream:
   * // upstream: fastfeedforward v0.2.1 eval_forward omits b2s (fixture fff, ff.y_eval pins it).
   */
  evalLeafBias?: boolean;
  generator?: Generator;
}

/**
 * The original fast feedforward network (fastfeedforward v0.2.1 `FFF`): (…, K) → (…, O). Keys as upstream:
 * `node_weights` [2^D − 1, K], `node_biases` [2^D − 1, 1], `w1s` [L, K, w], `b1s` [L, w], `w2s` [L, w, O],
 * `b2s` [L, O].
 *
 * Training (module in training mode): every leaf, mixed by the product of sigmoid(node logit) / 1 − sigmoid along
 * its path, b2s included; records the hardening loss `hardening` (mean over tokens and nodes of the decisions'
 * Bernoulli entropy, p clamped to [1e-6, 1 − 1e-6]) with addAuxLoss. Eval: the hard path (node score ≥ 0 goes
 * right) and that leaf's MLP only.
 */
export class FFFLeafLayer extends Module {
  node_weights: Tensor;
  node_biases: Tensor;
  w1s: Tensor;
  b1s: Tensor;
  w2s: Tensor;
  b2s: Tensor;
  readonly depth: number;
  readonly leafWidth: number;
  readonly activation: LeafActivation;
  trainHardened: boolean;
  evalLeafBias: boolean;

  constructor(inputWidth: number, leafWidth: number, outputWidth: number, depth: number, opts: FFFLeafLayerOptions = {}) {
    super();
    checkInt('FFFLeafLayer', 'depth', depth, 0, 24);
    checkInt('FFFLeafLayer', 'leaf width', leafWidth, 1);
    this.depth = depth;
    this.leafWidth = leafWidth;
    this.activation = opts.activation ?? 'relu';
    this.trainHardened = opts.trainHardened ?? false;
    this.evalLeafBias = opts.evalLeafBias ?? false;
    const g = opts.generator ?? defaultGenerator;
    const L = 2 ** depth;
    const k1 = 1 / Math.sqrt(inputWidth);
    const k2 = 1 / Math.sqrt(leafWidth);
    const u = (shape: number[], k: number) => uniform_(Tensor.empty(shape), -k, k, g).requiresGrad_();
    this.node_weights = u([L - 1, inputWidth], k1);
    this.node_biases = u([L - 1, 1], k1);
    this.w1s = u([L, inputWidth, leafWidth], k1);
    this.b1s = u([L, leafWidth], k1);
    this.w2s = u([L, leafWidth, outputWidth], k2);
    this.b2s = u([L, outputWidth], k2);
  }

  get nLeaves(): number {
    return 2 ** this.depth;
  }
  get inputWidth(): number {
    return this.w1s.shape[1]!;
  }
  get outputWidth(): number {
    return this.w2s.shape[2]!;
  }

  forward(x: Tensor): Tensor {
    const K = x.shape[x.ndim - 1];
    if (K !== this.inputWidth) throw new Error(`FFFLeafLayer: input [${x.shape}] has ${K} features, expected ${this.inputWidth}`);
    const lead = x.shape.slice(0, -1);
    const x2 = x.reshape([-1, K]);
    const y = this.training ? this.trainingForward(x2, { hard: this.trainHardened, hardeningLoss: true }) : this.evalForward(x2);
    return y.reshape([...lead, this.outputWidth]);
  }

  private act(t: Tensor): Tensor {
    return this.activation === 'relu' ? t.relu() : t.gelu();
  }

  /**
   * Upstream training_forward on x (M, K): the leaf mixture (soft, or rounded sigmoids with `hard`: 0.5 rounds to
   * 0, left, as torch.round) times every leaf's output, b2s included.
   */
  trainingForward(x2: Tensor, opts: { hard?: boolean; hardeningLoss?: boolean } = {}): Tensor {
    const M = x2.shape[0]!;
    const L = this.nLeaves;
    let mix: Tensor | null = null; // (M, 2^d)
    const entropies: Tensor[] = [];
    for (let d = 0; d < this.depth; d++) {
      const n = 2 ** d;
      const w = this.node_weights.narrow(0, n - 1, n); // (n, K)
      const b = this.node_biases.narrow(0, n - 1, n).reshape([n]);
      let s = linear(x2, w, b).sigmoid(); // (M, n)
      if (opts.hardeningLoss && !opts.hard) {
        const p = s.clamp(1e-6, 1 - 1e-6);
        const q = s.neg().add(1).clamp(1e-6, 1 - 1e-6);
        entropies.push(p.mul(p.log()).add(q.mul(q.log())).neg()); // (M, n)
      }
      if (opts.hard) {
        const v = s.toArray();
        const r = new Float32Array(v.length);
        for (let i = 0; i < v.length; i++) r[i] = v[i]! > 0.5 ? 1 : 0;
        s = new Tensor(r, [M, n], 'float32').to(x2.dtype);
      }
      const left = s.neg().add(1);
      const parts: Tensor[] = mix ? [mix.mul(left), mix.mul(s)] : [left, s];
      mix = stack(parts, -1).reshape([M, 2 * n]); // leaf block 2i ← node i left, 2i + 1 ← right
    }
    if (entropies.length && this.training && isGradEnabled()) addAuxLoss(this, 'hardening', entropies.length === 1 ? entropies[0]!.mean() : stack(entropies.map((e) => e.mean()), 0).mean());
    const K = this.inputWidth;
    const w = this.leafWidth;
    const h = this.act(x2.matmul(this.w1s.permute([1, 0, 2]).reshape([K, L * w])).reshape([M, L, w]).add(this.b1s)); // (M, L, w)
    const o = h.transpose(0, 1).matmul(this.w2s).add(this.b2s.reshape([L, 1, this.outputWidth])); // (L, M, O)
    const out = o.transpose(0, 1); // (M, L, O)
    return mix ? out.mul(mix.reshape([M, L, 1])).sum(1) : out.sum(1); // (M, O)
  }

  /** The hard path of each token: visited nodes [M, D] (heap order) and leaf [M] (score ≥ 0 goes right). */
  route(x2: Tensor): { nodes: Int32Array; leaves: Int32Array } {
    const M = x2.shape[0]!;
    const D = this.depth;
    const K = this.inputWidth;
    const x = x2.to('float64').toArray();
    const nw = this.node_weights.to('float64').toArray();
    const nb = this.node_biases.to('float64').toArray();
    const nodes = new Int32Array(M * D);
    const leaves = new Int32Array(M);
    for (let m = 0; m < M; m++) {
      let node = 0;
      for (let d = 0; d < D; d++) {
        nodes[m * D + d] = node;
        let s = 0;
        for (let k = 0; k < K; k++) s += x[m * K + k]! * nw[node * K + k]!;
        const score = Math.fround(Math.fround(s) + nb[node]!);
        node = 2 * node + 1 + (score >= 0 ? 1 : 0);
      }
      leaves[m] = node - (2 ** D - 1);
    }
    return { nodes, leaves };
  }

  /** Upstream eval_forward on x (M, K): each token through its leaf's MLP only (b2s only with evalLeafBias). */
  evalForward(x2: Tensor): Tensor {
    const M = x2.shape[0]!;
    const { leaves } = this.route(x2);
    const groups = new Map<number, number[]>();
    for (let m = 0; m < M; m++) {
      const g = groups.get(leaves[m]!) ?? [];
      g.push(m);
      groups.set(leaves[m]!, g);
    }
    const order: number[] = [];
    const outs: Tensor[] = [];
    for (const [leaf, rows] of [...groups].sort((a, b) => a[0] - b[0])) {
      const xs = x2.indexSelect(0, Tensor.from(Int32Array.from(rows))); // (m, K)
      const h = this.act(xs.matmul(this.w1s.select(0, leaf)).add(this.b1s.select(0, leaf))); // (m, w)
      let o = h.matmul(this.w2s.select(0, leaf)); // (m, O)
      if (this.evalLeafBias) o = o.add(this.b2s.select(0, leaf));
      outs.push(o);
      order.push(...rows);
    }
    if (M === 0) return Tensor.zeros([0, this.outputWidth], { dtype: x2.dtype });
    const inv = new Int32Array(M);
    order.forEach((m, i) => (inv[m] = i));
    const all = outs.length === 1 ? outs[0]! : cat(outs, 0); // (M, O) grouped by leaf
    return all.indexSelect(0, Tensor.from(inv)); // (M, O) in token order
  }
}
