/**
 * Neural-network ops: softmax/logSoftmax, layerNorm, rmsNorm, embedding, dropout, losses (crossEntropy with
 * ignoreIndex and label smoothing, mseLoss, klDiv, softCrossEntropy with temperature), topk, oneHot, cumsum.
 * The fused ones (softmax, norms, embedding, crossEntropy, dropout) have their own kernels and gradients; the rest are
 * composites whose gradients come from their parts.
 */
import { defineOp } from '../tensor/autograd.ts';
import type { Generator } from '../tensor/random.ts';
import { defaultGenerator } from '../tensor/random.ts';
import { fmtShape, normDim, numel, shapesEqual } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import type { FArray } from '../backend/backend.ts';
import { backendFor, floatArray, indexData, newFloat, requireFloat, requireInt, requireSameDtype } from './util.ts';

// ---------------------------------------------------------------- softmax

/** Move dim to the end, contiguous; returns [tensor, undo] where undo moves a same-shaped result back. */
function toLastDim(x: Tensor, d: number): [Tensor, (t: Tensor) => Tensor] {
  if (d === x.ndim - 1 || x.ndim === 0) return [x.contiguous(), (t) => t];
  return [x.transpose(d, -1).contiguous(), (t) => t.transpose(d, -1)];
}

function softmaxKernel(x: Tensor, dim: number, log: boolean): Tensor {
  const name = log ? 'logSoftmax' : 'softmax';
  requireFloat(name, x);
  const d = normDim(name, dim, x.ndim);
  const [c, undo] = toLastDim(x, d);
  const n = x.ndim === 0 ? 1 : c.shape[c.ndim - 1]!;
  const out = newFloat(c.shape, x.dtype);
  if (c.numel > 0) backendFor(x.dtype).softmax(c.floatData(name), c.numel / n, n, out.data as FArray, log);
  return undo(out);
}

function softmaxGrad(g: Tensor, out: Tensor, dim: number, log: boolean): Tensor {
  const d = normDim('softmax', dim, out.ndim);
  const [y, undo] = toLastDim(out, d);
  const [gc] = toLastDim(g.to(out.dtype), d);
  const n = out.ndim === 0 ? 1 : y.shape[y.ndim - 1]!;
  const dx = newFloat(y.shape, out.dtype);
  if (y.numel > 0) backendFor(out.dtype).softmaxBackward(y.floatData('softmax'), gc.floatData('softmax'), y.numel / n, n, dx.data as FArray, log);
  return undo(dx);
}

export const softmax = defineOp({
  name: 'softmax',
  forward: (x: Tensor, dim: number) => softmaxKernel(x, dim, false),
  backward: (g, { out, args: [, dim] }) => [softmaxGrad(g, out, dim, false)],
});

export const logSoftmax = defineOp({
  name: 'logSoftmax',
  forward: (x: Tensor, dim: number) => softmaxKernel(x, dim, true),
  backward: (g, { out, args: [, dim] }) => [softmaxGrad(g, out, dim, true)],
});

// ---------------------------------------------------------------- normalisation

function normRows(op: string, x: Tensor, n: number, normalizedShape: readonly number[]): number {
  const tail = x.shape.slice(x.ndim - normalizedShape.length);
  if (normalizedShape.length > x.ndim || !shapesEqual(tail, normalizedShape))
    throw new Error(`${op}: input shape ${fmtShape(x.shape)} does not end with normalized shape ${fmtShape(normalizedShape)}`);
  return n === 0 ? 0 : x.numel / n;
}

function checkParam(op: string, name: string, p: Tensor | null | undefined, shape: readonly number[], x: Tensor): void {
  if (!p) return;
  requireSameDtype(op, x, p);
  if (!shapesEqual(p.shape, shape)) throw new Error(`${op}: ${name} has shape ${fmtShape(p.shape)}, expected ${fmtShape(shape)}`);
}

interface NormSaved {
  mean: FArray;
  rstd: FArray;
  x: FArray;
}

/** torch.nn.functional.layer_norm over the trailing `normalizedShape` dims (biased variance). */
const layerNormOp = defineOp({
  name: 'layerNorm',
  inputs: ([x, , w, b]) => [x, ...(w ? [w] : []), ...(b ? [b] : [])],
  forward: (x: Tensor, normalizedShape: readonly number[], weight: Tensor | null, bias: Tensor | null, eps: number) => {
    requireFloat('layerNorm', x);
    const n = numel(normalizedShape);
    const rows = normRows('layerNorm', x, n, normalizedShape);
    checkParam('layerNorm', 'weight', weight, normalizedShape, x);
    checkParam('layerNorm', 'bias', bias, normalizedShape, x);
    const xd = x.floatData('layerNorm');
    const out = newFloat(x.shape, x.dtype);
    const mean = floatArray(x.dtype, rows);
    const rstd = floatArray(x.dtype, rows);
    if (rows > 0)
      backendFor(x.dtype).layerNorm(xd, weight ? weight.floatData('layerNorm') : null, bias ? bias.floatData('layerNorm') : null, rows, n, eps, out.data as FArray, mean, rstd);
    return { out, saved: { mean, rstd, x: xd } as NormSaved };
  },
  backward: (g, { inputs, args: [x, normalizedShape, weight, bias], saved }) => {
    const n = numel(normalizedShape);
    const rows = n === 0 ? 0 : x.numel / n;
    const dx = newFloat(x.shape, x.dtype);
    const dw = weight && weight.requiresGrad ? newFloat(weight.shape, x.dtype) : null;
    const db = bias && bias.requiresGrad ? newFloat(bias.shape, x.dtype) : null;
    if (rows > 0)
      backendFor(x.dtype).layerNormBackward(saved.x, weight ? weight.floatData('layerNorm') : null, saved.mean, saved.rstd, g.to(x.dtype).floatData('layerNorm'), rows, n, dx.data as FArray, dw ? (dw.data as FArray) : null, db ? (db.data as FArray) : null);
    const grads: (Tensor | null)[] = [x.requiresGrad ? dx : null];
    if (weight) grads.push(dw);
    if (bias) grads.push(db);
    void inputs;
    return grads;
  },
});

/** RMSNorm over the last dim (Llama): x · rsqrt(mean(x²) + eps) · weight. */
const rmsNormOp = defineOp({
  name: 'rmsNorm',
  inputs: ([x, w]) => [x, ...(w ? [w] : [])],
  forward: (x: Tensor, weight: Tensor | null, eps: number) => {
    requireFloat('rmsNorm', x);
    if (x.ndim === 0) throw new Error('rmsNorm: input must have at least 1 dimension');
    const n = x.shape[x.ndim - 1]!;
    checkParam('rmsNorm', 'weight', weight, [n], x);
    const rows = n === 0 ? 0 : x.numel / n;
    const xd = x.floatData('rmsNorm');
    const out = newFloat(x.shape, x.dtype);
    const rstd = floatArray(x.dtype, rows);
    if (rows > 0) backendFor(x.dtype).rmsNorm(xd, weight ? weight.floatData('rmsNorm') : null, rows, n, eps, out.data as FArray, rstd);
    return { out, saved: { rstd, x: xd, mean: rstd } as NormSaved };
  },
  backward: (g, { args: [x, weight], saved }) => {
    const n = x.shape[x.ndim - 1]!;
    const rows = n === 0 ? 0 : x.numel / n;
    const dx = newFloat(x.shape, x.dtype);
    const dw = weight && weight.requiresGrad ? newFloat(weight.shape, x.dtype) : null;
    if (rows > 0)
      backendFor(x.dtype).rmsNormBackward(saved.x, weight ? weight.floatData('rmsNorm') : null, saved.rstd, g.to(x.dtype).floatData('rmsNorm'), rows, n, dx.data as FArray, dw ? (dw.data as FArray) : null);
    return weight ? [x.requiresGrad ? dx : null, dw] : [dx];
  },
});

/** torch.nn.functional.layer_norm(x, normalizedShape, weight, bias, eps). */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return layerNormOp(x, normalizedShape, weight, bias, eps);
}

/** RMSNorm over the last dim (HF LlamaRMSNorm; eps default 1e-6). */
export function rmsNorm(x: Tensor, weight: Tensor | null = null, eps = 1e-6): Tensor {
  return rmsNormOp(x, weight, eps);
}

// ---------------------------------------------------------------- embedding

/**
 * Rows of weight [V, D] picked by integer input of any shape → [...input.shape, D] (torch F.embedding). Rows
 * looked up at `paddingIdx` get no gradient, as torch's padding_idx.
 */
export const embedding = defineOp({
  name: 'embedding',
  inputs: ([, weight]) => [weight],
  forward: (input: Tensor, weight: Tensor, paddingIdx?: number | null) => {
    requireFloat('embedding', weight, 'weight');
    if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-D [num_embeddings, dim], got ${fmtShape(weight.shape)}`);
    const [V, D] = weight.shape as [number, number];
    const idx = indexData('embedding', input, V, false);
    const out = newFloat([...input.shape, D], weight.dtype);
    if (idx.length > 0 && D > 0) backendFor(weight.dtype).embedding(weight.floatData('embedding'), idx, D, out.data as FArray);
    return { out, saved: idx };
  },
  backward: (g, { args: [, weight, paddingIdx], saved: idx }) => {
    const D = weight.shape[1]!;
    const dw = newFloat(weight.shape, weight.dtype);
    if (idx.length > 0 && D > 0) backendFor(weight.dtype).embeddingBackward(g.to(weight.dtype).floatData('embedding'), idx, D, dw.data as FArray);
    if (paddingIdx !== undefined && paddingIdx !== null && paddingIdx >= 0 && paddingIdx < weight.shape[0]!)
      dw.data.fill(0, paddingIdx * D, (paddingIdx + 1) * D);
    return [dw];
  },
});

// ---------------------------------------------------------------- dropout

/** Fused mask-and-scale pass; `state` (the generator's 4 words) is advanced in place. */
function dropoutKernel(x: Tensor, state: Int32Array, threshold: number, scale: number): Tensor {
  const out = newFloat(x.shape, x.dtype);
  if (out.numel > 0) backendFor(x.dtype).dropout(x.floatData('dropout'), out.data as FArray, state, threshold, scale);
  return out;
}

// The backward pass replays the forward's draws from the saved generator state (no mask tensor is kept).
const dropoutOp = defineOp({
  name: 'dropout',
  inputs: ([x]) => [x],
  forward: (x: Tensor, state: Int32Array, threshold: number, scale: number) => {
    const start = state.slice();
    return { out: dropoutKernel(x, state, threshold, scale), saved: start };
  },
  backward: (g, { inputs: [x], args: [, , threshold, scale], saved }) => [dropoutKernel(g.to(x!.dtype), saved.slice(), threshold, scale)],
});

/**
 * Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p); identity when !training.
 * One uniform 32-bit draw per element from `generator` (keep when ≥ p·2³²), drawn and applied in one fused pass.
 */
export function dropout(x: Tensor, p = 0.5, training = true, generator: Generator = defaultGenerator): Tensor {
  generator ??= defaultGenerator;
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: probability must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  requireFloat('dropout', x);
  if (p === 1) return x.mul(0);
  const scale = 1 / (1 - p);
  const threshold = Math.round(p * 4294967296); // keep when a uniform 32-bit draw ≥ p·2³² (one draw per element)
  const gs = generator.getState();
  const state = Int32Array.from(gs.slice(0, 4));
  const out = dropoutOp(x, state, threshold, scale);
  gs[0] = state[0]! >>> 0;
  gs[1] = state[1]! >>> 0;
  gs[2] = state[2]! >>> 0;
  gs[3] = state[3]! >>> 0;
  generator.setState(gs);
  return out;
}

// ---------------------------------------------------------------- losses

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** Target value whose rows are skipped (torch default -100). */
  ignoreIndex?: number;
  /** ε: mix the one-hot target with the uniform distribution (torch label_smoothing). */
  labelSmoothing?: number;
  /** 'mean' averages over non-ignored targets (torch). */
  reduction?: Reduction;
}

interface CeSaved {
  logits: FArray;
  target: Int32Array;
  lse: FArray;
  rows: number;
  V: number;
  count: number;
  undo: (t: Tensor) => Tensor;
  shape2: number[];
}

const crossEntropyHard = defineOp({
  name: 'crossEntropy',
  inputs: ([input]) => [input],
  forward: (input: Tensor, target: Tensor, ignoreIndex: number, eps: number, reduction: Reduction) => {
    // Class dim is 1 for rank ≥ 2 (torch); move it last and flatten to rows × V.
    let x2: Tensor;
    let undo: (t: Tensor) => Tensor;
    let targetShape: readonly number[];
    if (input.ndim === 1) {
      x2 = input.reshape([1, -1]);
      undo = (t) => t.reshape(input.shape);
      targetShape = [];
    } else {
      const moved = input.ndim === 2 ? input : input.movedim(1, -1);
      const shapeMoved = moved.shape;
      x2 = moved.reshape([-1, input.shape[1]!]).contiguous();
      undo = input.ndim === 2 ? (t) => t : (t) => t.reshape(shapeMoved).movedim(-1, 1);
      targetShape = [input.shape[0]!, ...input.shape.slice(2)];
    }
    if (!shapesEqual(target.shape, targetShape))
      throw new Error(`crossEntropy: target shape ${fmtShape(target.shape)} does not match input ${fmtShape(input.shape)} (expected ${fmtShape(targetShape)})`);
    const [rows, V] = x2.shape as [number, number];
    const tgt = indexData('crossEntropy', target, V, false, ignoreIndex);
    const loss = floatArray(input.dtype, rows);
    const lse = floatArray(input.dtype, rows);
    const logits = x2.floatData('crossEntropy');
    if (rows > 0) backendFor(input.dtype).crossEntropy(logits, tgt, rows, V, ignoreIndex, eps, loss, lse);
    let count = 0;
    for (let i = 0; i < rows; i++) if (tgt[i] !== ignoreIndex) count++;
    let out: Tensor;
    if (reduction === 'none') out = new Tensor(loss, [...targetShape], input.dtype);
    else {
      let s = 0;
      for (let i = 0; i < rows; i++) s += loss[i]!;
      out = Tensor.full([], reduction === 'sum' ? s : s / count, { dtype: input.dtype });
    }
    return { out, saved: { logits, target: tgt, lse, rows, V, count, undo, shape2: [rows, V] } as CeSaved };
  },
  backward: (g, { args: [input, , ignoreIndex, eps, reduction], saved }) => {
    const { rows, V } = saved;
    const gRow = floatArray(input.dtype, rows);
    if (reduction === 'none') gRow.set(g.to(input.dtype).floatData('crossEntropy'));
    else gRow.fill(reduction === 'sum' ? g.item() : g.item() / saved.count);
    const dx = newFloat(saved.shape2, input.dtype);
    if (rows > 0) backendFor(input.dtype).crossEntropyBackward(saved.logits, saved.target, saved.lse, gRow, rows, V, ignoreIndex, eps, dx.data as FArray);
    return [saved.undo(dx).reshape(input.shape)];
  },
});

/**
 * torch.nn.functional.cross_entropy: input [N, C] (or [C], or [N, C, d1, …]) of logits; target int class ids
 * ([N] / [] / [N, d1, …]) or float class probabilities of the input's shape.
 */
export function crossEntropy(input: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  requireFloat('crossEntropy', input);
  const { ignoreIndex = -100, labelSmoothing = 0, reduction = 'mean' } = opts;
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) throw new Error(`crossEntropy: labelSmoothing must be in [0, 1], got ${labelSmoothing}`);
  checkReduction('crossEntropy', reduction);
  if (input.ndim === 0) throw new Error('crossEntropy: input must have at least 1 dimension (classes)');
  if (target.dtype === 'float32' || target.dtype === 'float64') {
    if (!shapesEqual(target.shape, input.shape))
      throw new Error(`crossEntropy: probability target shape ${fmtShape(target.shape)} must equal input shape ${fmtShape(input.shape)}`);
    const cdim = input.ndim === 1 ? 0 : 1;
    const C = input.shape[cdim]!;
    const t = labelSmoothing > 0 ? target.mul(1 - labelSmoothing).add(labelSmoothing / C) : target;
    const per = t.mul(input.logSoftmax(cdim)).sum(cdim).neg();
    return reduce(per, reduction, per.numel);
  }
  requireInt('crossEntropy', target, 'target');
  return crossEntropyHard(input, target, ignoreIndex, labelSmoothing, reduction);
}

function checkReduction(op: string, r: string, extra: string[] = []): void {
  if (!['mean', 'sum', 'none', ...extra].includes(r)) throw new Error(`${op}: reduction must be one of ${['mean', 'sum', 'none', ...extra].join(', ')}, got '${r}'`);
}

function reduce(t: Tensor, reduction: string, meanCount: number): Tensor {
  if (reduction === 'none') return t;
  const s = t.sum();
  return reduction === 'sum' ? s : s.div(meanCount);
}

/** Mean squared error (torch F.mse_loss). */
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  checkReduction('mseLoss', reduction);
  if (!shapesEqual(input.shape, target.shape)) throw new Error(`mseLoss: input ${fmtShape(input.shape)} and target ${fmtShape(target.shape)} must have the same shape`);
  return reduce(input.sub(target).square(), reduction, input.numel);
}

/**
 * KL divergence as torch F.kl_div: input holds log-probabilities, target probabilities (or log-probabilities
 * with logTarget). Pointwise target·(log target − input), with 0·log 0 = 0. 'batchmean' divides the sum by the
 * batch size (the mathematically correct KL); 'mean' averages over all elements (torch's default).
 */
export function klDiv(input: Tensor, target: Tensor, opts: { reduction?: Reduction | 'batchmean'; logTarget?: boolean } = {}): Tensor {
  const { reduction = 'mean', logTarget = false } = opts;
  checkReduction('klDiv', reduction, ['batchmean']);
  if (!shapesEqual(input.shape, target.shape)) throw new Error(`klDiv: input ${fmtShape(input.shape)} and target ${fmtShape(target.shape)} must have the same shape`);
  let pointwise: Tensor;
  if (logTarget) pointwise = target.exp().mul(target.sub(input));
  else {
    const safeLog = target.maskedFill(target.le(0), 1).log(); // xlogy: 0·log 0 = 0
    pointwise = target.mul(safeLog.sub(input));
  }
  if (reduction === 'batchmean') return pointwise.sum().div(input.ndim === 0 ? 1 : input.shape[0]!);
  return reduce(pointwise, reduction, input.numel);
}

/**
 * Cross-entropy between the softened distributions of a student and a teacher (knowledge distillation):
 * −Σ softmax(t/T) · logSoftmax(s/T) over the last dim. 'batchmean' averages over rows; 'mean' over all elements
 * (TinyBERT's soft_cross_entropy); the teacher side is not differentiated.
 */
export function softCrossEntropy(studentLogits: Tensor, teacherLogits: Tensor, opts: { temperature?: number; reduction?: Reduction | 'batchmean' } = {}): Tensor {
  const { temperature = 1, reduction = 'batchmean' } = opts;
  if (!(temperature > 0)) throw new Error(`softCrossEntropy: temperature must be positive, got ${temperature}`);
  checkReduction('softCrossEntropy', reduction, ['batchmean']);
  if (!shapesEqual(studentLogits.shape, teacherLogits.shape))
    throw new Error(`softCrossEntropy: student ${fmtShape(studentLogits.shape)} and teacher ${fmtShape(teacherLogits.shape)} logits must have the same shape`);
  const p = teacherLogits.detach().div(temperature).softmax(-1);
  const elem = p.mul(studentLogits.div(temperature).logSoftmax(-1)).neg();
  if (reduction === 'none') return elem.sum(-1);
  if (reduction === 'batchmean') return elem.sum().div(studentLogits.numel / Math.max(1, studentLogits.shape[studentLogits.ndim - 1]!));
  return reduce(elem, reduction, elem.numel);
}

// ---------------------------------------------------------------- topk, oneHot, cumsum

/** k largest (or smallest) values along dim with their int32 indices; sorted descending (ascending) by default. */
export function topk(x: Tensor, k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
  requireFloat('topk', x);
  const d = normDim('topk', dim, x.ndim);
  const size = x.ndim === 0 ? 1 : x.shape[d]!;
  if (!Number.isInteger(k) || k < 0 || k > size) throw new Error(`topk: k = ${k} is out of range for dimension ${dim} with size ${size}`);
  const [c] = toLastDim(x, d);
  const data = c.floatData('topk');
  const rows = size === 0 ? 0 : c.numel / size;
  const idx = new Int32Array(rows * k);
  const order = new Array<number>(size);
  for (let r = 0; r < rows; r++) {
    const base = r * size;
    for (let i = 0; i < size; i++) order[i] = i;
    // NaN counts as largest, like torch; ties keep the lower index first (stable sort)
    const key = (i: number) => {
      const v = data[base + i]!;
      return v !== v ? Infinity : v;
    };
    order.sort((a, b) => (largest ? key(b) - key(a) : key(a) - key(b)) || a - b);
    const pick = order.slice(0, k);
    if (!sorted) pick.sort((a, b) => a - b);
    for (let i = 0; i < k; i++) idx[r * k + i] = pick[i]!;
  }
  const idxShape = [...c.shape.slice(0, -1), k];
  let indices = new Tensor(idx, x.ndim === 0 ? [] : idxShape, 'int32');
  if (x.ndim > 0 && d !== x.ndim - 1) indices = indices.transpose(d, -1).contiguous();
  return { values: x.ndim === 0 ? x.reshape([]) : x.gather(d, indices), indices };
}

/** One-hot float32 encoding of int class ids: [...shape] → [...shape, numClasses] (numClasses −1: max + 1). */
export function oneHot(index: Tensor, numClasses = -1): Tensor {
  requireInt('oneHot', index);
  const c = index.contiguous();
  const src = c.data.subarray(c.offset, c.offset + c.numel);
  let C = numClasses;
  if (C === -1) {
    C = 0;
    for (let i = 0; i < src.length; i++) C = Math.max(C, src[i]! + 1);
  }
  const idx = indexData('oneHot', index, C, false);
  const out = new Float32Array(idx.length * C);
  for (let i = 0; i < idx.length; i++) out[i * C + idx[i]!] = 1;
  return new Tensor(out, [...index.shape, C], 'float32');
}

function cumsumRaw(x: Tensor, d: number, reverse: boolean): Tensor {
  const c = x.contiguous();
  const src = c.floatData('cumsum');
  const n = x.ndim === 0 ? 1 : x.shape[d]!;
  const inner = numel(x.shape.slice(d + 1));
  const outer = n === 0 ? 0 : x.numel / (n * inner);
  const out = newFloat(x.shape, x.dtype);
  const o = out.data as FArray;
  for (let a = 0; a < outer; a++)
    for (let i = 0; i < inner; i++) {
      let acc = 0;
      for (let j0 = 0; j0 < n; j0++) {
        const j = reverse ? n - 1 - j0 : j0;
        const p = (a * n + j) * inner + i;
        acc += src[p]!;
        o[p] = acc;
      }
    }
  return out;
}

/** Running sum along dim (accumulated in float64 on every backend). */
export const cumsum = defineOp({
  name: 'cumsum',
  forward: (x: Tensor, dim: number) => {
    requireFloat('cumsum', x);
    return cumsumRaw(x, normDim('cumsum', dim, x.ndim), false);
  },
  backward: (g, { inputs: [x], args: [, dim] }) => [cumsumRaw(g, normDim('cumsum', dim, x!.ndim), true)],
});
