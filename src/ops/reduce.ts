/**
 * Reductions over any set of dims with keepDim: sum, mean, amax/amin, max/min with indices, argmax/argmin,
 * var, logsumexp, norm; and sumTo (the adjoint of broadcasting, used by every broadcasting op's gradient).
 *
 * Kernel strategy: the backend reduces the middle axis of an (outer, r, inner) block. Dims that are adjacent
 * map straight onto that; other sets are permuted to the end first.
 */
import { defineOp } from '../tensor/autograd.ts';
import { fmtShape, normDim, numel } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import type { ReduceOp } from '../backend/backend.ts';
import { backendFor, newFloat, requireFloat } from './util.ts';

type DimArg = number | readonly number[] | null;

/** Sorted unique normalised dims (all dims when null). */
export function normDims(op: string, dim: DimArg, ndim: number): number[] {
  if (dim === null) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof dim === 'number' ? [dim] : [...dim];
  const out = [...new Set(list.map((d) => normDim(op, d, ndim)))].sort((a, b) => a - b);
  if (out.length !== list.length) throw new Error(`${op}: dimension list [${list}] repeats a dimension`);
  return out;
}

function keptShape(shape: readonly number[], dims: number[], keepDim: boolean): number[] {
  const out: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (dims.includes(d)) {
      if (keepDim) out.push(1);
    } else out.push(shape[d]!);
  }
  return out;
}

/** Raw reduction (no autograd). Returns values (and indices for max/min) shaped with keepDim. */
export function reduceRaw(op: ReduceOp, name: string, x: Tensor, dims: number[], keepDim: boolean, wantIdx = false): { values: Tensor; indices: Tensor | null } {
  requireFloat(name, x);
  const shape = x.shape;
  const outShape = keptShape(shape, dims, keepDim);
  if ((op === 'max' || op === 'min') && dims.some((d) => shape[d] === 0))
    throw new Error(`${name}: cannot reduce over an empty dimension of shape ${fmtShape(shape)}`);
  // Map onto (outer, r, inner): if dims are one adjacent run, no permute is needed.
  let src = x;
  let lo = dims[0] ?? 0;
  let hi = (dims[dims.length - 1] ?? -1) + 1;
  const adjacent = dims.length === 0 || hi - lo === dims.length;
  if (!adjacent) {
    const rest = shape.map((_, i) => i).filter((i) => !dims.includes(i));
    src = x.permute([...rest, ...dims]);
    lo = rest.length;
    hi = shape.length;
  }
  const c = src.contiguous();
  const data = c.floatData(name);
  const sh = c.shape;
  const outer = numel(sh.slice(0, lo));
  const r = numel(sh.slice(lo, hi));
  const inner = numel(sh.slice(hi));
  const values = newFloat(outShape, x.dtype);
  const idx = wantIdx ? new Int32Array(outer * inner) : null;
  backendFor(x.dtype).reduce(op, data, outer, r, inner, values.data as Float32Array, idx);
  return { values, indices: idx ? new Tensor(idx, outShape, 'int32') : null };
}

/** Broadcast a reduced gradient (shaped with or without kept dims) back to the input shape. */
function expandBack(g: Tensor, shape: readonly number[], dims: number[], keepDim: boolean): Tensor {
  let gk = g;
  if (!keepDim) gk = g.reshape(keptShape(shape, dims, true));
  return gk.expand(shape);
}

export const sum = defineOp({
  name: 'sum',
  forward: (x: Tensor, dim: DimArg, keepDim: boolean) => reduceRaw('sum', 'sum', x, normDims('sum', dim, x.ndim), keepDim).values,
  backward: (g, { inputs: [x], args: [, dim, keepDim] }) => [expandBack(g, x!.shape, normDims('sum', dim, x!.ndim), keepDim)],
});

export function mean(x: Tensor, dim: DimArg = null, keepDim = false): Tensor {
  const dims = normDims('mean', dim, x.ndim);
  const count = dims.reduce((n, d) => n * x.shape[d]!, 1);
  return sum(x, dims, keepDim).div(count);
}

/** Max/min values over dims; the gradient goes to the first extreme element of each slice. */
function extremeOp(kind: 'max' | 'min') {
  return defineOp({
    name: kind === 'max' ? 'amax' : 'amin',
    forward: (x: Tensor, dim: DimArg, keepDim: boolean) => {
      const dims = normDims(kind, dim, x.ndim);
      const r = reduceRaw(kind, kind === 'max' ? 'amax' : 'amin', x, dims, keepDim);
      return r.values;
    },
    backward: (g, { inputs: [x], args: [, dim, keepDim], out }) => {
      // mask of positions equal to the extreme, normalised so ties share the gradient (torch.amax semantics)
      const dims = normDims(kind, dim, x!.ndim);
      const outK = keepDim ? out : out.reshape(keptShape(x!.shape, dims, true));
      const mask = x!.eq(outK.expand(x!.shape));
      const count = mask.sum(dims, true);
      return [mask.div(count).mul(expandBack(g, x!.shape, dims, keepDim))];
    },
  });
}
export const amax = extremeOp('max');
export const amin = extremeOp('min');

/** Values of a max/min over one dim, already computed with their indices; the gradient scatters to the indices. */
const maxDimOp = defineOp({
  name: 'maxDim',
  inputs: ([x]) => [x],
  forward: (_x: Tensor, values: Tensor, _indices: Tensor, _dim: number, _keepDim: boolean) => values,
  backward: (g, { inputs: [x], args: [, , indices, d, keepDim] }) => {
    if (x!.ndim === 0) return [g];
    const idx = keepDim ? indices : indices.unsqueeze(d);
    const gk = keepDim ? g : g.unsqueeze(d);
    return [Tensor.zeros(x!.shape, { dtype: x!.dtype }).scatterAdd(d, idx, gk)];
  },
});

/** torch.max(x, dim) / torch.min(x, dim): values and int32 indices of the first extreme element. */
export function maxDim(x: Tensor, dim: number, keepDim: boolean, kind: 'max' | 'min'): { values: Tensor; indices: Tensor } {
  const d = normDim(kind, dim, x.ndim);
  const r = reduceRaw(kind, kind, x, x.ndim === 0 ? [] : [d], keepDim, true);
  return { values: maxDimOp(x, r.values, r.indices!, d, keepDim), indices: r.indices! };
}

export function argExtreme(x: Tensor, dim: number | null, keepDim: boolean, kind: 'max' | 'min'): Tensor {
  if (dim === null) {
    const r = reduceRaw(kind, kind === 'max' ? 'argmax' : 'argmin', x.reshape([-1]), [0], false, true);
    return keepDim ? r.indices!.reshape(x.shape.map(() => 1)) : r.indices!;
  }
  const d = normDim(kind === 'max' ? 'argmax' : 'argmin', dim, x.ndim);
  return reduceRaw(kind, kind === 'max' ? 'argmax' : 'argmin', x, x.ndim === 0 ? [] : [d], keepDim, true).indices!;
}

export function variance(x: Tensor, dim: DimArg, correction: number, keepDim: boolean): Tensor {
  const dims = normDims('var', dim, x.ndim);
  const count = dims.reduce((n, d) => n * x.shape[d]!, 1);
  const mu = mean(x, dims, true);
  const ss = x.sub(mu).square().sum(dims, keepDim);
  return ss.div(Math.max(0, count - correction));
}

/** log Σ exp(x) over dims, stable (the max is detached: its gradient cancels exactly). */
export function logsumexp(x: Tensor, dim: number | readonly number[], keepDim: boolean): Tensor {
  const dims = normDims('logsumexp', dim, x.ndim);
  const m = reduceRaw('max', 'logsumexp', x, dims, true).values;
  const mSafe = m.maskedFill(m.abs().eq(Infinity), 0); // all -inf slices give -inf, not NaN
  const s = x.sub(mSafe).exp().sum(dims, true).log().add(mSafe);
  return keepDim ? s : s.reshape(keptShape(x.shape, dims, false));
}

export function norm(x: Tensor, p: number, dim: DimArg, keepDim: boolean): Tensor {
  if (!(p > 0)) throw new Error(`norm: p must be positive, got ${p}`);
  if (p === Infinity) return x.abs().amax(dim, keepDim);
  if (p === 1) return x.abs().sum(dim, keepDim);
  if (p === 2) return x.square().sum(dim, keepDim).sqrt();
  return x.abs().pow(p).sum(dim, keepDim).pow(1 / p);
}

/** Sum g down to `shape` (the adjoint of broadcasting `shape` up to g.shape). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((s, i) => s === shape[i])) return g;
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let d = 0; d < g.ndim; d++) if (d < lead || (shape[d - lead] === 1 && g.shape[d] !== 1)) dims.push(d);
  let r = dims.length ? sum(g, dims, true) : g;
  if (lead > 0 || r.shape.length !== shape.length) r = r.reshape(shape);
  return r;
}
