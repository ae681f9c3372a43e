// Static activation calibration (observers) and the int8-static scheme built on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GPT2LMHeadModel, Generator, Tensor, fromPretrained, gpt2Config, manualSeed, noGrad, savePretrained } from '../../src/index.ts';
import { RangeObserver } from '../../src/compress/quant/calibrate.ts';
import { QuantLinear } from '../../src/compress/quant/modules.ts';
import { quantizeModel } from '../../src/compress/quant/apply.ts';
import { quantizeFolder } from '../../src/compress/quant/pretrained.ts';
import { int8StaticLinear } from '../../src/compress/quant/kernels.ts';
import { quantizeWeight } from '../../src/compress/quant/rtn.ts';
import { nativeAddon, setBackend } from '../../src/backend/registry.ts';
import { expectEqual, expectThrows } from '../harness/expect.ts';
import '../../src/compress/quant/format.ts';

const g = new Generator(8);
const gauss = (n: number) => Float32Array.from({ length: n }, () => g.normal());

/** Quantize-dequantize MSE of values under a range, with the 7-bit codes the kernels use. */
function mse(x: Float32Array, { scale, zero }: { scale: number; zero: number }): number {
  let e = 0;
  for (const v of x) {
    const q = Math.min(127, Math.max(0, Math.round(v / scale) + zero));
    e += ((q - zero) * scale - v) ** 2;
  }
  return e / x.length;
}

test('observers: min-max keeps the extremes, percentile clips outliers, the MSE search has the lowest error', () => {
  const x = gauss(20000);
  x[7] = 60; // one outlier
  const mm = new RangeObserver('minmax');
  const pc = new RangeObserver('percentile', 99.9);
  for (const o of [mm, pc]) {
    o.observe(x.subarray(0, 10000));
    o.observe(x.subarray(10000)); // ranges grow across batches; the histogram is rebinned
  }
  let lo = 0;
  let hi = 0;
  for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  assert.deepEqual(mm.range(), [lo, hi]);
  const [plo, phi] = pc.range();
  assert.ok(phi < 10 && phi > 2.5 && plo < -2.5 && plo > -10, `percentile range ${plo} ${phi}`);
  // heavy tails (Laplace): the MSE search finds a range with lower quantization error than min-max and percentile
  const lap = Float32Array.from({ length: 20000 }, () => {
    const u = g.random() - 0.5;
    return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  });
  const [a, b, c] = (['minmax', 'percentile', 'mse'] as const).map((k) => {
    const o = new RangeObserver(k, 99.9);
    o.observe(lap);
    return mse(lap, o.qparams());
  });
  assert.ok(c! < a! && c! < b!, `mse ${c} vs minmax ${a}, percentile ${b}`);
  const nonneg = new RangeObserver('minmax');
  nonneg.observe(Float32Array.from([0.5, 2, 3]));
  assert.deepEqual(nonneg.range(), [0, 3]); // ranges always include 0
  assert.deepEqual(nonneg.qparams(), { scale: Math.fround(3 / 127), zero: 0 });
  expectThrows(() => new RangeObserver('median' as never), "observer must be one of minmax, percentile, mse, got 'median'");
  expectThrows(() => new RangeObserver('minmax').range(), 'calibration: the observer saw no data');
});

test('int8-static: calibrated layers save, load and run on the integer kernel (native = reference)', () => {
  manualSeed(3);
  const model = new GPT2LMHeadModel(gpt2Config({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2, architectures: ['GPT2LMHeadModel'] })).eval();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'static-'));
  savePretrained(model as never, path.join(dir, 'fp'));
  const ids = Tensor.from(Int32Array.from([1, 5, 9, 2, 33, 60, 7, 8]), { shape: [2, 4] });
  const calib = [{ inputIds: ids }];
  expectThrows(() => quantizeModel(fromPretrained(path.join(dir, 'fp')), { scheme: 'int8-static' }), 'scheme int8-static needs calibration data');
  quantizeFolder(path.join(dir, 'fp'), path.join(dir, 'q'), { scheme: 'int8-static', observer: 'mse', calibration: () => calib });
  const q = fromPretrained(path.join(dir, 'q')) as GPT2LMHeadModel;
  const layer = q.getSubmodule('transformer.h.0.mlp.c_fc') as QuantLinear;
  assert.equal(layer.scheme, 'int8-static');
  assert.ok(layer.getBuffer('input_scale')!.data[0]! > 0);
  const fp = noGrad(() => model.forward({ inputIds: ids }).logits);
  const got = noGrad(() => q.forward({ inputIds: ids }).logits);
  assert.ok(Math.sqrt(got.sub(fp).square().mean().item() / fp.square().mean().item()) < 0.1);
  fs.rmSync(dir, { recursive: true });
});

test('int8-static kernel: native equals the reference bit for bit', { skip: nativeAddon() === null && 'native addon not built' }, () => {
  const [M, N, K] = [5, 19, 70];
  const w = quantizeWeight('w', gauss(N * K), N, K, { bits: 8, granularity: 'channel', symmetric: true });
  const x = gauss(M * K);
  const run = () => {
    const out = new Float32Array(M * N);
    int8StaticLinear(x, M, w, 0.03, 60, null, out);
    return out;
  };
  const prev = setBackend('ref');
  const ref = run();
  setBackend('native');
  const nat = run();
  setBackend(prev);
  expectEqual(nat, ref, 'int8-static');
});
