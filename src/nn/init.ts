/**
 * Parameter initialisers (torch.nn.init), in place, with an optional Generator. They write storage directly and
 * record no graph. float16/bfloat16 tensors are filled through a float32 copy.
 */
import { Tensor } from '../tensor/tensor.ts';
import { defaultGenerator, type Generator } from '../tensor/random.ts';

let skipInit = false;

/**
 * Build modules without initialising their parameters (HF's `init_empty_weights` / torch's meta device, in
 * spirit): the initialisers leave storage untouched, so big fresh arrays cost no resident memory until a
 * checkpoint is copied in. Used when every weight is about to be loaded anyway.
 */
export function withoutInit<T>(fn: () => T): T {
  const prev = skipInit;
  skipInit = true;
  try {
    return fn();
  } finally {
    skipInit = prev;
  }
}

function fill(t: Tensor, f: () => number): Tensor {
  if (skipInit) return t;
  if (!t.isContiguous()) throw new Error('init: the tensor must be contiguous');
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
    return t.copy_(fill(Tensor.empty(t.shape), f));
  }
  if (t.dtype !== 'float32' && t.dtype !== 'float64') throw new Error(`init: expected a floating-point tensor, got ${t.dtype}`);
  const d = t.data;
  const hi = t.offset + t.numel;
  for (let i = t.offset; i < hi; i++) d[i] = f();
  return t;
}

export const normal_ = (t: Tensor, mean = 0, std = 1, g: Generator = defaultGenerator) => fill(t, () => mean + std * g.normal());
export const uniform_ = (t: Tensor, a = 0, b = 1, g: Generator = defaultGenerator) => fill(t, () => a + (b - a) * g.random());
export const constant_ = (t: Tensor, value: number) => fill(t, () => value);
export const zeros_ = (t: Tensor) => fill(t, () => 0);
export const ones_ = (t: Tensor) => fill(t, () => 1);
/** Normal(mean, std) redrawn until inside [a, b] (torch trunc_normal_ with absolute bounds a, b). */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2, g: Generator = defaultGenerator): Tensor {
  if (!(a < b)) throw new Error(`truncNormal_: need a < b, got [${a}, ${b}]`);
  return fill(t, () => {
    for (let tries = 0; tries < 1000; tries++) {
      const v = mean + std * g.normal();
      if (v >= a && v <= b) return v;
    }
    return Math.min(b, Math.max(a, mean)); // [a, b] far in a tail: clamp instead of looping forever
  });
}

/** fan_in, fan_out of a weight [out, in, ...] as torch computes them. */
export function fans(t: Tensor): [number, number] {
  if (t.ndim < 2) throw new Error(`init: fan in/out need at least 2 dims, got [${t.shape}]`);
  const rf = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return [t.shape[1]! * rf, t.shape[0]! * rf];
}
/** U(±gain·√(6 / (fan_in + fan_out))). */
export function xavierUniform_(t: Tensor, gain = 1, g: Generator = defaultGenerator): Tensor {
  const [fi, fo] = fans(t);
  const a = gain * Math.sqrt(6 / (fi + fo));
  return uniform_(t, -a, a, g);
}
/** N(0, gain²·2 / (fan_in + fan_out)). */
export function xavierNormal_(t: Tensor, gain = 1, g: Generator = defaultGenerator): Tensor {
  const [fi, fo] = fans(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fi + fo)), g);
}
/** kaiming_uniform_ (fan_in mode) with leaky-relu slope a (torch's Linear default uses a = √5 ⇒ bound 1/√fan_in). */
export function kaimingUniform_(t: Tensor, a = 0, g: Generator = defaultGenerator): Tensor {
  const [fi] = fans(t);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fi);
  return uniform_(t, -bound, bound, g);
}
/** kaiming_normal_ (fan_in mode): N(0, (gain/√fan_in)²), gain = √(2 / (1 + a²)). */
export function kaimingNormal_(t: Tensor, a = 0, g: Generator = defaultGenerator): Tensor {
  const [fi] = fans(t);
  return normal_(t, 0, Math.sqrt(2 / (1 + a * a)) / Math.sqrt(fi), g);
}
