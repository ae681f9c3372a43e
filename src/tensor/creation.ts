/** torch-style creation functions (thin wrappers over the Tensor statics). */
import type { Generator } from './random.ts';
import { Tensor, type TensorOptions } from './tensor.ts';

export const zeros = (shape: readonly number[], opts?: TensorOptions): Tensor => Tensor.zeros(shape, opts);
export const ones = (shape: readonly number[], opts?: TensorOptions): Tensor => Tensor.ones(shape, opts);
export const full = (shape: readonly number[], value: number, opts?: TensorOptions): Tensor => Tensor.full(shape, value, opts);
export const empty = (shape: readonly number[], opts?: TensorOptions): Tensor => Tensor.empty(shape, opts);
export const arange = (start: number, end?: number, step = 1, opts?: TensorOptions): Tensor => Tensor.arange(start, end, step, opts);
export const rand = (shape: readonly number[], opts?: TensorOptions & { generator?: Generator }): Tensor => Tensor.rand(shape, opts);
export const randn = (shape: readonly number[], opts?: TensorOptions & { generator?: Generator }): Tensor => Tensor.randn(shape, opts);
export const randint = (low: number, high: number, shape: readonly number[], opts?: TensorOptions & { generator?: Generator }): Tensor =>
  Tensor.randint(low, high, shape, opts);
export const zerosLike = (t: Tensor, opts?: TensorOptions): Tensor => Tensor.zeros(t.shape, { dtype: t.dtype, ...opts });
export const onesLike = (t: Tensor, opts?: TensorOptions): Tensor => Tensor.ones(t.shape, { dtype: t.dtype, ...opts });
export const fullLike = (t: Tensor, value: number, opts?: TensorOptions): Tensor => Tensor.full(t.shape, value, { dtype: t.dtype, ...opts });
export const randnLike = (t: Tensor, opts?: TensorOptions & { generator?: Generator }): Tensor => Tensor.randn(t.shape, { dtype: t.dtype, ...opts });
/** Identity matrix n×m. */
export function eye(n: number, m = n, opts?: TensorOptions): Tensor {
  const t = Tensor.zeros([n, m], opts);
  for (let i = 0; i < Math.min(n, m); i++) t.data[i * m + i] = 1;
  return t;
}
/** n evenly spaced values from start to end inclusive. */
export function linspace(start: number, end: number, steps: number, opts?: TensorOptions): Tensor {
  const t = Tensor.empty([steps], opts);
  for (let i = 0; i < steps; i++) t.data[i] = steps === 1 ? start : start + ((end - start) * i) / (steps - 1);
  return t;
}
