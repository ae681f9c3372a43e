/** Parameter initialisers (torch.nn.init), in place, with an optional Generator. */
import type { Tensor } from '../tensor/tensor.ts';
import { defaultGenerator, type Generator } from '../tensor/random.ts';

function fill(t: Tensor, f: () => number): Tensor {
  if (!t.isContiguous()) throw new Error('init: the tensor must be contiguous');
  const d = t.data;
  const hi = t.offset + t.numel;
  for (let i = t.offset; i < hi; i++) d[i] = f();
  return t;
}

export const normal_ = (t: Tensor, mean = 0, std = 1, g: Generator = defaultGenerator) => fill(t, () => mean + std * g.normal());
export const uniform_ = (t: Tensor, a = 0, b = 1, g: Generator = defaultGenerator) => fill(t, () => a + (b - a) * g.random());
export const zeros_ = (t: Tensor) => fill(t, () => 0);
export const ones_ = (t: Tensor) => fill(t, () => 1);
/** Normal(mean, std) redrawn until inside [a, b] (torch trunc_normal_ with absolute bounds). */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2, g: Generator = defaultGenerator): Tensor {
  return fill(t, () => {
    for (;;) {
      const v = mean + std * g.normal();
      if (v >= a && v <= b) return v;
    }
  });
}

/** fan_in, fan_out of a weight [out, in, ...] as torch computes them. */
export function fans(t: Tensor): [number, number] {
  if (t.ndim < 2) throw new Error(`init: fan in/out need at least 2 dims, got [${t.shape}]`);
  const rf = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return [t.shape[1]! * rf, t.shape[0]! * rf];
}
export function xavierUniform_(t: Tensor, gain = 1, g: Generator = defaultGenerator): Tensor {
  const [fi, fo] = fans(t);
  const a = gain * Math.sqrt(6 / (fi + fo));
  return uniform_(t, -a, a, g);
}
/** kaiming_uniform_ with leaky-relu slope a (torch's Linear default uses a = √5 ⇒ bound 1/√fan_in). */
export function kaimingUniform_(t: Tensor, a = 0, g: Generator = defaultGenerator): Tensor {
  const [fi] = fans(t);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fi);
  return uniform_(t, -bound, bound, g);
}
