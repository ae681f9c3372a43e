// Round-to-nearest weight quantization (src/compress/quant/rtn.ts) against the quant fixture: torch.ao int8
// observers (symmetric and affine, qint8 and quint8, per tensor and per channel), IST-DASLab/gptq's Quantizer
// (int4, groups of 32, sym and asym), llm-awq's pseudo_quantize_tensor and the symmetric absmax formula — codes
// exactly, scales, zero points and dequantized values bit-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { methodFixture } from '../harness/fixtures.ts';
import { expectEqual, expectThrows } from '../harness/expect.ts';
import { quantizeValue, quantizeWeight, parseGranularity, type WeightQuantSpec } from '../../src/compress/quant/rtn.ts';
import { dequantize } from '../../src/compress/quant/modules.ts';
import { roundHalfEven } from '../../src/compress/quant/kernels.ts';

const fx = methodFixture('quant');
const w = fx.t('w').data as Float32Array;
const [N, K] = fx.t('w').shape as [number, number];

const unpack = (codes: Uint8Array, n: number) => Array.from({ length: n }, (_, i) => (codes[i >> 1]! >> ((i & 1) * 4)) & 15);

const INT8: [string, WeightQuantSpec][] = [
  ['int8.per_tensor_symmetric_qint8', { bits: 8, granularity: 'tensor', symmetric: true }],
  ['int8.per_channel_symmetric_qint8', { bits: 8, granularity: 'channel', symmetric: true }],
  ['int8.per_tensor_affine_qint8', { bits: 8, granularity: 'tensor', symmetric: false }],
  ['int8.per_channel_affine_qint8', { bits: 8, granularity: 'channel', symmetric: false }],
];
for (const [name, spec] of INT8)
  test(`${name}: codes, scale, zero point and dequantized values match torch.ao`, () => {
    const q = quantizeWeight('w', w, N, K, spec);
    expectEqual(q.codes, fx.t(`${name}.q`).data, `${name}.q`);
    expectEqual(q.scale, fx.t(`${name}.scale`).data, `${name}.scale`);
    const zp = Array.from(fx.t(`${name}.zero_point`).data as ArrayLike<number>, Number);
    expectEqual(q.zero ? Array.from(q.zero) : zp.map(() => 0), zp, `${name}.zero_point`);
    expectEqual(dequantize(q).data, fx.t(`${name}.dq`).data, `${name}.dq`);
  });

for (const [name, symmetric] of [['int4.gptq_asym', false], ['int4.gptq_sym', true]] as const)
  test(`${name}: 4-bit groups of 32 match gptq's Quantizer (codes packed two per byte)`, () => {
    const q = quantizeWeight('w', w, N, K, { bits: 4, granularity: 'group', groupSize: 32, symmetric });
    assert.equal(q.codes.length, (N * K) / 2);
    expectEqual(unpack(q.codes as Uint8Array, N * K), fx.t(`${name}.q`).data, `${name}.q`);
    expectEqual(q.scale, fx.t(`${name}.scale`).data, `${name}.scale`);
    expectEqual(Array.from(q.zero!), fx.t(`${name}.zero`).data, `${name}.zero`);
    expectEqual(dequantize(q).data, fx.t(`${name}.dq`).data, `${name}.dq`);
  });

// quint8 is qint8 shifted by 128: same scale, zero point + 128, codes + 128 (both clamps move together)
for (const gran of ['tensor', 'channel'] as const)
  test(`int8.per_${gran}_affine_quint8: our affine codes + 128 match torch.ao's quint8`, () => {
    const name = `int8.per_${gran}_affine_quint8`;
    const q = quantizeWeight('w', w, N, K, { bits: 8, granularity: gran, symmetric: false });
    expectEqual(Array.from(q.codes, (c) => c + 128), fx.t(`${name}.q`).data, `${name}.q`);
    expectEqual(q.scale, fx.t(`${name}.scale`).data, `${name}.scale`);
    expectEqual(Array.from(q.zero!, (z) => z + 128), Array.from(fx.t(`${name}.zero_point`).data as ArrayLike<number>, Number), `${name}.zero_point`);
    expectEqual(dequantize(q).data, fx.t(`${name}.dq`).data, `${name}.dq`);
  });

test("int4.awq: llm-awq's pseudo_quantize_tensor (raw group range, 1e-5 floor, clamped zero)", () => {
  const q = quantizeWeight('w', w, N, K, { bits: 4, granularity: 'group', groupSize: 32, symmetric: false, formula: 'awq' });
  expectEqual(unpack(q.codes as Uint8Array, N * K), fx.t('int4.awq.q').data, 'int4.awq.q');
  expectEqual(q.scale, fx.t('int4.awq.scale').data, 'int4.awq.scale');
  expectEqual(Array.from(q.zero!), fx.t('int4.awq.zero').data, 'int4.awq.zero');
  expectEqual(dequantize(q).data, fx.t('int4.awq.dq').data, 'int4.awq.dq');
});

test('int4.sym_formula: absmax/7 scale, signed codes −8..7 (stored offset by 8)', () => {
  const q = quantizeWeight('w', w, N, K, { bits: 4, granularity: 'group', groupSize: 32, symmetric: true, formula: 'absmax' });
  expectEqual(unpack(q.codes as Uint8Array, N * K).map((c) => c - 8), fx.t('int4.sym_formula.q').data, 'int4.sym_formula.q');
  expectEqual(q.scale, fx.t('int4.sym_formula.scale').data, 'int4.sym_formula.scale');
  assert.ok(q.zero!.every((z) => z === 8));
  expectEqual(dequantize(q).data, fx.t('int4.sym_formula.dq').data, 'int4.sym_formula.dq');
});

test('round half to even, as torch.round (qint8 and quint8 with a zero point)', () => {
  const x = fx.t('ties.x').data as Float32Array;
  expectEqual(Array.from(x, (v) => Math.min(127, Math.max(-128, roundHalfEven(v / 0.5)))), fx.t('ties.q_qint8_scale0.5_zp0').data, 'ties');
  expectEqual(Array.from(x, (v) => quantizeValue(v, 0.5, 0, 8)), fx.t('ties.q_qint8_scale0.5_zp0').data, 'ties qint8');
  expectEqual(Array.from(x, (v) => quantizeValue(v, 0.5, 3 - 128, 8) + 128), fx.t('ties.q_quint8_scale0.5_zp3').data, 'ties quint8');
});

test('bad specs and bad weights get one clear error each', () => {
  expectThrows(() => quantizeWeight('enc.dense.weight', w, N, K, { bits: 4, granularity: 'group', groupSize: 48, symmetric: false }), 'enc.dense.weight: group size 48 does not divide in_features 64; choose a divisor of 64, or pad the input dimension to 96 with zero columns');
  expectThrows(() => quantizeWeight('x', w, N, K, { bits: 6, granularity: 'channel', symmetric: true }), 'x: unsupported bits 6 (expected 8, or 2, 3 or 4 stored two codes per byte)');
  const bad = Float32Array.from(w);
  bad[70] = NaN;
  expectThrows(() => quantizeWeight('layer.3.weight', bad, N, K, { bits: 8, granularity: 'channel', symmetric: true }), 'layer.3.weight: non-finite value NaN at index 70 (row 1, column 6)');
  expectThrows(() => quantizeWeight('x', w, N, K + 1, { bits: 8, granularity: 'channel', symmetric: true }), 'x: weight has 512 elements, expected 8×65');
  expectThrows(() => quantizeWeight('x', w, N, K, { bits: 4, granularity: 'group', groupSize: 32, symmetric: true, formula: 'awq' }), "int4 formula 'awq' is asymmetric (a zero point per group); drop --symmetric or use formula 'absmax'");
  expectThrows(() => quantizeWeight('x', w, N, K, { bits: 4, granularity: 'group', groupSize: 32, symmetric: false, formula: 'absmax' }), "int4 formula 'absmax' is symmetric; drop --asymmetric or use formula 'awq' or 'gptq'");
  assert.deepEqual(parseGranularity('group:64'), { granularity: 'group', groupSize: 64 });
  expectThrows(() => parseGranularity('group:x'), "--granularity must be tensor, channel or group:<size> (size ≥ 2, e.g. group:64), got 'group:x'");
});
