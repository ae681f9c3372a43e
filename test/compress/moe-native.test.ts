// The native MoE dispatch (native/moe.cc, moeFfn) against the TypeScript dispatch of MoELayer (its spec) on random
// layers: top-1, top-2 and top-E, capacity drops, padding tokens, softmax and 'one' gates, expert biases and the
// layer's output bias, every activation MoEExpert accepts (on the AVX2 path and the portable one), odd widths,
// experts of different widths, token counts from 1 to 300 (the expert-parallel and GEMM-parallel schedules), with
// identical routing statistics. route's gates without autograd against its tensor-op gates. Then the cases that must
// keep the TypeScript dispatch (training, a gradient to record, float64, token dropout, 'scaled_input', hooked or
// replaced Linears, mixed activations), that gradients still flow in training, and the kernel's argument checks.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, noGrad } from '../../src/index.ts';
import { Linear } from '../../src/nn/layers.ts';
import { registerForwardHook } from '../../src/nn/hooks.ts';
import { nativeAddon } from '../../src/backend/registry.ts';
import { MoEExpert, MoELayer, ROUTING_DEFAULTS, moeAddon, route, type MoELayerOptions } from '../../src/compress/moe/layer.ts';

const addon = moeAddon();
const skip = addon ? false : 'the native backend with the MoE kernel (native/moe.cc) is not available: run npm run build:native';

const g = new Generator(17);

// Count the kernel's calls (the addon object is shared, so wrapping its property sees every call).
let calls = 0;
if (addon) {
  const orig = addon.moeFfn.bind(addon);
  (addon as { moeFfn: typeof orig }).moeFfn = (...a: Parameters<typeof orig>) => {
    calls++;
    return orig(...a);
  };
}

interface Build {
  D: number;
  widths: number[];
  k: number;
  act?: string;
  upBias?: boolean;
  downBias?: boolean;
  layerBias?: boolean;
  opts?: Partial<MoELayerOptions>;
}

function build(b: Build): MoELayer {
  const experts = b.widths.map(
    (f) => new MoEExpert(new Linear(b.D, f, { bias: b.upBias ?? true, generator: g }), new Linear(f, b.D, { bias: b.downBias ?? true, generator: g }), b.act ?? 'gelu'),
  );
  const bias = b.layerBias ? Tensor.randn([b.D], { generator: g }).mul(0.1).requiresGrad_() : null;
  return new MoELayer(new Linear(b.D, b.widths.length, { bias: false, generator: g }), experts, { topK: b.k, ...b.opts }, bias).eval();
}

const statsOf = (l: MoELayer) => ({ tokens: l.stats.tokens, slots: l.stats.slots, kept: l.stats.kept, load: Array.from(l.stats.load) });

/** Native forward (asserting the kernel ran), then the TypeScript one on the same input: outputs and stats. */
function compare(l: MoELayer, x: Tensor, what: string, padding?: number[]): void {
  l.resetStats();
  const before = calls;
  l._padding = padding ?? null;
  const a = noGrad(() => l.forward(x));
  assert.equal(calls, before + 1, `${what}: the native kernel did not run`);
  const sa = statsOf(l);
  l.resetStats();
  l._native = false;
  l._padding = padding ?? null;
  const b = noGrad(() => l.forward(x));
  l._native = true;
  assert.equal(calls, before + 1, `${what}: _native = false still ran the kernel`);
  assert.deepEqual(sa, statsOf(l), `${what}: routing statistics differ`);
  assert.deepEqual(a.shape, b.shape);
  assert.equal(a.dtype, 'float32');
  const av = a.toFloat32Array(), bv = b.toFloat32Array();
  let scale = 0;
  for (const v of bv) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < av.length; i++)
    if (!(Math.abs(av[i]! - bv[i]!) <= 1e-5 * (Math.abs(bv[i]!) + 0.1 * scale))) assert.fail(`${what}: out[${i}] native ${av[i]} vs TypeScript ${bv[i]}`);
}

const ACTS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu', 'swish', 'tanh'];

// The kernel's two product paths: dot products for experts with few rows (_moeSkinnyRows, default 8), the packed
// SGEMM above; each suite runs with the default and with each path forced.
const skinny = (n?: number): number => (addon as unknown as { _moeSkinnyRows(n?: number): number })._moeSkinnyRows(n);
const defaultSkinny = addon ? skinny() : 0;
for (const [label, rows] of [['default paths', defaultSkinny], ['packed SGEMM only', 0], ['dot products only', 1 << 20]] as const)
describe(`moeFfn vs the TypeScript dispatch (${label})`, { skip }, () => {
  before(() => void skinny(rows));
  after(() => void skinny(defaultSkinny));
  for (const simd of [true, false]) {
    test(`every activation, top-1 / top-2 / top-E (${simd ? 'SIMD' : 'portable'} activations)`, () => {
      const a = nativeAddon()!;
      a.setSimd(simd);
      try {
        for (const act of ACTS)
          for (const k of [1, 2, 4]) {
            const l = build({ D: 24, widths: [16, 16, 16, 16], k, act, opts: { evalCapacityFactor: 0 } });
            compare(l, Tensor.randn([2, 9, 24], { generator: g }), `${act} top-${k}`);
          }
      } finally {
        a.setSimd(true);
      }
    });
  }

  test('capacity drops (fixed capacity and eval capacity factor), batch-prioritized, padding tokens', () => {
    for (const k of [1, 2, 3]) {
      compare(build({ D: 20, widths: [12, 12, 12, 12], k, opts: { capacity: 2 } }), Tensor.randn([3, 7, 20], { generator: g }), `capacity 2 top-${k}`);
      compare(build({ D: 20, widths: [12, 12, 12, 12], k, opts: { evalCapacityFactor: 0.5, minCapacity: 1, batchPrioritized: true } }), Tensor.randn([2, 10, 20], { generator: g }), `cf 0.5 top-${k}`);
      const pad = Array.from({ length: 12 }, (_, i) => (i % 5 === 3 ? 1 : 0));
      compare(build({ D: 20, widths: [12, 12, 12, 12], k, opts: { capacity: 3 } }), Tensor.randn([2, 6, 20], { generator: g }), `padding top-${k}`, pad);
    }
  });

  test('gates: softmax (renormalised over kept or all choices) and one; biases on and off', () => {
    for (const gate of ['softmax', 'one'] as const)
      for (const normalizeBeforeDropping of [false, true])
        for (const [upBias, downBias, layerBias] of [[true, true, false], [false, false, false], [false, true, true], [true, false, true]] as const)
          compare(
            build({ D: 16, widths: [8, 8, 8, 8, 8, 8], k: 2, upBias, downBias, layerBias, act: 'relu', opts: { gate, normalizeBeforeDropping, capacity: 3 } }),
            Tensor.randn([2, 8, 16], { generator: g }),
            `${gate} nbd=${normalizeBeforeDropping} bias ${upBias}/${downBias}/${layerBias}`,
          );
  });

  test('odd widths, experts of different widths, groups all, 1 to 300 tokens', () => {
    compare(build({ D: 37, widths: [5, 19, 33, 8, 1], k: 2, act: 'silu', opts: { evalCapacityFactor: 0 } }), Tensor.randn([1, 37], { generator: g }), 'D 37, one token');
    compare(build({ D: 37, widths: [5, 19, 33, 8, 1], k: 2, act: 'silu', opts: { groups: 'all', capacity: 4 } }), Tensor.randn([3, 11, 37], { generator: g }), 'D 37, groups all');
    compare(build({ D: 1, widths: [3, 3], k: 1, opts: { evalCapacityFactor: 0 } }), Tensor.randn([5, 1], { generator: g }), 'D 1');
    // Enough work for the threaded schedules: 8 experts one per thread, and one dominant expert (threaded GEMMs).
    compare(build({ D: 96, widths: Array(8).fill(64), k: 2, layerBias: true, opts: { evalCapacityFactor: 0 } }), Tensor.randn([300, 96], { generator: g }), '300 tokens, 8 experts');
    compare(build({ D: 96, widths: [256, 4], k: 1, opts: { evalCapacityFactor: 0 } }), Tensor.randn([2, 150, 96], { generator: g }), '300 tokens, unequal experts');
    compare(build({ D: 64, widths: Array(8).fill(32), k: 8, act: 'gelu_new', opts: { evalCapacityFactor: 0 } }), Tensor.randn([64, 64], { generator: g }), 'top-8 of 8');
  });

  test('an eval forward under noGrad and with parameters not requiring grad both run natively; a 0-token call too', () => {
    const l = build({ D: 16, widths: [8, 8, 8], k: 2 });
    const before = calls;
    noGrad(() => l.forward(Tensor.randn([4, 16], { generator: g })));
    l.requiresGrad_(false);
    const y = l.forward(Tensor.randn([4, 16], { generator: g }));
    assert.equal(y.requiresGrad, false);
    assert.equal(calls, before + 2);
    const z = noGrad(() => l.forward(Tensor.zeros([0, 16])));
    assert.deepEqual(z.shape, [0, 16]);
  });
});

test('route: the softmax gates without autograd equal the tensor-op gates bit for bit (float32 and float64)', () => {
  for (const dtype of ['float32', 'float64'] as const)
    for (const k of [1, 2, 3, 6])
      for (const normalizeBeforeDropping of [false, true]) {
        const o = { ...ROUTING_DEFAULTS, numExperts: 6, topK: k, capacity: 3, normalizeBeforeDropping };
        const logits = Tensor.randn([2, 9, 6], { generator: g, dtype }).mul(3);
        const withGrad = route(logits.detach().requiresGrad_(), o, { training: false });
        assert.ok(withGrad.gates!.requiresGrad);
        const plain = noGrad(() => route(logits, o, { training: false }));
        assert.deepEqual(Array.from(plain.choice), Array.from(withGrad.choice));
        assert.deepEqual(Array.from(plain.kept), Array.from(withGrad.kept));
        assert.equal(plain.gates!.dtype, dtype);
        assert.deepEqual(Array.from(plain.gates!.toArray() as Float32Array), Array.from(noGrad(() => withGrad.gates!.toArray()) as Float32Array), `${dtype} top-${k} nbd=${normalizeBeforeDropping}`);
      }
});

describe('the TypeScript dispatch keeps the cases the kernel does not cover', { skip }, () => {
  test('training: autograd path, gradients reach the experts, the router and the input', () => {
    const l = build({ D: 16, widths: [8, 8, 8, 8], k: 2, layerBias: true, opts: { capacity: 3 } }).train();
    const x = Tensor.randn([2, 6, 16], { generator: g }).requiresGrad_();
    const before = calls;
    const y = l.forward(x);
    assert.equal(calls, before, 'training ran the kernel');
    y.square().sum().backward();
    assert.ok(x.grad && x.grad.abs().sum().item() > 0, 'no gradient reached the input');
    assert.ok(l.router.weight.grad && l.router.weight.grad.abs().sum().item() > 0, 'no gradient reached the router');
    const used = l.experts.filter((e) => e.up.weight.grad && e.up.weight.grad.abs().sum().item() > 0);
    assert.ok(used.length >= 2, 'gradients reached fewer than 2 experts');
    assert.ok(l.bias!.grad, 'no gradient reached the output bias');
  });

  test('eval with gradients enabled (parameters requiring grad): autograd path, the output requires grad', () => {
    const l = build({ D: 16, widths: [8, 8, 8], k: 2 });
    const before = calls;
    const y = l.forward(Tensor.randn([4, 16], { generator: g }));
    assert.equal(calls, before);
    assert.equal(y.requiresGrad, true);
    y.sum().backward();
    assert.ok(l.experts.some((e) => e.down.weight.grad !== null));
  });

  test('float64 input, token dropout, scaled_input drops, hooked or subclassed Linears, mixed activations', () => {
    const x = Tensor.randn([4, 16], { generator: g });
    const cases: [string, MoELayer, Tensor][] = [];
    const f64 = (l: Linear) => Linear.fromWeights(l.weight.to('float64'), l.bias ? l.bias.to('float64') : null);
    const l32 = build({ D: 16, widths: [8, 8], k: 1 });
    const l64 = new MoELayer(f64(l32.router), l32.experts.map((e) => new MoEExpert(f64(e.up), f64(e.down), e.activation)), { topK: 1 }).eval();
    cases.push(['float64', l64, x.to('float64')]);
    cases.push(['tokenDropout', build({ D: 16, widths: [8, 8], k: 1, opts: { tokenDropout: 0.1 } }), x]);
    cases.push(['scaled_input', build({ D: 16, widths: [8, 8], k: 1, opts: { dropped: 'scaled_input', capacity: 1 } }), x]);
    const hooked = build({ D: 16, widths: [8, 8], k: 1 });
    let fired = 0;
    for (const e of hooked.experts) registerForwardHook(e.up, () => void fired++);
    cases.push(['hooked', hooked, x]);
    class MyLinear extends Linear {}
    const sub = build({ D: 16, widths: [8, 8], k: 1 });
    sub.experts[1]!.down = Linear.fromWeights(sub.experts[1]!.down.weight, null) as Linear;
    Object.setPrototypeOf(sub.experts[1]!.down, MyLinear.prototype);
    cases.push(['subclass', sub, x]);
    const mixed = build({ D: 16, widths: [8, 8], k: 2 });
    mixed.experts[1] = new MoEExpert(mixed.experts[1]!.up, mixed.experts[1]!.down, 'relu');
    cases.push(['mixed activations', mixed, x]);
    for (const [what, l, xi] of cases) {
      const before = calls;
      const y = noGrad(() => l.forward(xi));
      assert.equal(calls, before, `${what} ran the kernel`);
      assert.deepEqual(y.shape, xi.shape);
    }
    assert.ok(fired > 0, 'the forward hook did not fire');
  });
});

test('moeFfn argument checks: short arrays, a wrong experts array, a bad activation throw', { skip }, () => {
  const a = addon!;
  const D = 4, N = 2, k = 1, F = 3;
  const x = new Float32Array(N * D), out = new Float32Array(N * D);
  const choice = Int32Array.from([0, 1]), kept = Uint8Array.from([1, 1]);
  const w = () => [new Float32Array(F * D), null, new Float32Array(D * F), null];
  const experts = [...w(), ...w()];
  const widths = Int32Array.from([F, F]);
  a.moeFfn(x, N, D, choice, kept, null, k, experts, widths, 1, null, out);
  assert.throws(() => a.moeFfn(x, N + 1, D, choice, kept, null, k, experts, widths, 1, null, out), RangeError);
  assert.throws(() => a.moeFfn(x, N, D, choice, kept, null, k, experts.slice(0, 4), widths, 1, null, out), RangeError);
  assert.throws(() => a.moeFfn(x, N, D, choice, kept, null, k, [new Float32Array(2), null, new Float32Array(D * F), null, ...w()], widths, 1, null, out), RangeError);
  assert.throws(() => a.moeFfn(x, N, D, choice, kept, null, k, experts, widths, 9, null, out), RangeError);
  assert.throws(() => a.moeFfn(x, N, D, choice, kept, new Float32Array(1), k, experts, widths, 1, null, out), RangeError);
  assert.throws(() => a.moeFfn(x, N, D, Float32Array.from([0, 1]) as unknown as Int32Array, kept, null, k, experts, widths, 1, null, out), TypeError);
  // A choice outside [0, E) or a slot not kept contributes nothing.
  a.moeFfn(x, N, D, Int32Array.from([5, -1]), kept, null, k, experts, widths, 1, Float32Array.from([1, 2, 3, 4]), out);
  assert.deepEqual(Array.from(out), [1, 2, 3, 4, 1, 2, 3, 4]);
});
