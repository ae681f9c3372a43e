// Quantization-aware training: fake-quant forward with a straight-through gradient, and conversion to the integer
// model that computes the same function.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, Generator, Linear, Module, Tensor, manualSeed, noGrad } from '../../src/index.ts';
import { FakeQuantLinear, convertQat, fakeQuantActivations, prepareQat } from '../../src/compress/quant/qat.ts';
import { QuantLinear, dequantize } from '../../src/compress/quant/modules.ts';
import { expectClose } from '../harness/expect.ts';

class Mlp extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor() {
    super();
    this.fc1 = new Linear(64, 128);
    this.fc2 = new Linear(128, 8);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).relu());
  }
}

const g = new Generator(4);
const input = (M: number, K: number) => new Tensor(Float32Array.from({ length: M * K }, () => g.normal()), [M, K], 'float32');

for (const [scheme, tol] of [['int8', 1e-5], ['int4', 1e-5], ['int8-dynamic', 1e-4]] as const)
  test(`QAT ${scheme}: the converted integer model computes what the fake-quant model computes`, () => {
    manualSeed(1);
    const m = new Mlp();
    const names = prepareQat(m, { scheme, groupSize: 32 });
    assert.deepEqual(names, ['fc1', 'fc2']);
    assert.ok(m.fc1 instanceof FakeQuantLinear);
    const x = input(6, 64);
    const fq = noGrad(() => m.forward(x));
    convertQat(m);
    assert.ok(m.fc1 instanceof QuantLinear && m.fc2 instanceof QuantLinear);
    expectClose(noGrad(() => m.forward(x)), fq, { atol: tol, rtol: tol }, scheme);
  });

test('the straight-through estimator passes the gradient of the quantized layer to the float weights', () => {
  manualSeed(2);
  const lin = new Linear(64, 16);
  const fq = new FakeQuantLinear(lin.weight, lin.bias, 'int4', { bits: 4, granularity: 'group', groupSize: 32, symmetric: false });
  const x = input(5, 64).requiresGrad_();
  fq.forward(x).square().sum().backward();
  // reference: a plain linear on the dequantized weight
  const wq = dequantize(fq.quantized()).requiresGrad_();
  const x2 = x.detach().requiresGrad_();
  const b2 = lin.bias!.detach().requiresGrad_();
  x2.matmul(wq.t()).add(b2).square().sum().backward();
  expectClose(lin.weight.grad!, wq.grad!, { atol: 1e-5, rtol: 1e-5 }, 'weight grad');
  expectClose(x.grad!, x2.grad!, { atol: 1e-5, rtol: 1e-5 }, 'input grad');
  // activations: values are the kernel's per-token grid (int8ActivationMax), gradient is the identity
  const a = input(3, 40).requiresGrad_();
  const fa = fakeQuantActivations(a);
  assert.ok(fa.sub(a).abs().max().item() > 0);
  fa.sum().backward();
  assert.ok((a.grad!.data as Float32Array).every((v) => v === 1));
});

test('QAT fine-tuning lowers the error of a 3-bit model well below its round-to-nearest start', () => {
  manualSeed(3);
  const teacher = new Mlp();
  const x = input(256, 64);
  const y = noGrad(() => teacher.forward(x));
  const student = new Mlp();
  student.loadStateDict(teacher.stateDict());
  prepareQat(student, { scheme: 'int4', bits: 3, groupSize: 32 });
  const loss = () => student.forward(x).sub(y).square().mean();
  const start = noGrad(() => loss().item());
  const opt = new AdamW(student.parameters(), { lr: 1e-3, weightDecay: 0 });
  for (let i = 0; i < 300; i++) {
    opt.zeroGrad();
    loss().backward();
    opt.step();
  }
  convertQat(student);
  const end = noGrad(() => student.forward(x).sub(y).square().mean().item());
  assert.ok(end < 0.7 * start, `3-bit loss after QAT ${end} vs RTN ${start}`);
});
