// The addon's integer kernels (native/quant.cc) against the TypeScript reference paths in
// src/compress/quant/kernels.ts: bit-identical int8 dynamic / static outputs and weight dequantization, and the
// dequantizing weight-only GEMM (int8 / int4 / 3- and 2-bit, GEMV and packed paths) to float32 rounding, at odd
// sizes, extreme codes and 1 and 2 threads. The tests run once per int8 GEMM kernel the CPU has (avx512-vnni,
// its ymm twin avx512-vnni-ymm, avx-vnni, avx2; pinned with setInt8Kernel; a kernel the CPU lacks is skipped with a
// message) and once with the portable paths (setSimd(false) + setGemmKernel('portable'), what non-x86 builds run).
// int8-dynamic is checked with 7-bit and 8-bit activations on every kernel: VNNI kernels take 8 bits natively, the
// AVX2 one hands 8-bit codes to the portable kernel, and the reference takes the range as a parameter.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Generator, getNumThreads, setNumThreads } from '../../src/index.ts';
import { nativeAddon, setBackend } from '../../src/backend/registry.ts';
import { nativeTestSkip } from '../../src/backend/native/index.ts';
import { int8ActivationMax, int8DynamicLinear, int8Kernel, int8StaticLinear, nativeInt8Kernel, quantizeActivationsPerToken, weightOnlyLinear } from '../../src/compress/quant/kernels.ts';
import { fakeQuantActivations } from '../../src/compress/quant/qat.ts';
import { quantizeWeight } from '../../src/compress/quant/rtn.ts';
import { dequantizeRows, QuantLinear, type QuantizedWeight } from '../../src/compress/quant/modules.ts';
import { Tensor, storageVersion } from '../../src/tensor/tensor.ts';

const skip = nativeTestSkip();
const addon = skip ? null : nativeAddon();
const g = new Generator(21);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * g.normal());

function both(fn: () => Float32Array): [Float32Array, Float32Array] {
  const prev = setBackend('ref');
  const r = fn();
  setBackend('native');
  const n = fn();
  setBackend(prev);
  return [r, n];
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i}: ref ${a[i]} vs native ${b[i]}`);
}

type Q = { int8Kernels(): string[]; setInt8Kernel(name: string): string; int8Kernel(): string; setSimd(on?: boolean): boolean; setGemmKernel(name?: string): string };
const q8 = addon as unknown as Q | null;
const INT8_KERNELS = ['avx512-vnni', 'avx512-vnni-ymm', 'avx-vnni', 'avx2'] as const;
const available: string[] = q8 ? q8.int8Kernels() : [];
const MODES = [...INT8_KERNELS.map((k) => ({ int8: k as string, simd: true })), { int8: 'portable', simd: false }];
const isVnni = (k: string) => k.includes('vnni');

for (const mode of MODES)
  describe(`quant kernels (int8 kernel=${mode.int8})`, { skip: skip || (!available.includes(mode.int8) && `this CPU (or SHRINK_ISA) has no ${mode.int8} int8 kernel (has: ${available.join(', ')})`) }, () => {
    before(() => {
      q8!.setSimd(mode.simd);
      q8!.setGemmKernel(mode.simd ? 'auto' : 'portable');
      if (mode.simd) q8!.setInt8Kernel(mode.int8);
    });
    after(() => {
      q8!.setSimd(true);
      q8!.setGemmKernel('auto');
      q8!.setInt8Kernel('auto');
    });

    test('configuration took effect; the activation range follows the kernel', () => {
      assert.equal(q8!.setSimd(), mode.simd && addon!.info().avx2);
      // the packed SGEMM (woGemm's dequantize-in-pack path) runs its best family: avx512 where the CPU and SHRINK_ISA allow
      assert.equal(q8!.setGemmKernel(), mode.simd && addon!.info().avx2 ? (addon!.info().isa === 'avx512' ? 'avx512' : 'avx2') : 'portable');
      assert.equal(nativeInt8Kernel(), mode.int8);
      const prev = setBackend('native');
      assert.equal(int8Kernel(), `int8 ${mode.int8}`);
      setBackend('ref');
      assert.equal(int8Kernel(), 'int8 reference');
      setBackend(prev);
      assert.equal(int8ActivationMax(), isVnni(mode.int8) ? 255 : 127);
    });

    test('int8 dynamic: native equals the reference bit for bit (7- and 8-bit activations, and the default range)', () => {
      const prevThreads = getNumThreads();
      for (const qmax of [127, 255, undefined])
        for (const threads of [1, 2]) {
          setNumThreads(threads);
          for (const [M, N, K] of [[1, 1, 1], [1, 17, 3], [3, 16, 4], [5, 33, 67], [4, 48, 128], [9, 31, 300], [17, 40, 96], [64, 96, 768], [2, 5, 1100]]) {
            const w = quantizeWeight('w', rand(N * K, 0.05), N, K, { bits: 8, granularity: 'channel', symmetric: true });
            const x = rand(M * K);
            const bias = rand(N);
            const [r, n] = both(() => {
              const out = new Float32Array(M * N);
              int8DynamicLinear(x, M, w, bias, out, qmax);
              return out;
            });
            sameBits(r, n, `${M}×${N}×${K} (qmax ${qmax}, ${threads} threads)`);
          }
        }
      setNumThreads(prevThreads);
    });

    test('int8 dynamic: extreme codes accumulate exactly (no 16-bit saturation)', () => {
      const [M, N, K] = [9, 40, 4096];
      // weights all -128 (one row +127), activations at the top of the range (7 bits: 2·127·128 fits int16;
      // 8 bits: 2·255·128 does not, which only VNNI, or the portable kernel, sums exactly)
      const codes = new Int8Array(N * K).fill(-128);
      codes.fill(127, 0, K);
      const w: QuantizedWeight = { shape: [N, K], bits: 8, codes, groupSize: K, perTensor: false, scale: new Float32Array(N).fill(1), zero: null };
      const x = new Float32Array(M * K).fill(1); // per-row range [0, 1]: codes qmax, zero 0, scale 1/qmax
      for (const qmax of [127, 255]) {
        const [r, n] = both(() => {
          const out = new Float32Array(M * N);
          int8DynamicLinear(x, M, w, null, out, qmax);
          return out;
        });
        sameBits(r, n, `extremes (qmax ${qmax})`);
        const s = Math.fround(1 / qmax);
        assert.equal(n[1], Math.fround(s * (qmax * -128 * K)));
        assert.equal(n[0], Math.fround(s * (qmax * 127 * K)));
        assert.equal(n[N * M - 1], Math.fround(s * (qmax * -128 * K)));
      }
    });

    // the float paths do not depend on the int8 kernel: once with SIMD, once portable
    test('weight-only int8 and int4: native dequantization equals the reference bit for bit; the dequantizing GEMM agrees to float32 rounding', { skip: mode.int8 !== 'avx2' && mode.int8 !== 'portable' && 'runs with the avx2 and portable modes' }, () => {
      const q = addon as unknown as { dequantRows: (...a: unknown[]) => void };
      for (const [M, N, K, spec] of [
        [1, 70, 64, { bits: 8, granularity: 'channel', symmetric: true }],
        [7, 33, 96, { bits: 8, granularity: 'tensor', symmetric: false }],
        [3, 130, 128, { bits: 4, granularity: 'group', groupSize: 64, symmetric: false }],
          [5, 21, 96, { bits: 2, granularity: 'group', groupSize: 32, symmetric: false }],
        [2, 9, 64, { bits: 3, granularity: 'group', groupSize: 32, symmetric: true }],
        // the fused 2–4-bit GEMV (M ≤ 4, decoding): AVX-512 chunks of 32 codes (groups of 32, 128), AVX2 chunks of 16 (a
        // group of 16 takes the AVX2 kernel on an AVX-512 machine too), long rows, 1–4 activation rows
        [1, 70, 2048, { bits: 4, granularity: 'group', groupSize: 128, symmetric: false }],
        [4, 33, 256, { bits: 4, granularity: 'group', groupSize: 32, symmetric: true }],
        [3, 19, 96, { bits: 4, granularity: 'group', groupSize: 16, symmetric: false }],
        [2, 40, 1024, { bits: 3, granularity: 'group', groupSize: 64, symmetric: false }],
        // the fused 8-bit GEMV: per channel, per tensor (one group of K), groups of 8 (AVX2 chunks)
        [1, 50, 2048, { bits: 8, granularity: 'channel', symmetric: true }],
        [3, 17, 96, { bits: 8, granularity: 'tensor', symmetric: false }],
        [2, 23, 64, { bits: 8, granularity: 'group', groupSize: 8, symmetric: false }],
        // packed-GEMM path (M > 4) with K blocks that start on an odd element (514 = 2 × 257: a nibble boundary)
        [33, 50, 514, { bits: 4, granularity: 'channel', symmetric: false }],
        [12, 16, 1000, { bits: 8, granularity: 'group', groupSize: 8, symmetric: false }],
        [70, 200, 768, { bits: 4, granularity: 'group', groupSize: 128, symmetric: true }],
      ] as const) {
        const w = quantizeWeight('w', rand(N * K, 0.1), N, K, spec);
        const [r0, r1] = [1, N];
        const want = new Float32Array((r1 - r0) * K);
        dequantizeRows(w, r0, r1, want);
        const got = new Float32Array((r1 - r0) * K);
        const z = w.zero;
        q.dequantRows(w.bits === 8 ? w.codes : null, w.bits === 8 ? null : w.codes, w.bits, w.scale, z instanceof Int8Array ? z : null, z instanceof Uint8Array ? z : null, w.groupSize, w.perTensor, K, r0, r1, got);
        sameBits(want, got, `dequant ${JSON.stringify(spec)}`);
        const x = rand(M * K);
        const bias = rand(N);
        for (const threads of [1, 2]) {
          const prevThreads = getNumThreads();
          setNumThreads(threads);
          const [r, n] = both(() => {
            const out = new Float32Array(M * N);
            weightOnlyLinear(x, M, w, bias, out);
            return out;
          });
          setNumThreads(prevThreads);
          for (let i = 0; i < r.length; i++) assert.ok(Math.abs(r[i]! - n[i]!) <= 2e-5 * (1 + Math.abs(r[i]!)), `${M}×${N}×${K} ${JSON.stringify(spec)} (${threads}t) [${i}]: ${r[i]} vs ${n[i]}`);
        }
      }
    });

    test('int8 static: native equals the reference bit for bit', () => {
      for (const threads of [1, 2]) {
        const prevThreads = getNumThreads();
        setNumThreads(threads);
        for (const [M, N, K, inScale, inZero] of [[1, 1, 1, 0.02, 0], [3, 17, 5, 0.05, 64], [9, 31, 300, 0.03, 127], [64, 96, 768, 0.04, 60]]) {
          const w = quantizeWeight('w', rand(N * K, 0.05), N, K, { bits: 8, granularity: 'channel', symmetric: true });
          const x = rand(M * K);
          const bias = rand(N);
          const [r, n] = both(() => {
            const out = new Float32Array(M * N);
            int8StaticLinear(x, M, w, inScale, inZero, bias, out);
            return out;
          });
          sameBits(r, n, `static ${M}×${N}×${K} (${threads} threads)`);
        }
        setNumThreads(prevThreads);
      }
    });
  });

// Module.loadStateDict copies a checkpoint into the existing buffers in place (Tensor.copy_): the packed int8 weight
// the native int8 GEMM caches per codes array must not survive that (it did: old codes with the new scales).
for (const scheme of ['int8-dynamic', 'int8-static'] as const)
  test(`quantLinear(scheme=${scheme}) after loadStateDict uses the new codes`, { skip }, () => {
    const [M, N, K] = [5, 33, 67];
    const make = (seed: number) => {
      const gg = new Generator(seed);
      const w = quantizeWeight('w', Float32Array.from({ length: N * K }, () => 0.05 * gg.normal()), N, K, { bits: 8, granularity: 'channel', symmetric: true });
      const m = new QuantLinear(scheme, w, Tensor.from(Float32Array.from({ length: N }, () => gg.normal())));
      if (scheme === 'int8-static') m.setInputQuant(4 / 127, 64);
      return m;
    };
    const x = Tensor.from(rand(M * K), { shape: [M, K] });
    const prev = setBackend('native');
    try {
      const a = make(1);
      const b = make(2);
      const before = a.forward(x).data as Float32Array; // packs and caches a's codes
      a.loadStateDict(b.stateDict());
      const got = a.forward(x).data as Float32Array;
      const fresh = make(2).forward(x).data as Float32Array; // a module built with the new weights
      setBackend('ref');
      const want = a.forward(x).data as Float32Array;
      sameBits(want, got, `${scheme} after loadStateDict, native vs ref`);
      sameBits(fresh, got, `${scheme} after loadStateDict vs a freshly built module`);
      assert.ok(before.some((v, i) => v !== got[i]), 'the two weight sets must give different outputs');
      // and back again: writing the old weights restores the old output
      setBackend('native');
      a.loadStateDict(make(1).stateDict());
      sameBits(before, a.forward(x).data as Float32Array, `${scheme} after loading the first weights again`);
      // any in-place write through the Tensor API (here fill_) invalidates the packed copy too
      a.getBuffer('weight')!.fill_(3);
      const filled = a.forward(x).data as Float32Array;
      setBackend('ref');
      sameBits(a.forward(x).data as Float32Array, filled, `${scheme} after fill_ on the codes`);
    } finally {
      setBackend(prev);
    }
  });

test('storageVersion(tensor): copy_ and fill_ bump it, for every view of the storage', () => {
  const buf = new Int8Array(12);
  const t = new Tensor(buf, [3, 4], 'int8');
  const view = new Tensor(buf.subarray(4), [8], 'int8');
  const v0 = storageVersion(buf);
  t.copy_(Tensor.from(new Int8Array(12).fill(2), { shape: [3, 4] }));
  const v1 = storageVersion(buf);
  assert.ok(v1 > v0, 'copy_ bumps the version');
  view.fill_(1);
  assert.ok(storageVersion(buf) > v1, 'a write through another view of the same buffer bumps it too');
  assert.equal(storageVersion(view.data), storageVersion(t.data));
  assert.equal(storageVersion(new Int8Array(12)), 0, 'an untouched storage is at version 0');
});

test('int8 kernel selection: setInt8Kernel rejects unknown and unavailable kernels; SHRINK_ISA=avx2 forces the AVX2 kernel and 7-bit activations', { skip }, () => {
  assert.throws(() => q8!.setInt8Kernel('sse9'), RangeError);
  for (const k of INT8_KERNELS) if (!available.includes(k)) assert.throws(() => q8!.setInt8Kernel(k), RangeError, k);
  assert.ok(available.includes('portable') && available.includes(q8!.int8Kernel()));
  assert.equal(q8!.setInt8Kernel('auto'), q8!.int8Kernel());
  // the best kernel is the automatic choice (the ymm twin only when pinned)
  const best = ['avx512-vnni', 'avx-vnni', 'avx2', 'portable'].find((k) => available.includes(k));
  assert.equal(q8!.int8Kernel(), best);
  // a child process: SHRINK_ISA is read once, when the addon loads
  const dir = mkdtempSync(path.join(tmpdir(), 'shrink-isa-'));
  const file = path.join(dir, 'child.ts');
  const src = (p: string) => JSON.stringify(pathToFileURL(path.resolve(p)).href);
  writeFileSync(file, `import ${src('src/index.ts')}; import * as k from ${src('src/compress/quant/kernels.ts')}; import * as r from ${src('src/backend/registry.ts')};
    r.setBackend('native'); console.log(JSON.stringify({ kernel: k.int8Kernel(), all: (r.nativeAddon() as any).int8Kernels(), max: k.int8ActivationMax() }));`);
  const child = spawnSync(process.execPath, ['--import', 'tsx', file], { env: { ...process.env, SHRINK_ISA: 'avx2' }, encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(child.status, 0, child.stderr);
  const got = JSON.parse(child.stdout.trim().split('\n').pop()!) as { kernel: string; all: string[]; max: number };
  assert.deepEqual(got, { kernel: addon!.info().avx2 ? 'int8 avx2' : 'int8 portable', all: addon!.info().avx2 ? ['portable', 'avx2'] : ['portable'], max: 127 });
});

test("QAT's fake activation quantization uses the int8-dynamic kernel's range", { skip }, () => {
  const [M, K] = [3, 50];
  const x = rand(M * K);
  const { q, scale, zero } = quantizeActivationsPerToken(x, M, K, int8ActivationMax());
  const fa = fakeQuantActivations(new Tensor(x, [M, K], 'float32')).data as Float32Array;
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) assert.equal(fa[m * K + k], Math.fround((q[m * K + k]! - zero[m]!) * scale[m]!));
  const top = Math.max(...q);
  assert.ok(int8ActivationMax() === 255 ? top > 127 : top <= 127, `largest code ${top}`);
});

test('quantizeRows: native codes, scales and zero points equal the reference for 7- and 8-bit ranges; bad ranges throw', { skip }, () => {
  const a = addon as unknown as {
    quantizeRows(x: Float32Array, M: number, K: number, Kp: number, qmax: number, q: Uint8Array, s: Float32Array, z: Int32Array): void;
    int8Gemm(...args: unknown[]): void;
  };
  for (const simd of [true, false]) {
    q8!.setSimd(simd);
    for (const qmax of [127, 255, 15])
      for (const [M, K] of [[1, 1], [3, 7], [5, 37], [4, 768]]) {
        const x = rand(M * K, 3);
        x[0] = 0.5; // a tie after scaling is likely somewhere; exact halves too
        const Kp = Math.ceil(K / 4) * 4;
        const q = new Uint8Array(M * Kp).fill(9);
        const s = new Float32Array(M);
        const z = new Int32Array(M);
        a.quantizeRows(x, M, K, Kp, qmax, q, s, z);
        const want = quantizeActivationsPerToken(x, M, K, qmax);
        assert.deepEqual(Array.from(s), Array.from(want.scale), `scales (qmax ${qmax}, ${M}×${K}, simd ${simd})`);
        assert.deepEqual(Array.from(z), Array.from(want.zero), `zeros (qmax ${qmax}, ${M}×${K}, simd ${simd})`);
        for (let m = 0; m < M; m++) {
          assert.deepEqual(Array.from(q.subarray(m * Kp, m * Kp + K)), Array.from(want.q.subarray(m * K, (m + 1) * K)), `codes row ${m} (qmax ${qmax}, ${M}×${K}, simd ${simd})`);
          assert.ok(q.subarray(m * Kp + K, (m + 1) * Kp).every((v) => v === 0), 'padding is zero');
        }
      }
  }
  q8!.setSimd(true);
  const x = rand(8);
  for (const bad of [0, 256, 1.5])
    assert.throws(() => a.quantizeRows(x, 2, 4, 4, bad, new Uint8Array(8), new Float32Array(2), new Int32Array(2)), RangeError, `qmax ${bad}`);
  assert.throws(() => quantizeActivationsPerToken(x, 2, 4, 256), /qmax/);
  const packedW = new Int8Array(16 * 4);
  const args = [new Uint8Array(4), 1, 4, packedW, 16, new Float32Array(1), new Int32Array(1), new Float32Array(1), true, new Int32Array(16), null, new Float32Array(16)];
  a.int8Gemm(...args); // default maxCode
  a.int8Gemm(...args, 255);
  for (const bad of [256, -1, 2.5, 'x']) assert.throws(() => a.int8Gemm(...args, bad), RangeError, `maxCode ${bad}`);
});
