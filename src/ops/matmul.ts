/**
 * matmul with torch semantics: 1-D operands are promoted (and the added dim removed), batch dims broadcast.
 * Transposed views (x.transpose(-1, -2), weight.t()) and row-strided views (heads split out of a [B, T, H] tensor)
 * go to the GEMM without a copy: the kernel takes per-batch offsets, a leading dimension and a transpose flag.
 */
import { defineOp } from '../tensor/autograd.ts';
import { broadcastShapes, fmtShape, numel } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import { sumTo } from './reduce.ts';
import { backendFor, newFloat, requireFloat, requireSameDtype } from './util.ts';

interface MatLayout {
  t: Tensor;
  trans: boolean;
  ld: number;
}

/** How the last two dims (R×C) of t sit in memory: row-major with leading dim, or column-major (transposed). */
function layoutOf(t: Tensor): MatLayout {
  const n = t.ndim;
  const R = t.shape[n - 2]!;
  const C = t.shape[n - 1]!;
  const sR = t.strides[n - 2]!;
  const sC = t.strides[n - 1]!;
  if (sC === 1 || C === 1) return { t, trans: false, ld: R === 1 ? Math.max(C, 1) : sR };
  if (sR === 1 || R === 1) return { t, trans: true, ld: C === 1 ? Math.max(R, 1) : sC };
  const c = t.contiguous();
  return { t: c, trans: false, ld: Math.max(C, 1) };
}

/** Element offset of every batch matrix of t, broadcast to batchShape. */
function batchOffsets(t: Tensor, batchShape: readonly number[]): Int32Array {
  const nb = numel(batchShape);
  const out = new Int32Array(nb);
  const tb = t.ndim - 2;
  const lead = batchShape.length - tb;
  const st = batchShape.map((s, i) => (i < lead || t.shape[i - lead] === 1 ? 0 : t.strides[i - lead]!));
  const coord = new Array<number>(batchShape.length).fill(0);
  let off = t.offset;
  for (let i = 0; i < nb; i++) {
    out[i] = off;
    for (let d = batchShape.length - 1; d >= 0; d--) {
      coord[d]!++;
      off += st[d]!;
      if (coord[d]! < batchShape[d]!) break;
      off -= st[d]! * batchShape[d]!;
      coord[d] = 0;
    }
  }
  return out;
}

/**
 * C = A·B for tensors of rank ≥ 2 with broadcast batch dims; the output is contiguous. With `bias` (1-D, length N,
 * same dtype, contiguous data) the output rows start as the bias and the GEMM accumulates onto them (C = A·B + bias
 * in one pass over C).
 */
function gemm(a: Tensor, b: Tensor, bias?: Tensor): Tensor {
  const M = a.shape[a.ndim - 2]!;
  const K = a.shape[a.ndim - 1]!;
  const K2 = b.shape[b.ndim - 2]!;
  const N = b.shape[b.ndim - 1]!;
  if (K !== K2) throw new Error(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} cannot be multiplied (${K} != ${K2})`);
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = newFloat([...batchShape, M, N], a.dtype);
  if (out.numel === 0) return out;
  if (bias) {
    const bd = bias.floatData('linear');
    const od = out.data as Float32Array;
    for (let r = 0, rows = out.numel / N; r < rows; r++) od.set(bd, r * N);
    if (K === 0) return out;
  }
  const la = layoutOf(a);
  const lb = layoutOf(b);
  backendFor(a.dtype).matmul({
    a: la.t.data as Float32Array,
    b: lb.t.data as Float32Array,
    out: out.data as Float32Array,
    batch: numel(batchShape),
    M,
    N,
    K,
    aOffsets: batchOffsets(la.t, batchShape),
    bOffsets: batchOffsets(lb.t, batchShape),
    lda: la.ld,
    ldb: lb.ld,
    transA: la.trans,
    transB: lb.trans,
    accumulate: !!bias,
  });
  return out;
}

const matmulOp = defineOp({
  name: 'matmul',
  forward: (a: Tensor, b: Tensor) => gemm(a, b),
  backward: (g, { inputs: [a, b] }) => [
    a!.requiresGrad ? sumTo(gemm(g, b!.transpose(-1, -2)), a!.shape) : null, // dA = g·Bᵀ
    b!.requiresGrad ? sumTo(gemm(a!.transpose(-1, -2), g), b!.shape) : null, // dB = Aᵀ·g
  ],
});

export function matmul(a: Tensor, b: Tensor): Tensor {
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw new Error('matmul: expected two tensors');
  requireFloat('matmul', a);
  requireFloat('matmul', b);
  requireSameDtype('matmul', a, b);
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: both arguments need at least 1 dimension, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.ndim === 1 && b.ndim === 1) {
    if (a.shape[0] !== b.shape[0]) throw new Error(`matmul: vectors of length ${a.shape[0]} and ${b.shape[0]} cannot be multiplied`);
    return matmulOp(a.unsqueeze(0), b.unsqueeze(1)).reshape([]);
  }
  if (a.ndim === 1) return matmulOp(a.unsqueeze(0), b).squeeze(-2);
  if (b.ndim === 1) return matmulOp(a, b.unsqueeze(1)).squeeze(-1);
  return matmulOp(a, b);
}

/**
 * Fused y = x·Wᵀ + b for x [M, K], W [N, K], b [N] or null: the bias is the GEMM's starting value, and the gradients
 * are computed in the layouts they are stored in (dW = gᵀ·x is [N, K] directly, no transposed copy of it).
 */
const linearOp = defineOp({
  name: 'linear',
  inputs: ([x, w, b]) => (b ? [x, w, b] : [x, w]),
  forward: (x: Tensor, w: Tensor, b: Tensor | null) => gemm(x, w.t(), b ?? undefined),
  backward: (g, { args: [x, w, b] }) => {
    const grads: (Tensor | null)[] = [
      x.requiresGrad ? gemm(g, w) : null, // dX = g·W
      w.requiresGrad ? gemm(g.transpose(-1, -2), x) : null, // dW = gᵀ·x
    ];
    if (b) grads.push(b.requiresGrad ? sumTo(g, b.shape) : null);
    return grads;
  },
});

/** y = x·Wᵀ + b with W stored [out, in] (torch.nn.functional.linear). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${fmtShape(weight.shape)}`);
  if (x.shape[x.ndim - 1] !== weight.shape[1])
    throw new Error(`linear: input ${fmtShape(x.shape)} has ${x.shape[x.ndim - 1]} features, weight ${fmtShape(weight.shape)} expects ${weight.shape[1]}`);
  // Fold leading dims into M so one large GEMM runs instead of a batch of small ones.
  const x2 = x.ndim > 2 ? x.reshape([-1, x.shape[x.ndim - 1]!]) : x;
  if (x2.ndim === 2 && x2.dtype === weight.dtype && (!bias || (bias.ndim === 1 && bias.shape[0] === weight.shape[0] && bias.dtype === x2.dtype))) {
    requireFloat('linear', x2);
    const y = linearOp(x2, weight, bias ?? null);
    return x.ndim > 2 ? y.reshape([...x.shape.slice(0, -1), weight.shape[0]!]) : y;
  }
  let y = matmul(x2, weight.t());
  if (bias) y = y.add(bias);
  return x.ndim > 2 ? y.reshape([...x.shape.slice(0, -1), weight.shape[0]!]) : y;
}
