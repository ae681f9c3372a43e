/**
 * Movement and indexing: views (reshape/view, transpose, permute, narrow/slice/select, expand, squeeze,
 * unsqueeze) share storage; contiguous/clone/cat/stack/indexSelect/gather/scatterAdd copy. Every op works on any
 * dtype; gradients flow for float tensors.
 */
import { defineOp, type Op } from '../tensor/autograd.ts';
import { allocArray, isFloatCompute, type TypedArray } from '../tensor/dtype.ts';
import { broadcastShapes, broadcastStrides, checkShape, contiguousStrides, fmtShape, normDim, numel, shapesEqual } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import { stridedOffsets } from '../backend/ref/index.ts';
import { backendFor, indexData, viewOf } from './util.ts';

function viewOfTensor(x: Tensor, shape: readonly number[], strides: readonly number[], offset: number): Tensor {
  return new Tensor(x.data, shape, x.dtype, strides, offset);
}

// ---------------------------------------------------------------- copies

/** Contiguous copy of any tensor (float on the backend's strided copy kernel, other dtypes in TS). */
function copyContiguous(x: Tensor): Tensor {
  const n = x.numel;
  if (isFloatCompute(x.dtype)) {
    const out = allocArray(x.dtype, n) as Float32Array;
    backendFor(x.dtype).unary('copy', viewOf(x), x.shape, out, 0, 0);
    return new Tensor(out, [...x.shape], x.dtype);
  }
  const out = allocArray(x.dtype, n);
  const offs = stridedOffsets(x.shape, x.strides, x.offset);
  if (offs === null) out.set(x.data.subarray(x.offset, x.offset + n));
  else for (let i = 0; i < n; i++) out[i] = x.data[offs[i]!]!;
  return new Tensor(out, [...x.shape], x.dtype);
}

export const contiguous = defineOp({
  name: 'contiguous',
  forward: (x: Tensor) => copyContiguous(x),
  backward: (g) => [g],
});

export const clone = defineOp({
  name: 'clone',
  forward: (x: Tensor) => copyContiguous(x),
  backward: (g) => [g],
});

/** Write src (broadcast to dst.shape, cast to dst.dtype) into dst's storage through dst's strides. No autograd. */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (!shapesEqual(broadcastShapes('copy_', dst.shape, src.shape), dst.shape))
    throw new Error(`copy_: source of shape ${fmtShape(src.shape)} does not broadcast to destination shape ${fmtShape(dst.shape)}`);
  let s = src.dtype === dst.dtype ? src : src.to(dst.dtype);
  if (!shapesEqual(s.shape, dst.shape)) s = s.expand(dst.shape);
  const n = dst.numel;
  if (n === 0) return;
  if (s.data === dst.data) s = copyContiguous(s); // overlapping storage: read a snapshot first
  const srcOffs = stridedOffsets(s.shape, s.strides, s.offset);
  const dstOffs = stridedOffsets(dst.shape, dst.strides, dst.offset);
  const D = dst.data;
  const S = s.data;
  if (srcOffs === null && dstOffs === null) {
    D.set(S.subarray(s.offset, s.offset + n) as never, dst.offset);
    return;
  }
  for (let i = 0; i < n; i++) D[dstOffs ? dstOffs[i]! : dst.offset + i] = S[srcOffs ? srcOffs[i]! : s.offset + i]!;
}

// ---------------------------------------------------------------- reshape family

function inferReshape(op: string, numelIn: number, shape: readonly number[]): number[] {
  let infer = -1;
  let known = 1;
  const out = [...shape];
  for (let i = 0; i < out.length; i++) {
    const s = out[i]!;
    if (s === -1) {
      if (infer >= 0) throw new Error(`${op}: only one dimension can be -1, got ${fmtShape(shape)}`);
      infer = i;
    } else if (!Number.isInteger(s) || s < 0) throw new Error(`${op}: invalid size ${s} in shape ${fmtShape(shape)}`);
    else known *= s;
  }
  if (infer >= 0) {
    if (known === 0 || numelIn % known !== 0) throw new Error(`${op}: shape ${fmtShape(shape)} is invalid for input of size ${numelIn}`);
    out[infer] = numelIn / known;
  } else if (known !== numelIn) throw new Error(`${op}: shape ${fmtShape(shape)} is invalid for input of size ${numelIn}`);
  return out;
}

/**
 * Strides for viewing (shape, strides) as newShape without copying, or null if impossible (torch's rule:
 * each run of merged/split dims must be contiguous with respect to itself).
 */
function viewStrides(shape: readonly number[], strides: readonly number[], newShape: readonly number[]): number[] | null {
  if (numel(shape) === 0 || shape.length === 0) return contiguousStrides(newShape);
  const out = new Array<number>(newShape.length);
  let vd = newShape.length - 1;
  let base = strides[shape.length - 1]!; // stride of the innermost element of the current chunk
  let chunkNumel = 1;
  let viewNumel = 1;
  // Walk input dims from the inside out, grouping runs that are contiguous with each other into chunks; each
  // chunk must be covered exactly by a run of view dims.
  for (let td = shape.length - 1; td >= 0; td--) {
    chunkNumel *= shape[td]!;
    const chunkEnds = td === 0 || (shape[td - 1] !== 1 && strides[td - 1] !== chunkNumel * base);
    if (!chunkEnds) continue;
    while (vd >= 0 && (viewNumel < chunkNumel || newShape[vd] === 1)) {
      out[vd] = viewNumel * base;
      viewNumel *= newShape[vd]!;
      vd--;
    }
    if (viewNumel !== chunkNumel) return null;
    if (td > 0) {
      base = strides[td - 1]!;
      chunkNumel = 1;
      viewNumel = 1;
    }
  }
  return vd === -1 ? out : null;
}

export const view = defineOp({
  name: 'view',
  forward: (x: Tensor, shape: readonly number[]) => {
    const s = inferReshape('view', x.numel, shape);
    const st = x.isContiguous() ? contiguousStrides(s) : viewStrides(x.shape, x.strides, s);
    if (!st)
      throw new Error(`view: shape ${fmtShape(s)} is not compatible with the input's size and strides (${fmtShape(x.shape)} strides ${fmtShape(x.strides)}); use reshape() or contiguous() first`);
    return viewOfTensor(x, s, st, x.offset);
  },
  backward: (g, { inputs: [x] }) => [g.reshape(x!.shape)],
});

/** A view when possible, else a contiguous copy. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = inferReshape('reshape', x.numel, shape);
  if (shapesEqual(s, x.shape)) return x;
  if (x.isContiguous() || viewStrides(x.shape, x.strides, s)) return view(x, s);
  return view(contiguous(x), s);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const a = normDim('flatten', startDim, x.ndim);
  const b = normDim('flatten', endDim, x.ndim);
  if (a > b) throw new Error(`flatten: startDim ${startDim} must not come after endDim ${endDim}`);
  return reshape(x, [...x.shape.slice(0, a), numel(x.shape.slice(a, b + 1)), ...x.shape.slice(b + 1)]);
}

export const permute: Op<[Tensor, readonly number[]]> = defineOp({
  name: 'permute',
  forward: (x: Tensor, dims: readonly number[]) => {
    if (dims.length !== x.ndim) throw new Error(`permute: got ${dims.length} dims [${dims}] for a tensor of rank ${x.ndim}`);
    const p = dims.map((d) => normDim('permute', d, x.ndim));
    if (new Set(p).size !== p.length) throw new Error(`permute: dims [${dims}] repeat a dimension`);
    return viewOfTensor(x, p.map((d) => x.shape[d]!), p.map((d) => x.strides[d]!), x.offset);
  },
  backward: (g, { inputs: [x], args: [, dims] }) => {
    const p = dims.map((d) => normDim('permute', d, x!.ndim));
    const inv = new Array<number>(p.length);
    p.forEach((d, i) => (inv[d] = i));
    return [permute(g, inv)];
  },
});

export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  if (x.ndim < 2 && (d0 === 0 || d0 === -1) && (d1 === 0 || d1 === -1)) return x;
  const a = normDim('transpose', d0, x.ndim);
  const b = normDim('transpose', d1, x.ndim);
  if (a === b) return x;
  const p = x.shape.map((_, i) => i);
  p[a] = b;
  p[b] = a;
  return permute(x, p);
}

/** Move dimension `source` to position `destination`, keeping the others in order (torch.movedim). */
export function movedim(x: Tensor, source: number, destination: number): Tensor {
  const s = normDim('movedim', source, x.ndim);
  const d = normDim('movedim', destination, x.ndim);
  if (s === d) return x;
  const rest = x.shape.map((_, i) => i).filter((i) => i !== s);
  rest.splice(d, 0, s);
  return permute(x, rest);
}

export const slice: Op<[Tensor, number, number, number | undefined, number]> = defineOp({
  name: 'slice',
  forward: (x: Tensor, dim: number, start: number, end: number | undefined, step: number) => {
    const d = normDim('slice', dim, x.ndim);
    const size = x.shape[d]!;
    if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step must be a positive integer, got ${step}`);
    let s = start < 0 ? start + size : start;
    let e = end === undefined ? size : end < 0 ? end + size : end;
    s = Math.min(Math.max(s, 0), size);
    e = Math.min(Math.max(e, s), size);
    const len = Math.ceil((e - s) / step);
    const shape = [...x.shape];
    shape[d] = len;
    const strides = [...x.strides];
    strides[d] = x.strides[d]! * step;
    return viewOfTensor(x, shape, strides, x.offset + s * x.strides[d]!);
  },
  backward: (g, { inputs: [x], args: [, dim, start, end, step] }) => {
    const z = Tensor.zeros(x!.shape, { dtype: g.dtype });
    copyInto(slice(z, dim, start, end, step), g);
    return [z];
  },
});

export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normDim('narrow', dim, x.ndim);
  const size = x.shape[d]!;
  const s = start < 0 ? start + size : start;
  if (!Number.isInteger(length) || length < 0 || s < 0 || s + length > size)
    throw new Error(`narrow: start ${start} + length ${length} is out of range for dimension ${dim} of size ${size}`);
  return slice(x, d, s, s + length, 1);
}

export function select(x: Tensor, dim: number, index: number): Tensor {
  const d = normDim('select', dim, x.ndim);
  const size = x.shape[d]!;
  if (!Number.isInteger(index) || index < -size || index >= size)
    throw new Error(`select: index ${index} is out of range for dimension ${dim} with size ${size}`);
  const i = index < 0 ? index + size : index;
  return squeeze(narrow(x, d, i, 1), d);
}

export const expand = defineOp({
  name: 'expand',
  forward: (x: Tensor, shape: readonly number[]) => {
    if (shape.length < x.ndim) throw new Error(`expand: target ${fmtShape(shape)} has fewer dims than the input ${fmtShape(x.shape)}`);
    const lead = shape.length - x.ndim;
    const target = shape.map((s, i) => (s === -1 ? (i >= lead ? x.shape[i - lead]! : -1) : s));
    for (let i = 0; i < target.length; i++) {
      const t = target[i]!;
      const src = i >= lead ? x.shape[i - lead]! : 1;
      if (t < 0 || (src !== 1 && src !== t)) throw new Error(`expand: cannot expand shape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
    }
    return viewOfTensor(x, target, broadcastStrides(x.shape, x.strides, target), x.offset);
  },
  backward: (g, { inputs: [x] }) => {
    const lead = g.ndim - x!.ndim;
    const dims: number[] = [];
    for (let d = 0; d < g.ndim; d++) if (d < lead || (x!.shape[d - lead] === 1 && g.shape[d] !== 1)) dims.push(d);
    return [dims.length ? g.sum(dims, true).reshape(x!.shape) : g.reshape(x!.shape)];
  },
});

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((s) => s !== 1));
  if (x.ndim === 0) return x;
  const d = normDim('squeeze', dim, x.ndim);
  if (x.shape[d] !== 1) return x;
  return reshape(x, [...x.shape.slice(0, d), ...x.shape.slice(d + 1)]);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim('unsqueeze', dim, x.ndim + 1);
  const shape = [...x.shape.slice(0, d), 1, ...x.shape.slice(d)];
  const inner = d < x.ndim ? x.strides[d]! * x.shape[d]! : 1;
  const strides = [...x.strides.slice(0, d), inner, ...x.strides.slice(d)];
  return viewUnsqueeze(x, shape, strides);
}
const viewUnsqueeze = defineOp({
  name: 'unsqueeze',
  forward: (x: Tensor, shape: readonly number[], strides: readonly number[]) => viewOfTensor(x, shape, strides, x.offset),
  backward: (g, { inputs: [x] }) => [g.reshape(x!.shape)],
});

// ---------------------------------------------------------------- split / cat / stack

export function split(x: Tensor, splitSize: number | readonly number[], dim = 0): Tensor[] {
  const d = normDim('split', dim, x.ndim);
  const size = x.shape[d]!;
  let sizes: number[];
  if (typeof splitSize === 'number') {
    if (!Number.isInteger(splitSize) || splitSize <= 0) throw new Error(`split: split size must be a positive integer, got ${splitSize}`);
    sizes = [];
    for (let s = 0; s < size; s += splitSize) sizes.push(Math.min(splitSize, size - s));
    if (size === 0) sizes.push(0);
  } else {
    sizes = [...splitSize];
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== size) throw new Error(`split: sizes [${sizes}] sum to ${total}, but dimension ${dim} has size ${size}`);
  }
  const out: Tensor[] = [];
  let start = 0;
  for (const s of sizes) {
    out.push(narrow(x, d, start, s));
    start += s;
  }
  return out;
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  if (!Number.isInteger(chunks) || chunks <= 0) throw new Error(`chunk: chunks must be a positive integer, got ${chunks}`);
  const d = normDim('chunk', dim, x.ndim);
  return split(x, Math.max(1, Math.ceil(x.shape[d]! / chunks)), d);
}

export const cat = defineOp({
  name: 'cat',
  inputs: ([tensors]) => [...tensors],
  forward: (tensors: readonly Tensor[], dim: number) => {
    if (!Array.isArray(tensors) || tensors.length === 0) throw new Error('cat: expected a non-empty list of tensors');
    const first = tensors[0]!;
    const d = normDim('cat', dim, first.ndim);
    let total = 0;
    for (const [i, t] of tensors.entries()) {
      if (t.dtype !== first.dtype) throw new Error(`cat: tensor ${i} has dtype ${t.dtype}, expected ${first.dtype}`);
      if (t.ndim !== first.ndim || t.shape.some((s: number, k: number) => k !== d && s !== first.shape[k]))
        throw new Error(`cat: tensor ${i} has shape ${fmtShape(t.shape)}, incompatible with ${fmtShape(first.shape)} along dim ${d}`);
      total += t.shape[d]!;
    }
    const shape = [...first.shape];
    shape[d] = total;
    const out = new Tensor(allocArray(first.dtype, numel(shape)), shape, first.dtype);
    let off = 0;
    for (const t of tensors) {
      if (t.shape[d]! > 0) copyInto(narrow(out, d, off, t.shape[d]!), t);
      off += t.shape[d]!;
    }
    return out;
  },
  backward: (g, { inputs, args: [, dim] }) => {
    const d = normDim('cat', dim, g.ndim);
    return split(g, inputs.map((t) => t.shape[d]!), d);
  },
});

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new Error('stack: expected a non-empty list of tensors');
  const first = tensors[0]!;
  for (const [i, t] of tensors.entries())
    if (!shapesEqual(t.shape, first.shape)) throw new Error(`stack: tensor ${i} has shape ${fmtShape(t.shape)}, expected ${fmtShape(first.shape)}`);
  const d = normDim('stack', dim, first.ndim + 1);
  return cat(tensors.map((t) => unsqueeze(t, d)), d);
}

// ---------------------------------------------------------------- indexing

/** Rows of x along dim picked by a 1-D int index (torch.index_select). */
export const indexSelect = defineOp({
  name: 'indexSelect',
  inputs: ([x]) => [x],
  forward: (x: Tensor, dim: number, index: Tensor) => {
    if (index.ndim > 1) throw new Error(`indexSelect: index must be 0-D or 1-D, got shape ${fmtShape(index.shape)}`);
    const d = normDim('indexSelect', dim, x.ndim);
    const size = x.ndim === 0 ? 1 : x.shape[d]!;
    const idx = indexData('indexSelect', index, size);
    const c = x.contiguous();
    const outer = numel(x.shape.slice(0, d));
    const inner = numel(x.shape.slice(d + 1));
    const shape = [...x.shape];
    if (x.ndim > 0) shape[d] = idx.length;
    const out = allocArray(x.dtype, numel(shape));
    const src = c.data;
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < idx.length; i++) {
        const from = c.offset + (o * size + idx[i]!) * inner;
        out.set(src.subarray(from, from + inner) as never, (o * idx.length + i) * inner);
      }
    return new Tensor(out, shape, x.dtype);
  },
  backward: (g, { inputs: [x], args: [, dim, index] }) => {
    const d = normDim('indexSelect', dim, x!.ndim);
    const size = x!.shape[d]!;
    const idx = indexData('indexSelect', index, size);
    const gc = g.contiguous();
    const outer = numel(x!.shape.slice(0, d));
    const inner = numel(x!.shape.slice(d + 1));
    const z = Tensor.zeros(x!.shape, { dtype: g.dtype });
    const out = z.data;
    const gd = gc.data;
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < idx.length; i++) {
        const to = (o * size + idx[i]!) * inner;
        const from = gc.offset + (o * idx.length + i) * inner;
        for (let k = 0; k < inner; k++) out[to + k]! += gd[from + k]!;
      }
    return [z];
  },
});

/** Iterate every position of `shape`, calling fn(flatPos, coords). */
function forEachIndex(shape: readonly number[], fn: (i: number, coord: number[]) => void): void {
  const n = numel(shape);
  const coord = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    fn(i, coord);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++coord[d]! < shape[d]!) break;
      coord[d] = 0;
    }
  }
}

function checkIndexShape(op: string, x: Tensor, index: Tensor, d: number): void {
  if (index.ndim !== x.ndim) throw new Error(`${op}: index has rank ${index.ndim}, input has rank ${x.ndim} (they must match)`);
  for (let k = 0; k < x.ndim; k++)
    if (k !== d && index.shape[k]! > x.shape[k]!)
      throw new Error(`${op}: index shape ${fmtShape(index.shape)} exceeds input shape ${fmtShape(x.shape)} at dimension ${k}`);
}

/** out[..i..] = x[..index[..i..]..] along dim (torch.gather). */
export const gather = defineOp({
  name: 'gather',
  inputs: ([x]) => [x],
  forward: (x: Tensor, dim: number, index: Tensor) => {
    const d = normDim('gather', dim, x.ndim);
    checkIndexShape('gather', x, index, d);
    const idx = indexData('gather', index, x.shape[d]!);
    const out = allocArray(x.dtype, index.numel);
    const src = x.data;
    forEachIndex(index.shape, (i, c) => {
      let off = x.offset;
      for (let k = 0; k < c.length; k++) off += (k === d ? idx[i]! : c[k]!) * x.strides[k]!;
      out[i] = src[off]!;
    });
    return new Tensor(out, [...index.shape], x.dtype);
  },
  backward: (g, { inputs: [x], args: [, dim, index] }) => [Tensor.zeros(x!.shape, { dtype: g.dtype }).scatterAdd(dim, index, g)],
});

/** out = x.clone(); out[..index[..i..]..] += src[..i..] along dim (torch.scatter_add). */
export const scatterAdd = defineOp({
  name: 'scatterAdd',
  inputs: ([x, , , src]) => [x, src],
  forward: (x: Tensor, dim: number, index: Tensor, src: Tensor) => {
    const d = normDim('scatterAdd', dim, x.ndim);
    checkIndexShape('scatterAdd', x, index, d);
    if (src.dtype !== x.dtype) throw new Error(`scatterAdd: src dtype ${src.dtype} differs from input dtype ${x.dtype}`);
    for (let k = 0; k < x.ndim; k++)
      if (index.shape[k]! > src.shape[k]!) throw new Error(`scatterAdd: index shape ${fmtShape(index.shape)} exceeds src shape ${fmtShape(src.shape)}`);
    const idx = indexData('scatterAdd', index, x.shape[d]!);
    const out = copyContiguous(x);
    const od = out.data;
    const st = contiguousStrides(x.shape);
    forEachIndex(index.shape, (i, c) => {
      let off = 0;
      let so = src.offset;
      for (let k = 0; k < c.length; k++) {
        off += (k === d ? idx[i]! : c[k]!) * st[k]!;
        so += c[k]! * src.strides[k]!;
      }
      od[off]! += src.data[so]!;
    });
    return out;
  },
  backward: (g, { inputs: [x, src], args: [, dim, index] }) => [x!.requiresGrad ? g : null, src!.requiresGrad ? padTo(g.gather(dim, index), src!.shape) : null],
});

/** Zero-pad a gradient up to `shape` (when the index covered only part of src). */
function padTo(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const z = Tensor.zeros(shape, { dtype: g.dtype });
  let v = z;
  for (let k = 0; k < shape.length; k++) v = v.narrow(k, 0, g.shape[k]!);
  copyInto(v, g);
  return z;
}

export { checkShape, type TypedArray };
