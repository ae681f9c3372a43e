/**
 * `fff.ultrafast` with `init: 'distill'`: fit each new tree to the dense MLP it replaces before training.
 *
 * 1. {@link captureMlpIO}: one pass of the calibration data through the unchanged model (eval mode, no gradients)
 *    records, per chosen block, the replaced module's input rows X [tokens, H] and output rows Y [tokens, H]
 *    (padding positions left out): for BERT the input of `intermediate.dense` and the output of `output.dense`
 *    (before the block's dropout, residual and LayerNorm, which the replacement keeps), for GPT-2 / Llama the MLP
 *    module's input and output (`c_fc` / `up_proj` input, `c_proj` / `down_proj` output).
 * 2. {@link distillTree}, per block: each tree node starts as a dense neuron ({@link initFromDense}: its
 *    up-projection row and bias, its down-projection column), linear_out is refitted by ridge least squares on the
 *    tree's activations ({@link refitOut}), then Adam fits MSE(tree(X), Y) through the training (masked dense)
 *    form, and linear_out is refitted once more.
 *
 * The tree has no output bias, so the dense MLP's mean output (its down-projection bias and more: 11–31 % of ‖Y‖²
 * in the six blocks of data/models/bert-minilm-sst2) has to come from the nodes' activations.
 */
import type { Module } from '../../nn/module.ts';
import type { LinearLike } from '../../nn/layers.ts';
import { AdamW } from '../../nn/optim.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { enableGrad, noGrad } from '../../tensor/autograd.ts';
import { Generator } from '../../tensor/random.ts';
import { activation } from '../../models/activations.ts';
import { anatomy, type MlpAnatomy } from '../../models/anatomy.ts';
import type { ModelInputs, ModelOutput } from '../../models/outputs.ts';
import type { RecipeContext } from '../method.ts';
import { calibrationOf } from '../prune/importance.ts';
import { captureTokenRows } from '../capture.ts';
import { fffDescend, geluRef } from './cmm.ts';
import type { FFFLayer } from './layer.ts';

/** Input and output rows of one replaced MLP on the calibration tokens, float32 [n, H] each. */
export interface MlpIO {
  x: Tensor;
  y: Tensor;
}

/** The modules whose input and output are the MLP slot's: up/down of a dense or gated MLP, the slot itself otherwise. */
function ends(m: MlpAnatomy): { input: string; output: string } {
  return m.kind !== 'custom' && m.up && m.down ? { input: m.up, output: m.down } : { input: m.path, output: m.path };
}

/**
 * Input and output rows of block `blocks[i]`'s MLP on the calibration data (one forward pass per batch, eval mode,
 * no gradients; padding positions left out when the batches carry an attention mask).
 */
export function captureMlpIO(model: Module, blocks: number[], ctx: RecipeContext, who = 'fff.ultrafast'): MlpIO[] {
  const a = anatomy(model);
  const e = blocks.map((i) => ends(a.blocks[i]!.mlp!));
  const rows = captureTokenRows(model, calibrationOf(who, ctx), e.map((x) => x.input), e.map((x) => x.output), who);
  return e.map((x) => ({ x: rows.inputs.get(x.input)!, y: rows.outputs.get(x.output)! }));
}

/** ‖tree(x) − y‖² / ‖y‖² through the training (masked) form, no gradients. */
export function relMse(layer: FFFLayer, x: Tensor, y: Tensor): number {
  return noGrad(() => {
    const d = layer.forwardMasked(x).sub(y);
    return d.square().sum().item() / Math.max(y.square().sum().item(), 1e-30);
  });
}

/** Dense weights of an MLP as float32 [out, in] tensors: the neuron rows (gate rows for a gated MLP) and down columns. */
export interface DenseMlp {
  /** [f, H]: what decides whether a neuron fires (up, or gate for a gated MLP). */
  w_in: Tensor;
  b_in: Tensor | null;
  /** [H, f]. */
  w_out: Tensor;
  /** act(x·w_inᵀ + b_in) ⊙ (gated: x·upᵀ + b_up): the neurons' activations on x [n, H] → [n, f]. */
  act(x: Tensor): Tensor;
}

/** The dense weights of an MLP slot, or null for a replaced ('custom') MLP. */
export function denseMlp(model: Module, m: MlpAnatomy): DenseMlp | null {
  if (m.kind === 'custom' || !m.up || !m.down || !m.activation) return null;
  const lin = (p: string) => model.getSubmodule(p) as unknown as LinearLike;
  const up = lin(m.up);
  const down = lin(m.down);
  const gate = m.kind === 'gated' && m.gate ? lin(m.gate) : null;
  // a layer an earlier step replaced without the [out, in] weight view: no dense init (random init, then the fit)
  if (![up, down, gate].every((l) => l === null || typeof l.weightOutIn === 'function')) return null;
  const act = activation(m.activation, 'fff.ultrafast');
  const src = gate ?? up;
  return noGrad(() => ({
    w_in: src.weightOutIn().contiguous().to('float32'),
    b_in: src.bias ? src.bias.to('float32') : null,
    w_out: down.weightOutIn().contiguous().to('float32'),
    act: (x: Tensor) => noGrad(() => (gate ? act(gate.forward(x)).mul(up.forward(x)) : act(up.forward(x)))),
  }));
}

/** A seeded permutation of 0..n−1 (Fisher–Yates). */
function permutation(n: number, g: Generator): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = g.randint(0, i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

const rowsOf = (t: Tensor, idx: ArrayLike<number>) => t.indexSelect(0, Tensor.from(Int32Array.from(idx), { dtype: 'int32' }));

/**
 * Start every node of `layer` as a dense neuron: the neurons ranked by importance (mean |activation| on x times the
 * norm of their down-projection column) fill the nodes in heap order, node-major across the P trees (the roots
 * get the P most important neurons, then the P·2 second-level nodes, …; neurons repeat when the trees have more
 * nodes than the MLP has neurons). linear_in takes the neuron's row and bias (gate row for a gated MLP), linear_out
 * its down-projection column.
 */
export function initFromDense(layer: FFFLayer, dense: DenseMlp, x: Tensor): void {
  const f = dense.w_in.shape[0]!;
  const P = layer.parallelSize;
  const N = layer.nNodes;
  const score = noGrad(() => dense.act(x).abs().mean(0).mul(dense.w_out.square().sum(0).sqrt())).toArray();
  const order = Array.from({ length: f }, (_, i) => i).sort((a, b) => score[b]! - score[a]! || a - b);
  const pick = new Int32Array(P * N);
  for (let p = 0; p < P; p++) for (let j = 0; j < N; j++) pick[p * N + j] = order[(j * P + p) % f]!;
  const idx = Tensor.from(pick, { dtype: 'int32' });
  noGrad(() => {
    layer.linear_in.weight.copy_(dense.w_in.indexSelect(0, idx));
    layer.linear_in.bias?.copy_(dense.b_in ? dense.b_in.indexSelect(0, idx) : Tensor.zeros([P * N]));
    layer.linear_out.weight.copy_(dense.w_out.indexSelect(1, idx));
  });
  layer.invalidateCache();
}

/**
 * Refit linear_out for the current linear_in: the ridge least squares
 *   min_W ‖A·W − y‖² + λ‖W − W₀‖²,   A [n, P·N] the masked node activations (D + 1 nonzeros per tree and row),
 * W₀ the current linear_outᵀ (nodes no token reaches keep their column), λ = `ridge` × the mean diagonal of AᵀA.
 * Solved by Jacobi-preconditioned conjugate gradients on the normal equations, one system per output column, with
 * the products through the sparse A (so depth 11 costs no dense 4,095² factorisation), from W₀, for at most `iters`
 * rounds or until every column's residual is below `tol` of its right-hand side.
 */
export function refitOut(layer: FFFLayer, x: Tensor, y: Tensor, o: { ridge?: number; iters?: number; tol?: number } = {}): void {
  const ridge = o.ridge ?? 1e-3;
  const iters = o.iters ?? 100;
  const tol = o.tol ?? 1e-3;
  const M = x.shape[0]!;
  const P = layer.parallelSize;
  const N = layer.nNodes;
  const D1 = layer.depth + 1;
  const PN = P * N;
  const O = layer.outputWidth;
  const logits = noGrad(() => layer.linear_in.forward(x).to('float32')).toArray() as Float32Array; // (M, P·N)
  const nodes = fffDescend(logits, M, P, layer.depth, true); // (M, P, D + 1), heap index within the tree
  const nnz = P * D1;
  const col = new Int32Array(M * nnz);
  const val = new Float64Array(M * nnz);
  const diag = new Float64Array(PN);
  for (let m = 0; m < M; m++)
    for (let p = 0; p < P; p++)
      for (let d = 0; d < D1; d++) {
        const k = m * nnz + p * D1 + d;
        const c = p * N + nodes[k]!;
        const v = geluRef(logits[m * PN + c]!);
        col[k] = c;
        val[k] = v;
        diag[c] += v * v;
      }
  let trace = 0;
  for (let c = 0; c < PN; c++) trace += diag[c]!;
  if (!(trace > 0)) return;
  const lam = (ridge * trace) / PN;
  const yv = y.to('float32').contiguous().toArray() as Float32Array; // (M, O)
  const w2 = layer.linear_out.weight.to('float32').contiguous().toArray() as Float32Array; // [O, P·N]
  const W = new Float64Array(PN * O); // Wᵀ layout: [P·N, O]
  for (let c = 0; c < PN; c++) for (let j = 0; j < O; j++) W[c * O + j] = w2[j * PN + c]!;
  // (AᵀA + λI)·V for V [P·N, O], through A: t = A·V [M, O], then Aᵀt + λV
  const t = new Float64Array(M * O);
  const apply = (V: Float64Array, out: Float64Array) => {
    t.fill(0);
    for (let m = 0; m < M; m++)
      for (let q = 0; q < nnz; q++) {
        const a = val[m * nnz + q]!;
        if (a === 0) continue;
        const vo = col[m * nnz + q]! * O;
        const to = m * O;
        for (let j = 0; j < O; j++) t[to + j] += a * V[vo + j]!;
      }
    for (let i = 0; i < V.length; i++) out[i] = lam * V[i]!;
    for (let m = 0; m < M; m++)
      for (let q = 0; q < nnz; q++) {
        const a = val[m * nnz + q]!;
        if (a === 0) continue;
        const oo = col[m * nnz + q]! * O;
        const to = m * O;
        for (let j = 0; j < O; j++) out[oo + j] += a * t[to + j]!;
      }
  };
  // b = Aᵀy + λW₀
  const b = new Float64Array(PN * O);
  for (let i = 0; i < b.length; i++) b[i] = lam * W[i]!;
  for (let m = 0; m < M; m++)
    for (let q = 0; q < nnz; q++) {
      const a = val[m * nnz + q]!;
      const oo = col[m * nnz + q]! * O;
      for (let j = 0; j < O; j++) b[oo + j] += a * yv[m * O + j]!;
    }
  const r = new Float64Array(PN * O);
  apply(W, r);
  for (let i = 0; i < r.length; i++) r[i] = b[i]! - r[i]!;
  const inv = diag.map((v) => 1 / (v + lam));
  const z = new Float64Array(PN * O);
  const dir = new Float64Array(PN * O);
  const q = new Float64Array(PN * O);
  const colDot = (u: Float64Array, v: Float64Array, out: Float64Array) => {
    out.fill(0);
    for (let c = 0; c < PN; c++) for (let j = 0; j < O; j++) out[j] += u[c * O + j]! * v[c * O + j]!;
  };
  const bn = new Float64Array(O);
  colDot(b, b, bn);
  for (let i = 0; i < z.length; i++) z[i] = inv[Math.floor(i / O)]! * r[i]!;
  dir.set(z);
  const rz = new Float64Array(O);
  const rz2 = new Float64Array(O);
  const pq = new Float64Array(O);
  const rr = new Float64Array(O);
  colDot(r, z, rz);
  for (let it = 0; it < iters; it++) {
    colDot(r, r, rr);
    let worst = 0;
    for (let j = 0; j < O; j++) worst = Math.max(worst, Math.sqrt(rr[j]! / (bn[j]! || 1)));
    if (worst < tol) break;
    apply(dir, q);
    colDot(dir, q, pq);
    for (let c = 0; c < PN; c++)
      for (let j = 0; j < O; j++) {
        const alpha = pq[j]! > 0 ? rz[j]! / pq[j]! : 0;
        W[c * O + j] += alpha * dir[c * O + j]!;
        r[c * O + j] -= alpha * q[c * O + j]!;
        z[c * O + j] = inv[c]! * r[c * O + j]!;
      }
    colDot(r, z, rz2);
    for (let c = 0; c < PN; c++)
      for (let j = 0; j < O; j++) {
        const beta = rz[j]! > 0 ? rz2[j]! / rz[j]! : 0;
        dir[c * O + j] = z[c * O + j]! + beta * dir[c * O + j]!;
      }
    rz.set(rz2);
  }
  const out = new Float32Array(O * PN);
  for (let c = 0; c < PN; c++) for (let j = 0; j < O; j++) out[j * PN + c] = W[c * O + j]!;
  noGrad(() => layer.linear_out.weight.copy_(Tensor.from(out, { shape: [O, PN] }).to(layer.linear_out.weight.dtype)));
  layer.invalidateCache();
}

export interface DistillOptions {
  /** Adam steps (minibatches) on MSE(tree(x), y) after the initialisation; 0: initialisation and refit only. */
  steps: number;
  /** Rows per minibatch (drawn with replacement from the fitting rows). */
  batch: number;
  lr: number;
  seed: number;
}

export interface DistillResult {
  /** Calibration rows used for fitting, and held out for the numbers below. */
  fitRows: number;
  heldOutRows: number;
  /** Held-out ‖tree(x) − y‖² / ‖y‖²: upstream's random init, after the dense init + refit, after fitting. */
  relMseRandom: number;
  relMseInit: number;
  relMse: number;
}

/**
 * Fit `layer` (freshly built, upstream random init) to the MLP whose input and output rows are `io`: 1/8 of the
 * rows (seeded) are held out; the rest drive (1) {@link initFromDense} when the dense weights are known, (2)
 * {@link refitOut}, (3) `steps` Adam steps on the MSE through the training (masked) form, (4) {@link refitOut}
 * again, for the routing Adam left.
 *
 * Measured on data/models/bert-minilm-sst2 (depth 7; blocks 0 / 3 / 5; 512 calibration examples: 5,759 fitting and
 * 822 held-out tokens; 300 steps of 256 rows at lr 1e-3; held-out relative MSE, lower is better):
 * - upstream random init: 1.27 / 1.33 / 1.45 as built, 0.43 / 0.47 / 0.32 after the Adam steps;
 * - randomly chosen dense neurons, linear_out times the least-squares scalar: 0.98 / 0.99 / 1.00 → 0.31 / 0.36 / 0.16;
 * - importance-ranked neurons (kept), same scalar: 0.83 / 0.94 / 0.90 → 0.29 / 0.33 / 0.16;
 * - importance-ranked, least-squares linear_out: 0.37 / 0.44 / 0.24 → 0.27 / 0.34 / 0.15, and 0.25 / 0.31 / 0.14
 *   with the final refit (kept; this implementation, CG to 1e-3: 0.37 / 0.44 / 0.24 → 0.25 / 0.32 / 0.14);
 * - random neurons with the least-squares linear_out: 0.45 / 0.60 / 0.30 → 0.25 / 0.40 / 0.18;
 * - importance-ranked with each node's bias set to split the tokens reaching it in half (−median logit), least
 *   squares: 0.45 / 0.52 / 0.41 → 0.24 / 0.38 / 0.19 (no final refit);
 * - lr 3e-4 or 3e-3 instead of 1e-3 (least-squares init, no final refit): 0.27 / 0.36 and 0.26 / 0.36 (blocks 0 / 3);
 *   1,000 steps instead of 300: 0.24 / 0.32.
 */
export function distillTree(layer: FFFLayer, io: MlpIO, dense: DenseMlp | null, o: DistillOptions): DistillResult {
  const n = io.x.shape[0]!;
  if (n < 2) throw new Error(`fff.ultrafast: init 'distill' needs at least 2 calibration tokens, got ${n}`);
  const g = new Generator(o.seed);
  const perm = permutation(n, g);
  const held = Math.max(1, Math.floor(n / 8));
  const xh = rowsOf(io.x, perm.slice(0, held));
  const yh = rowsOf(io.y, perm.slice(0, held));
  const fitIdx = perm.slice(held);
  const xf = rowsOf(io.x, fitIdx);
  const yf = rowsOf(io.y, fitIdx);
  const relMseRandom = relMse(layer, xh, yh);
  if (dense) initFromDense(layer, dense, xf);
  refitOut(layer, xf, yf);
  const relMseInit = relMse(layer, xh, yh);
  if (o.steps > 0) {
    const params = layer.parameters();
    for (const p of params) p.requiresGrad_();
    const opt = new AdamW([{ params }], { lr: o.lr, weightDecay: 0 });
    const m = xf.shape[0]!;
    const B = Math.min(o.batch, m);
    const pick = new Int32Array(B);
    for (let s = 0; s < o.steps; s++) {
      for (let i = 0; i < B; i++) pick[i] = B === m ? i : g.randint(0, m);
      const xb = rowsOf(xf, pick);
      const yb = rowsOf(yf, pick);
      opt.zeroGrad();
      enableGrad(() => layer.forwardMasked(xb).sub(yb).square().mean().backward());
      opt.step();
    }
    opt.zeroGrad();
    refitOut(layer, xf, yf);
  }
  layer.invalidateCache();
  return { fitRows: n - held, heldOutRows: held, relMseRandom, relMseInit, relMse: relMse(layer, xh, yh) };
}
