/**
 * Scalar reference math: the definitions the `ref` backend applies element by element, and the derivatives its
 * backward kernels use. Accurate in float64 (gradient checks run in float64 on these).
 */
import type { BinaryOp, UnaryOp } from '../backend.ts';

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_TANH_C = Math.sqrt(2 / Math.PI);

/**
 * erf(x) to ~1e-15: Maclaurin series below |x| = 3 (at most ~3 digits of cancellation), Lentz continued fraction
 * for erfc above.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 3) {
    // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax > 6) return x > 0 ? 1 : -1;
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), modified Lentz
  const tiny = 1e-300;
  let f = ax;
  let C = ax;
  let D = 0;
  for (let k = 1; k < 300; k++) {
    const a = k / 2;
    D = ax + a * D;
    D = D === 0 ? tiny : 1 / D;
    C = ax + a / C;
    if (C === 0) C = tiny;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** f(x) for each unary op. */
export function unaryFn(op: UnaryOp, alpha: number, beta: number): (x: number) => number {
  switch (op) {
    case 'copy': return (x) => x;
    case 'neg': return (x) => -x;
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'rsqrt': return (x) => 1 / Math.sqrt(x);
    case 'abs': return Math.abs;
    case 'tanh': return Math.tanh;
    case 'sigmoid': return sigmoid;
    case 'relu': return (x) => (x > 0 ? x : x === x ? 0 : x);
    case 'silu': return (x) => x * sigmoid(x);
    case 'gelu': return (x) => 0.5 * x * (1 + erf(x * INV_SQRT2));
    case 'gelu_tanh': return (x) => 0.5 * x * (1 + Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x)));
    case 'erf': return erf;
    case 'affine': return (x) => x * alpha + beta;
    case 'pow_scalar': return (x) => x ** alpha;
    case 'clamp': return (x) => (x < alpha ? alpha : x > beta ? beta : x);
    case 'recip': return (x) => 1 / x;
    case 'square': return (x) => x * x;
    case 'sin': return Math.sin;
    case 'cos': return Math.cos;
    case 'sign': return (x) => (x > 0 ? 1 : x < 0 ? -1 : x === x ? 0 : x);
    case 'leaky_relu': return (x) => (x >= 0 ? x : alpha * x);
  }
}

/** f'(x) given x and y = f(x), for each unary op (gradient conventions as torch: relu'(0) = 0, |x|'(0) = 0). */
export function unaryDeriv(op: UnaryOp, alpha: number, beta: number): (x: number, y: number) => number {
  switch (op) {
    case 'copy': return () => 1;
    case 'neg': return () => -1;
    case 'exp': return (_x, y) => y;
    case 'log': return (x) => 1 / x;
    case 'sqrt': return (_x, y) => 0.5 / y;
    case 'rsqrt': return (_x, y) => -0.5 * y * y * y;
    case 'abs': return (x) => (x > 0 ? 1 : x < 0 ? -1 : 0);
    case 'tanh': return (_x, y) => 1 - y * y;
    case 'sigmoid': return (_x, y) => y * (1 - y);
    case 'relu': return (x) => (x > 0 ? 1 : 0);
    case 'silu': return (x) => {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    };
    case 'gelu': return (x) => 0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case 'gelu_tanh': return (x) => {
      const t = Math.tanh(GELU_TANH_C * (x + 0.044715 * x * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_C * (1 + 3 * 0.044715 * x * x);
    };
    case 'erf': return (x) => TWO_OVER_SQRT_PI * Math.exp(-x * x);
    case 'affine': return () => alpha;
    case 'pow_scalar': return (x) => (alpha === 0 ? 0 : alpha * x ** (alpha - 1));
    case 'clamp': return (x) => (x >= alpha && x <= beta ? 1 : 0);
    case 'recip': return (_x, y) => -y * y;
    case 'square': return (x) => 2 * x;
    case 'sin': return Math.cos;
    case 'cos': return (x) => -Math.sin(x);
    case 'sign': return () => 0;
    case 'leaky_relu': return (x) => (x > 0 ? 1 : alpha);
  }
}

export function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'pow': return (a, b) => a ** b;
    case 'maximum': return (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b);
    case 'minimum': return (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b);
    case 'eq': return (a, b) => (a === b ? 1 : 0);
    case 'ne': return (a, b) => (a !== b ? 1 : 0);
    case 'lt': return (a, b) => (a < b ? 1 : 0);
    case 'le': return (a, b) => (a <= b ? 1 : 0);
    case 'gt': return (a, b) => (a > b ? 1 : 0);
    case 'ge': return (a, b) => (a >= b ? 1 : 0);
  }
}
