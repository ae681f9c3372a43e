/** Helpers shared by the op families: dtype checks, backend choice, views, output allocation. */
import type { Backend, View } from '../backend/backend.ts';
import { backend, refBackend } from '../backend/registry.ts';
import { allocArray, isFloatCompute, type DType, type FloatArray } from '../tensor/dtype.ts';
import { Tensor } from '../tensor/tensor.ts';
import { fmtShape, numel } from '../tensor/shape.ts';

/** float64 always runs on ref; float32 on the active backend. */
export function backendFor(dtype: DType): Backend {
  return dtype === 'float64' ? refBackend : backend();
}

export function requireFloat(op: string, t: Tensor, what = 'input'): void {
  if (!isFloatCompute(t.dtype)) throw new Error(`${op}: expected a float32 or float64 ${what}, got ${t.dtype}`);
}

export function requireSameDtype(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtypes differ (${a.dtype} and ${b.dtype}); convert one with .to()`);
}

export function requireInt(op: string, t: Tensor, what = 'index'): void {
  if (t.dtype !== 'int32' && t.dtype !== 'int8' && t.dtype !== 'uint8')
    throw new Error(`${op}: expected an integer ${what} tensor (int32), got ${t.dtype}`);
}

export function viewOf(t: Tensor): View {
  return { data: t.data as FloatArray, offset: t.offset, strides: t.strides };
}

export function viewAs(t: Tensor, strides: readonly number[]): View {
  return { data: t.data as FloatArray, offset: t.offset, strides };
}

/** A new contiguous float tensor of `shape` and `dtype` (uninitialised = zeros). */
export function newFloat(shape: readonly number[], dtype: DType): Tensor {
  return new Tensor(floatArray(dtype, numel(shape)), shape, dtype);
}

export function floatArray(dtype: DType, n: number): FloatArray {
  return allocArray(dtype === 'float64' ? 'float64' : 'float32', n) as FloatArray;
}

/** Contiguous int32 indices of an integer tensor, validated in [-bound, bound) (negatives wrap) or equal to `ignore`. */
export function indexData(op: string, t: Tensor, bound: number, allowNegative = true, ignore?: number): Int32Array {
  requireInt(op, t);
  const c = t.contiguous();
  const src = c.data.subarray(c.offset, c.offset + c.numel);
  let out: Int32Array = src instanceof Int32Array ? src : Int32Array.from(src);
  let owned = !(src instanceof Int32Array);
  for (let i = 0; i < out.length; i++) {
    const v = out[i]!;
    if (v === ignore) continue;
    if (allowNegative && v < 0 && v >= -bound) {
      if (!owned) {
        out = out.slice();
        owned = true;
      }
      out[i] = v + bound;
      continue;
    }
    if (v < 0 || v >= bound) throw new Error(`${op}: index ${v} is out of range for dimension with size ${bound} (at flat position ${i})`);
  }
  return out;
}

export function shapeErr(op: string, msg: string, ...shapes: (readonly number[])[]): Error {
  return new Error(`${op}: ${msg} (${shapes.map(fmtShape).join(' and ')})`);
}
