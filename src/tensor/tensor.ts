/**
 * Tensor: an n-dimensional view (shape, strides, offset) over a flat typed array, with PyTorch names and
 * argument order. Movement ops (reshape/view, transpose, permute, narrow, expand, squeeze…) return views that
 * share storage; math ops return new contiguous tensors computed by the active backend.
 *
 * The methods here are one-line wrappers over the ops in src/ops, where each op and its gradient are declared.
 */
import { ARRAY_CTOR, DTYPE_BYTES, allocArray, convertArray, isFloatCompute, type DType, type FloatArray, type TypedArray } from './dtype.ts';
import { checkShape, contiguousStrides, fmtShape, normDim, numel as shapeNumel } from './shape.ts';
import { runBackward, type BackwardOptions, type GradNode } from './autograd.ts';
import { defaultGenerator, type Generator } from './random.ts';
import * as E from '../ops/elementwise.ts';
import * as R from '../ops/reduce.ts';
import * as M from '../ops/movement.ts';
import * as MM from '../ops/matmul.ts';
import * as NN from '../ops/nn.ts';

export type TensorLike = number | boolean | TensorLike[];
export type Scalar = number;
export type Dims = number | readonly number[];

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

export class Tensor {
  /** Backing storage, shared by views. */
  data: TypedArray;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  requiresGrad: boolean;
  /** Accumulated gradient (leaves, and tensors marked with retainGrad()). */
  grad: Tensor | null = null;
  /** @internal graph node of the op that produced this tensor */
  _node: GradNode | null = null;
  /** @internal keep .grad on a non-leaf */
  _retainGrad = false;

  constructor(data: TypedArray, shape: readonly number[], dtype: DType, strides?: readonly number[], offset = 0, requiresGrad = false) {
    this.data = data;
    this.shape = shape;
    this.dtype = dtype;
    this.strides = strides ?? contiguousStrides(shape);
    this.offset = offset;
    this.requiresGrad = requiresGrad;
  }

  // ---------------------------------------------------------------- creation (static; see also src/tensor/creation.ts)

  /** A tensor from nested arrays or a typed array (copied). Default dtype float32 (int32 for Int32Array). */
  static from(values: TensorLike | TypedArray, opts: TensorOptions & { shape?: readonly number[] } = {}): Tensor {
    let shape: number[];
    let flat: ArrayLike<number>;
    if (ArrayBuffer.isView(values)) {
      flat = values as TypedArray;
      shape = opts.shape ? checkShape('tensor', opts.shape) : [flat.length];
    } else {
      shape = inferShape(values);
      const out: number[] = [];
      flatten(values, shape, 0, out);
      flat = out;
      if (opts.shape) {
        const s = checkShape('tensor', opts.shape);
        if (shapeNumel(s) !== out.length) throw new Error(`tensor: ${out.length} values do not fill shape ${fmtShape(s)}`);
        shape = s;
      }
    }
    if (shapeNumel(shape) !== flat.length) throw new Error(`tensor: ${flat.length} values do not fill shape ${fmtShape(shape)}`);
    const dtype = opts.dtype ?? (values instanceof Int32Array ? 'int32' : values instanceof Float64Array ? 'float64' : values instanceof Uint8Array ? 'uint8' : values instanceof Int8Array ? 'int8' : 'float32');
    let data: TypedArray;
    if (ArrayBuffer.isView(values) && (values as TypedArray).constructor === ARRAY_CTOR[dtype] && dtype !== 'float16' && dtype !== 'bfloat16') data = (values as TypedArray).slice();
    else if (dtype === 'float16' || dtype === 'bfloat16') data = convertArray(Float32Array.from(flat), 'float32', dtype);
    else if (dtype === 'int32' || dtype === 'int8' || dtype === 'uint8') data = convertArray(Float64Array.from(flat), 'float64', dtype);
    else {
      data = new ARRAY_CTOR[dtype](flat.length);
      for (let i = 0; i < flat.length; i++) data[i] = Number(flat[i]);
    }
    return new Tensor(data, shape, dtype, undefined, 0, opts.requiresGrad ?? false);
  }

  static empty(shape: readonly number[], opts: TensorOptions = {}): Tensor {
    const s = checkShape('empty', shape);
    const dtype = opts.dtype ?? 'float32';
    return new Tensor(allocArray(dtype, shapeNumel(s)), s, dtype, undefined, 0, opts.requiresGrad ?? false);
  }
  static zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
    return Tensor.empty(shape, opts);
  }
  static full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
    const t = Tensor.empty(shape, { dtype: opts.dtype ?? 'float32' });
    if (value !== 0) t.data.fill(encodeScalar(value, t.dtype));
    t.requiresGrad = opts.requiresGrad ?? false;
    return t;
  }
  static ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
    return Tensor.full(shape, 1, opts);
  }
  /** Values start, start+step, … < end (torch.arange). Default dtype int32 when all arguments are integers. */
  static arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
    if (end === undefined) [start, end] = [0, start];
    if (step === 0) throw new Error('arange: step must be non-zero');
    const n = Math.max(0, Math.ceil((end - start) / step));
    const dtype = opts.dtype ?? (Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step) ? 'int32' : 'float32');
    const t = Tensor.empty([n], { dtype });
    for (let i = 0; i < n; i++) t.data[i] = start + i * step;
    t.requiresGrad = opts.requiresGrad ?? false;
    return t;
  }
  /** Uniform [0, 1). */
  static rand(shape: readonly number[], opts: TensorOptions & { generator?: Generator } = {}): Tensor {
    const t = Tensor.empty(shape, { dtype: opts.dtype ?? 'float32' });
    const g = opts.generator ?? defaultGenerator;
    for (let i = 0; i < t.data.length; i++) t.data[i] = g.random();
    t.requiresGrad = opts.requiresGrad ?? false;
    return t;
  }
  /** Standard normal. */
  static randn(shape: readonly number[], opts: TensorOptions & { generator?: Generator } = {}): Tensor {
    const t = Tensor.empty(shape, { dtype: opts.dtype ?? 'float32' });
    const g = opts.generator ?? defaultGenerator;
    for (let i = 0; i < t.data.length; i++) t.data[i] = g.normal();
    t.requiresGrad = opts.requiresGrad ?? false;
    return t;
  }
  /** Uniform integers in [low, high), dtype int32 by default (torch.randint(low, high, size)). */
  static randint(low: number, high: number, shape: readonly number[], opts: TensorOptions & { generator?: Generator } = {}): Tensor {
    const t = Tensor.empty(shape, { dtype: opts.dtype ?? 'int32' });
    const g = opts.generator ?? defaultGenerator;
    for (let i = 0; i < t.data.length; i++) t.data[i] = g.randint(low, high);
    return t;
  }

  // ---------------------------------------------------------------- properties

  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return shapeNumel(this.shape);
  }
  /** torch.Tensor.size(dim?) */
  size(dim?: number): number | readonly number[] {
    return dim === undefined ? this.shape : this.shape[normDim('size', dim, this.ndim)]!;
  }
  /** Storage bytes of the elements this tensor spans (numel × element size). */
  get nbytes(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }
  get isLeaf(): boolean {
    return this._node === null;
  }
  /** Row-major contiguous (size-1 dims may have any stride). */
  isContiguous(): boolean {
    let expect = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      const s = this.shape[d]!;
      if (s !== 1 && this.strides[d] !== expect) return false;
      expect *= s;
    }
    return true;
  }
  toString(): string {
    return `Tensor(shape=${fmtShape(this.shape)}, dtype=${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  // ---------------------------------------------------------------- data access

  /** Flat row-major values as a new typed array of this dtype (float16/bfloat16 give their Uint16 bits). */
  toArray(): TypedArray {
    const c = this.contiguous();
    return c === this && c.offset === 0 && c.data.length === c.numel ? c.data.slice() : c.data.subarray(c.offset, c.offset + c.numel).slice();
  }
  /** Flat row-major values as float32 (converting from any dtype). */
  toFloat32Array(): Float32Array {
    return this.to('float32').toArray() as Float32Array;
  }
  /** Nested JS arrays (float16/bfloat16 decoded to numbers); a number for a 0-d tensor. Typed loosely, like torch. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  tolist(): any {
    const flat = isFloatCompute(this.dtype) || this.dtype === 'int32' || this.dtype === 'int8' || this.dtype === 'uint8' ? this.toArray() : this.toFloat32Array();
    if (this.ndim === 0) return flat[0]!;
    let i = 0;
    const build = (d: number): TensorLike[] => {
      const out: TensorLike[] = [];
      for (let k = 0; k < this.shape[d]!; k++) out.push(d === this.ndim - 1 ? flat[i++]! : build(d + 1));
      return out;
    };
    return build(0);
  }
  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new Error(`item: expected a tensor with one element, got shape ${fmtShape(this.shape)}`);
    const v = this.data[this.offset]!;
    return this.dtype === 'float16' || this.dtype === 'bfloat16' ? this.toFloat32Array()[0]! : v;
  }
  /** Contiguous float data (float32/float64) without copying when already contiguous at offset 0. @internal */
  floatData(op: string): FloatArray {
    if (!isFloatCompute(this.dtype)) throw new Error(`${op}: expected a float32 or float64 tensor, got ${this.dtype}`);
    const c = this.contiguous();
    return (c.offset === 0 && c.data.length === c.numel ? c.data : c.data.subarray(c.offset, c.offset + c.numel)) as FloatArray;
  }

  // ---------------------------------------------------------------- autograd

  /** Compute gradients of this tensor w.r.t. every leaf that requires grad (accumulated into .grad). */
  backward(grad?: Tensor, opts?: BackwardOptions): void {
    runBackward(this, grad, opts);
  }
  /** A tensor sharing storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, this.dtype, this.strides, this.offset, false);
  }
  /** Set requiresGrad in place (leaves only). */
  requiresGrad_(v = true): this {
    if (v && !isFloatCompute(this.dtype)) throw new Error(`requiresGrad_: only float32/float64 tensors can require grad, got ${this.dtype}`);
    if (!this.isLeaf && !v) throw new Error('requiresGrad_: cannot turn off requiresGrad on a non-leaf tensor; use detach()');
    this.requiresGrad = v;
    return this;
  }
  /** Keep .grad on this non-leaf tensor after backward. */
  retainGrad(): this {
    this._retainGrad = true;
    return this;
  }
  zeroGrad(): void {
    this.grad = null;
  }

  // ---------------------------------------------------------------- dtype

  /** Convert to another dtype (a copy; differentiable between float32 and float64). */
  to(dtype: DType): Tensor {
    return dtype === this.dtype ? this : E.toDtype(this, dtype);
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  half(): Tensor {
    return this.to('float16');
  }
  bfloat16(): Tensor {
    return this.to('bfloat16');
  }
  int(): Tensor {
    return this.to('int32');
  }

  // ---------------------------------------------------------------- elementwise
  add(other: Tensor | Scalar, alpha = 1): Tensor {
    return E.add(this, other, alpha);
  }
  sub(other: Tensor | Scalar, alpha = 1): Tensor {
    return E.sub(this, other, alpha);
  }
  mul(other: Tensor | Scalar): Tensor {
    return E.mul(this, other);
  }
  div(other: Tensor | Scalar): Tensor {
    return E.div(this, other);
  }
  pow(exponent: Tensor | Scalar): Tensor {
    return E.pow(this, exponent);
  }
  maximum(other: Tensor | Scalar): Tensor {
    return E.maximum(this, other);
  }
  minimum(other: Tensor | Scalar): Tensor {
    return E.minimum(this, other);
  }
  neg(): Tensor {
    return E.neg(this);
  }
  exp(): Tensor {
    return E.exp(this);
  }
  log(): Tensor {
    return E.log(this);
  }
  sqrt(): Tensor {
    return E.sqrt(this);
  }
  rsqrt(): Tensor {
    return E.rsqrt(this);
  }
  abs(): Tensor {
    return E.abs(this);
  }
  tanh(): Tensor {
    return E.tanh(this);
  }
  sigmoid(): Tensor {
    return E.sigmoid(this);
  }
  relu(): Tensor {
    return E.relu(this);
  }
  silu(): Tensor {
    return E.silu(this);
  }
  /** GELU; approximate 'tanh' is GPT-2's gelu_new. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return approximate === 'tanh' ? E.geluTanh(this) : E.gelu(this);
  }
  erf(): Tensor {
    return E.erf(this);
  }
  sin(): Tensor {
    return E.sin(this);
  }
  cos(): Tensor {
    return E.cos(this);
  }
  square(): Tensor {
    return E.square(this);
  }
  reciprocal(): Tensor {
    return E.reciprocal(this);
  }
  sign(): Tensor {
    return E.sign(this);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return E.clamp(this, min ?? -Infinity, max ?? Infinity);
  }
  eq(other: Tensor | Scalar): Tensor {
    return E.eq(this, other);
  }
  ne(other: Tensor | Scalar): Tensor {
    return E.ne(this, other);
  }
  lt(other: Tensor | Scalar): Tensor {
    return E.lt(this, other);
  }
  le(other: Tensor | Scalar): Tensor {
    return E.le(this, other);
  }
  gt(other: Tensor | Scalar): Tensor {
    return E.gt(this, other);
  }
  ge(other: Tensor | Scalar): Tensor {
    return E.ge(this, other);
  }
  /** Where mask is non-zero, value; elsewhere this. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return E.maskedFill(this, mask, value);
  }

  // ---------------------------------------------------------------- reductions
  sum(dim?: Dims | null, keepDim = false): Tensor {
    return R.sum(this, dim ?? null, keepDim);
  }
  mean(dim?: Dims | null, keepDim = false): Tensor {
    return R.mean(this, dim ?? null, keepDim);
  }
  /** max() → scalar tensor; max(dim) → {values, indices} as torch. */
  max(): Tensor;
  max(dim: number, keepDim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepDim = false): Tensor | { values: Tensor; indices: Tensor } {
    return dim === undefined ? R.amax(this, null, false) : R.maxDim(this, dim, keepDim, 'max');
  }
  min(): Tensor;
  min(dim: number, keepDim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepDim = false): Tensor | { values: Tensor; indices: Tensor } {
    return dim === undefined ? R.amin(this, null, false) : R.maxDim(this, dim, keepDim, 'min');
  }
  amax(dim?: Dims | null, keepDim = false): Tensor {
    return R.amax(this, dim ?? null, keepDim);
  }
  amin(dim?: Dims | null, keepDim = false): Tensor {
    return R.amin(this, dim ?? null, keepDim);
  }
  argmax(dim?: number, keepDim = false): Tensor {
    return R.argExtreme(this, dim ?? null, keepDim, 'max');
  }
  argmin(dim?: number, keepDim = false): Tensor {
    return R.argExtreme(this, dim ?? null, keepDim, 'min');
  }
  /** Variance with Bessel correction by default (torch: correction=1). */
  var(dim?: Dims | null, opts: { correction?: number; keepDim?: boolean } = {}): Tensor {
    return R.variance(this, dim ?? null, opts.correction ?? 1, opts.keepDim ?? false);
  }
  std(dim?: Dims | null, opts: { correction?: number; keepDim?: boolean } = {}): Tensor {
    return this.var(dim, opts).sqrt();
  }
  logsumexp(dim: Dims, keepDim = false): Tensor {
    return R.logsumexp(this, dim, keepDim);
  }
  /** p-norm (p = 2 default; 1, 2, Infinity or any p > 0). */
  norm(p = 2, dim?: Dims | null, keepDim = false): Tensor {
    return R.norm(this, p, dim ?? null, keepDim);
  }
  cumsum(dim: number): Tensor {
    return NN.cumsum(this, dim);
  }

  // ---------------------------------------------------------------- movement (views where possible)
  reshape(...shape: (number | readonly number[])[]): Tensor {
    return M.reshape(this, flatArgs(shape));
  }
  view(...shape: (number | readonly number[])[]): Tensor {
    return M.view(this, flatArgs(shape));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return M.flatten(this, startDim, endDim);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return M.transpose(this, dim0, dim1);
  }
  /** 2-D transpose. */
  t(): Tensor {
    if (this.ndim > 2) throw new Error(`t: expects a tensor with at most 2 dimensions, got ${fmtShape(this.shape)}`);
    return this.ndim < 2 ? this : M.transpose(this, 0, 1);
  }
  permute(...dims: (number | readonly number[])[]): Tensor {
    return M.permute(this, flatArgs(dims));
  }
  movedim(source: number, destination: number): Tensor {
    return M.movedim(this, source, destination);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return M.narrow(this, dim, start, length);
  }
  /** Elements start..end (exclusive, negative counts from the end) with a step along dim. */
  slice(dim: number, start = 0, end?: number, step = 1): Tensor {
    return M.slice(this, dim, start, end, step);
  }
  /** Index along dim, removing it (x[:, i] is x.select(1, i)). */
  select(dim: number, index: number): Tensor {
    return M.select(this, dim, index);
  }
  expand(...shape: (number | readonly number[])[]): Tensor {
    return M.expand(this, flatArgs(shape));
  }
  expandAs(other: Tensor): Tensor {
    return M.expand(this, other.shape);
  }
  squeeze(dim?: number): Tensor {
    return M.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return M.unsqueeze(this, dim);
  }
  /** This tensor if already contiguous, else a contiguous copy. */
  contiguous(): Tensor {
    return this.isContiguous() ? this : M.contiguous(this);
  }
  /** A contiguous copy (differentiable). */
  clone(): Tensor {
    return M.clone(this);
  }
  split(splitSize: number | readonly number[], dim = 0): Tensor[] {
    return M.split(this, splitSize, dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return M.chunk(this, chunks, dim);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return M.indexSelect(this, dim, index);
  }
  gather(dim: number, index: Tensor): Tensor {
    return M.gather(this, dim, index);
  }
  /** out = this with src added at index along dim (torch.scatter_add, out of place). */
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return M.scatterAdd(this, dim, index, src);
  }

  // ---------------------------------------------------------------- linear algebra and nn
  matmul(other: Tensor): Tensor {
    return MM.matmul(this, other);
  }
  softmax(dim = -1): Tensor {
    return NN.softmax(this, dim);
  }
  logSoftmax(dim = -1): Tensor {
    return NN.logSoftmax(this, dim);
  }
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    return NN.topk(this, k, dim, largest, sorted);
  }

  // ---------------------------------------------------------------- in-place (no autograd; parameters and buffers)
  /** Copy values from src (broadcast to this shape) into this tensor's storage. Bumps the storage version. */
  copy_(src: Tensor): this {
    M.copyInto(this, src);
    bumpStorageVersion(this.data);
    return this;
  }
  fill_(value: number): this {
    M.copyInto(this, Tensor.full([], value, { dtype: this.dtype === 'float16' || this.dtype === 'bfloat16' ? 'float32' : this.dtype }));
    bumpStorageVersion(this.data);
    return this;
  }
  zero_(): this {
    return this.fill_(0);
  }
}

// ---------------------------------------------------------------- storage versions

/**
 * A counter per storage (ArrayBuffer), bumped by the in-place writes above (copy_, fill_, zero_): caches derived
 * from a storage's contents (e.g. the packed int8 weights of src/compress/quant/kernels.ts) record the version they
 * were built at and rebuild when it moved. Keyed by the ArrayBuffer, so every view of it (subarrays, tensor views)
 * shares one counter; a write anywhere in the buffer invalidates them all (conservative, never stale). Code that
 * writes into a tensor's typed array directly, bypassing these methods, must call bumpStorageVersion itself.
 */
const STORAGE_VERSIONS = new WeakMap<ArrayBufferLike, number>();

/** The current version of the storage behind `a` (0 until its first in-place write). */
export function storageVersion(a: ArrayBufferView): number {
  return STORAGE_VERSIONS.get(a.buffer) ?? 0;
}

/** Records an in-place write into the storage behind `a`. */
export function bumpStorageVersion(a: ArrayBufferView): void {
  STORAGE_VERSIONS.set(a.buffer, (STORAGE_VERSIONS.get(a.buffer) ?? 0) + 1);
}

// ---------------------------------------------------------------- helpers

function flatArgs(args: (number | readonly number[])[]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return [...(args[0] as number[])];
  return args as number[];
}

function encodeScalar(v: number, dtype: DType): number {
  if (dtype === 'float16' || dtype === 'bfloat16') return convertArray(new Float32Array([v]), 'float32', dtype)[0]!;
  return v;
}

function inferShape(v: TensorLike): number[] {
  const shape: number[] = [];
  let cur: TensorLike = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0]!;
  }
  return shape;
}

function flatten(v: TensorLike, shape: number[], d: number, out: number[]): void {
  if (d === shape.length) {
    if (Array.isArray(v)) throw new Error('tensor: ragged nested array (inconsistent nesting depth)');
    out.push(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    return;
  }
  if (!Array.isArray(v) || v.length !== shape[d]) throw new Error(`tensor: ragged nested array at depth ${d} (expected length ${shape[d]})`);
  for (const x of v) flatten(x, shape, d + 1, out);
}

/** torch.tensor */
export function tensor(values: TensorLike | TypedArray, opts: TensorOptions & { shape?: readonly number[] } = {}): Tensor {
  return Tensor.from(values, opts);
}
