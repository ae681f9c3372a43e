/**
 * Quantization-aware training (Jacob et al. 2018; torch.ao's FakeQuantize): during fine-tuning every targeted
 * Linear runs on fake-quantized weights — quantize then dequantize with the exact scheme the integer model will
 * use — and, for int8-dynamic, on fake-quantized activations (per token, in the integer kernel's range:
 * int8ActivationMax(), 8-bit codes with VNNI, 7-bit on AVX2). Gradients pass straight through (STE: d fq(x)/dx = 1). Scales are recomputed from the current values every step, so no
 * value ever falls outside its range and the STE needs no clipping mask. `convertQat` then swaps each
 * FakeQuantLinear for a QuantLinear quantized with the same function, so the converted integer model computes
 * what the QAT model computed at the end of training.
 */
import { Module } from '../../nn/module.ts';
import { Conv1D, Linear } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { linear } from '../../ops/matmul.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { matchesAny } from '../select.ts';
import { QuantLinear, dequantize, type QuantScheme } from './modules.ts';
import { quantizeWeight, type WeightQuantSpec } from './rtn.ts';
import { quantizeActivationsPerToken } from './kernels.ts';

export interface QatOptions {
  scheme: QuantScheme;
  bits?: number;
  groupSize?: number;
  /** Globs over module names; default every Linear / Conv1D. */
  targets?: string[];
  ignore?: string[];
}

export function qatSpec(o: QatOptions): WeightQuantSpec {
  if (o.scheme === 'int8-static') throw new Error('QAT supports the int8, int8-dynamic and int4 schemes (calibrate int8-static after training with shrink quantize)');
  if (o.scheme === 'int4') {
    const bits = o.bits ?? 4;
    if (![2, 3, 4].includes(bits)) throw new Error(`QAT int4: bits must be 2, 3 or 4, got ${bits}`);
    return { bits, granularity: 'group', groupSize: o.groupSize ?? 64, symmetric: false };
  }
  return { bits: 8, granularity: 'channel', symmetric: true };
}

/** x + (q(x) − x).detach(): the value of q(x), the gradient of x. */
function straightThrough(x: Tensor, q: Tensor): Tensor {
  return x.add(q.sub(x.detach()).detach());
}

/** Fake-quantized activations, per token, exactly as the int8-dynamic kernel quantizes them. */
export function fakeQuantActivations(x: Tensor): Tensor {
  const K = x.shape[x.ndim - 1]!;
  const M = x.numel / K;
  const q = noGrad(() => {
    const xd = x.contiguous().data as Float32Array;
    const { q: codes, scale, zero } = quantizeActivationsPerToken(xd, M, K);
    const out = new Float32Array(M * K);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) out[m * K + k] = Math.fround((codes[m * K + k]! - zero[m]!) * scale[m]!);
    return new Tensor(out, x.shape, 'float32');
  });
  return straightThrough(x, q);
}

/** A Linear (or Conv1D, transposed) training on fake-quantized weights [out, in]. */
export class FakeQuantLinear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  constructor(
    weight: Tensor,
    bias: Tensor | null,
    readonly scheme: QuantScheme,
    readonly spec: WeightQuantSpec,
    readonly name = 'weight',
    readonly origin: 'linear' | 'conv1d' = 'linear',
  ) {
    super();
    this.weight = weight;
    this.bias = bias;
  }
  /** The weight as the integer model will hold it (a fresh quantization of the current values). */
  quantized() {
    const [N, K] = this.weight.shape as [number, number];
    return quantizeWeight(this.name, this.weight.contiguous().data as Float32Array, N, K, this.spec);
  }
  forward(x: Tensor): Tensor {
    const wq = noGrad(() => dequantize(this.quantized()));
    const w = straightThrough(this.weight, wq);
    return linear(this.scheme === 'int8-dynamic' ? fakeQuantActivations(x) : x, w, this.bias);
  }
}

/**
 * Swap targeted Linear / Conv1D modules for FakeQuantLinear (Linear weights are shared, so an optimizer built
 * afterwards trains them; a Conv1D's [in, out] weight becomes a new [out, in] leaf). Heads tied to an embedding
 * and layers whose width the group size does not divide stay in float. Returns the swapped names.
 */
export function prepareQat(model: Module, o: QatOptions): string[] {
  const spec = qatSpec(o);
  const tied = new Set(Object.entries(model.tiedKeys()).flat());
  const names: string[] = [];
  for (const [name, m] of model.namedModules()) {
    if (name === '' || (o.targets && !matchesAny(name, o.targets)) || (o.ignore && matchesAny(name, o.ignore))) continue;
    if (!(m instanceof Linear || m instanceof Conv1D) || tied.has(`${name}.weight`)) continue;
    const K = m instanceof Linear ? m.weight.shape[1]! : m.weight.shape[0]!;
    if (spec.granularity === 'group' && K % spec.groupSize! !== 0) continue;
    names.push(name);
  }
  for (const name of names) {
    const m = model.getSubmodule(name) as Linear | Conv1D;
    const w = m instanceof Linear ? m.weight : noGrad(() => m.weight.t().contiguous()).requiresGrad_();
    model.setSubmodule(name, new FakeQuantLinear(w, m.bias, o.scheme, spec, `${name}.weight`, m instanceof Linear ? 'linear' : 'conv1d'));
  }
  return names;
}

/** Swap every FakeQuantLinear for the QuantLinear it trained toward. */
export function convertQat(model: Module): string[] {
  const done: string[] = [];
  for (const [name, m] of model.namedModules())
    if (m instanceof FakeQuantLinear) {
      const ql = new QuantLinear(m.scheme, m.quantized(), m.bias ? m.bias.detach() : null);
      ql.origin = m.origin;
      model.setSubmodule(name, ql);
      done.push(name);
    }
  return done;
}
