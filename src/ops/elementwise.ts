/**
 * Elementwise ops: unary math, binary math with broadcasting, comparisons, where/maskedFill, dtype casts.
 * Each differentiable op declares its gradient here (defineOp). Unary gradients run through the backend's
 * fused `unaryBackward` kernel: out = g · f'(x).
 */
import { BINARY_OPS, type BinaryOp, type UnaryOp } from '../backend/backend.ts';
import { defineOp, type Op } from '../tensor/autograd.ts';
import { convertArray, isFloatCompute, type DType } from '../tensor/dtype.ts';
import { broadcastShapes, broadcastStrides, shapesEqual } from '../tensor/shape.ts';
import { Tensor } from '../tensor/tensor.ts';
import { sumTo } from './reduce.ts';
import { backendFor, newFloat, requireFloat, requireSameDtype, viewAs, viewOf } from './util.ts';

// ---------------------------------------------------------------- unary

function unaryForward(op: UnaryOp, name: string, x: Tensor, alpha = 0, beta = 0): Tensor {
  requireFloat(name, x);
  const out = newFloat(x.shape, x.dtype);
  backendFor(x.dtype).unary(op, viewOf(x), x.shape, out.data as Float32Array, alpha, beta);
  return out;
}

function unaryGrad(op: UnaryOp, g: Tensor, x: Tensor, y: Tensor, alpha = 0, beta = 0): Tensor {
  const xd = x.floatData(op);
  const yd = y.floatData(op);
  const gd = g.to(x.dtype).floatData(op);
  const out = newFloat(x.shape, x.dtype);
  backendFor(x.dtype).unaryBackward(op, xd, yd, gd, out.data as Float32Array, alpha, beta);
  return out;
}

/** Declare a unary op whose gradient is g·f'(x) from the backend kernel. */
function unary(op: UnaryOp, name: string = op) {
  return defineOp({
    name,
    forward: (x: Tensor) => unaryForward(op, name, x),
    backward: (g, { inputs: [x], out }) => [unaryGrad(op, g, x!, out)],
  });
}

export const neg = unary('neg');
export const exp = unary('exp');
export const log = unary('log');
export const sqrt = unary('sqrt');
export const rsqrt = unary('rsqrt');
export const abs = unary('abs');
export const tanh = unary('tanh');
export const sigmoid = unary('sigmoid');
export const relu = unary('relu');
export const silu = unary('silu');
/** GELU, erf form: BERT `hidden_act: "gelu"`. */
export const gelu = unary('gelu');
/** GELU, tanh approximation: GPT-2 `activation_function: "gelu_new"`. */
export const geluTanh = unary('gelu_tanh', 'geluTanh');
export const erf = unary('erf');
export const sin = unary('sin');
export const cos = unary('cos');
export const square = unary('square');
export const reciprocal = unary('recip', 'reciprocal');
export const sign = unary('sign');

/** x·alpha + beta (the scalar fast path of add/sub/mul). */
export const affine = defineOp({
  name: 'affine',
  forward: (x: Tensor, alpha: number, beta: number) => unaryForward('affine', 'affine', x, alpha, beta),
  backward: (g, { args: [, alpha] }) => [g.mul(alpha)],
});

/** x ** p for a scalar p. */
export const powScalar = defineOp({
  name: 'powScalar',
  forward: (x: Tensor, p: number) => unaryForward('pow_scalar', 'pow', x, p),
  backward: (g, { inputs: [x], out, args: [, p] }) => [unaryGrad('pow_scalar', g, x!, out, p)],
});

/** min(max(x, lo), hi); the gradient passes where lo ≤ x ≤ hi (torch). */
export const clamp = defineOp({
  name: 'clamp',
  forward: (x: Tensor, lo: number, hi: number) => {
    if (Number.isNaN(lo) || Number.isNaN(hi)) throw new Error('clamp: min and max must not be NaN');
    return unaryForward('clamp', 'clamp', x, lo, hi);
  },
  backward: (g, { inputs: [x], out, args: [, lo, hi] }) => [unaryGrad('clamp', g, x!, out, lo, hi)],
});

export const leakyRelu = defineOp({
  name: 'leakyRelu',
  forward: (x: Tensor, slope: number) => unaryForward('leaky_relu', 'leakyRelu', x, slope),
  backward: (g, { inputs: [x], out, args: [, slope] }) => [unaryGrad('leaky_relu', g, x!, out, slope)],
});

// ---------------------------------------------------------------- binary

/** A 0-d constant of the same dtype, used when a number meets a tensor. */
export function scalarLike(v: number, like: Tensor): Tensor {
  return Tensor.full([], v, { dtype: like.dtype });
}

function binaryForward(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  requireFloat(op, a);
  requireFloat(op, b);
  requireSameDtype(op, a, b);
  const shape = shapesEqual(a.shape, b.shape) ? a.shape : broadcastShapes(op, a.shape, b.shape);
  const out = newFloat(shape, a.dtype);
  const va = a.shape === shape ? viewOf(a) : viewAs(a, broadcastStrides(a.shape, a.strides, shape));
  const vb = shapesEqual(b.shape, shape) ? viewOf(b) : viewAs(b, broadcastStrides(b.shape, b.strides, shape));
  backendFor(a.dtype).binary(op, va, vb, shape, out.data as Float32Array);
  return out;
}

const addOp = defineOp({
  name: 'add',
  forward: (a: Tensor, b: Tensor) => binaryForward('add', a, b),
  backward: (g, { inputs: [a, b] }) => [sumTo(g, a!.shape), sumTo(g, b!.shape)],
});
const subOp = defineOp({
  name: 'sub',
  forward: (a: Tensor, b: Tensor) => binaryForward('sub', a, b),
  backward: (g, { inputs: [a, b] }) => [sumTo(g, a!.shape), b!.requiresGrad ? sumTo(g.neg(), b!.shape) : null],
});
const mulOp = defineOp({
  name: 'mul',
  forward: (a: Tensor, b: Tensor) => binaryForward('mul', a, b),
  backward: (g, { inputs: [a, b] }) => [a!.requiresGrad ? sumTo(g.mul(b!), a!.shape) : null, b!.requiresGrad ? sumTo(g.mul(a!), b!.shape) : null],
});
const divOp = defineOp({
  name: 'div',
  forward: (a: Tensor, b: Tensor) => binaryForward('div', a, b),
  backward: (g, { inputs: [a, b], out }) => [
    a!.requiresGrad ? sumTo(g.div(b!), a!.shape) : null,
    b!.requiresGrad ? sumTo(g.mul(out).div(b!).neg(), b!.shape) : null, // d(a/b)/db = -(a/b)/b
  ],
});
const powOp = defineOp({
  name: 'pow',
  forward: (a: Tensor, b: Tensor) => binaryForward('pow', a, b),
  backward: (g, { inputs: [a, b], out }) => [
    a!.requiresGrad ? sumTo(g.mul(b!).mul(a!.pow(b!.sub(1))), a!.shape) : null,
    b!.requiresGrad ? sumTo(g.mul(out).mul(a!.log()), b!.shape) : null,
  ],
});
/** Ties split the gradient equally, as torch.maximum/minimum. */
function extremeGrad(g: Tensor, a: Tensor, b: Tensor, max: boolean): [Tensor | null, Tensor | null] {
  const win = max ? binaryForward('gt', a, b) : binaryForward('lt', a, b);
  const tie = binaryForward('eq', a, b).mul(0.5);
  const wa = win.add(tie);
  const wb = affine(win, -1, 1).sub(tie); // 1 - win - tie/2 … (1 - win) covers lose and tie; minus half the tie
  return [a.requiresGrad ? sumTo(g.mul(wa), a.shape) : null, b.requiresGrad ? sumTo(g.mul(wb), b.shape) : null];
}
const maximumOp = defineOp({
  name: 'maximum',
  forward: (a: Tensor, b: Tensor) => binaryForward('maximum', a, b),
  backward: (g, { inputs: [a, b] }) => extremeGrad(g, a!, b!, true),
});
const minimumOp = defineOp({
  name: 'minimum',
  forward: (a: Tensor, b: Tensor) => binaryForward('minimum', a, b),
  backward: (g, { inputs: [a, b] }) => extremeGrad(g, a!, b!, false),
});

type Operand = Tensor | number;

function asTensor(v: Operand, like: Tensor): Tensor {
  return typeof v === 'number' ? scalarLike(v, like) : v;
}
function checkNumber(op: string, v: unknown): void {
  if (typeof v !== 'number' && !(v instanceof Tensor)) throw new Error(`${op}: expected a Tensor or a number, got ${typeof v}`);
}

/** a + alpha·b */
export function add(a: Operand, b: Operand, alpha = 1): Tensor {
  checkNumber('add', b);
  if (typeof a === 'number') [a, b] = [b as Tensor, a];
  if (typeof b === 'number') return affine(a, 1, b * alpha);
  return addOp(a, alpha === 1 ? b : b.mul(alpha));
}
/** a - alpha·b */
export function sub(a: Operand, b: Operand, alpha = 1): Tensor {
  checkNumber('sub', b);
  if (typeof a === 'number') return affine(b as Tensor, -alpha, a);
  if (typeof b === 'number') return affine(a, 1, -b * alpha);
  return subOp(a, alpha === 1 ? b : b.mul(alpha));
}
export function mul(a: Operand, b: Operand): Tensor {
  checkNumber('mul', b);
  if (typeof a === 'number') [a, b] = [b as Tensor, a];
  if (typeof b === 'number') return affine(a, b, 0);
  return mulOp(a, b);
}
export function div(a: Operand, b: Operand): Tensor {
  checkNumber('div', b);
  if (typeof a === 'number') return divOp(scalarLike(a, b as Tensor), b as Tensor);
  return divOp(a, asTensor(b, a));
}
export function pow(a: Operand, b: Operand): Tensor {
  checkNumber('pow', b);
  if (typeof a === 'number') return powOp(scalarLike(a, b as Tensor), b as Tensor);
  if (typeof b === 'number') return b === 2 ? square(a) : b === 1 ? affine(a, 1, 0) : powScalar(a, b);
  return powOp(a, b);
}
export function maximum(a: Tensor, b: Operand): Tensor {
  return maximumOp(a, asTensor(b, a));
}
export function minimum(a: Tensor, b: Operand): Tensor {
  return minimumOp(a, asTensor(b, a));
}

// Comparisons: not differentiable; the result is a float tensor of 0/1 (of the inputs' dtype) so it can be used
// directly as a mask or multiplier.
function compare(op: BinaryOp) {
  return (a: Tensor, b: Operand): Tensor => binaryForward(op, a, asTensor(b, a));
}
export const eq = compare('eq');
export const ne = compare('ne');
export const lt = compare('lt');
export const le = compare('le');
export const gt = compare('gt');
export const ge = compare('ge');

/** cond ? a : b, broadcasting all three. cond may be any dtype (non-zero = true). */
export const where: Op<[Tensor, Tensor, Tensor]> = defineOp({
  name: 'where',
  inputs: ([, a, b]) => [a, b],
  forward: (cond: Tensor, a: Tensor, b: Tensor) => {
    requireFloat('where', a);
    requireSameDtype('where', a, b);
    const c = isFloatCompute(cond.dtype) && cond.dtype === a.dtype ? cond : cond.to(a.dtype);
    const shape = broadcastShapes('where', broadcastShapes('where', c.shape, a.shape), b.shape);
    const out = newFloat(shape, a.dtype);
    backendFor(a.dtype).where(
      viewAs(c, broadcastStrides(c.shape, c.strides, shape)),
      viewAs(a, broadcastStrides(a.shape, a.strides, shape)),
      viewAs(b, broadcastStrides(b.shape, b.strides, shape)),
      shape,
      out.data as Float32Array,
    );
    return out;
  },
  backward: (g, { args: [cond], inputs: [a, b] }) => {
    const zero = scalarLike(0, g);
    return [
      a!.requiresGrad ? sumTo(where(cond, g, zero), a!.shape) : null,
      b!.requiresGrad ? sumTo(where(cond, zero, g), b!.shape) : null,
    ];
  },
});

/** x where mask is zero, value where mask is non-zero (mask broadcasts to x). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  const out = where(mask, scalarLike(value, x), x);
  if (!shapesEqual(out.shape, x.shape)) throw new Error(`maskedFill: mask of shape [${mask.shape}] does not broadcast to the input shape [${x.shape}]`);
  return out;
}

// ---------------------------------------------------------------- dtype casts

/** Cast to another dtype. Differentiable between float32 and float64 (the gradient is cast back). */
export const toDtype = defineOp({
  name: 'to',
  inputs: ([x, dtype]) => (isFloatCompute(x.dtype) && isFloatCompute(dtype) ? [x] : []),
  forward: (x: Tensor, dtype: DType) => {
    const c = x.contiguous();
    const src = c.data.subarray(c.offset, c.offset + c.numel);
    return new Tensor(convertArray(src, x.dtype, dtype), x.shape, dtype);
  },
  backward: (g, { inputs: [x] }) => [g.to(x!.dtype)],
});

export { BINARY_OPS };
