// share.kmeans inference on the native codebook GEMM (native/codebook.cc, codebookGemm): against a float64
// reference at odd shapes (M = 1, 3 on the decode path; 17, 64 on the packed GEMM whose B panels are looked up while
// packed; K odd, so 4-bit rows start on a high nibble, and K = 771 so KC blocks start on one too; N = 1, 15, 33),
// 4- and 8-bit codes, codebooks of ≤ 16 entries (vpermps) and more (vgatherdps), with and without bias, 1 and 2
// threads; on every lookup path this CPU has: the best one, the portable one (setSimd(false) +
// setGemmKernel('portable')), and AVX2 in a child process under SHRINK_ISA=avx2 when the CPU has AVX-512
// (SHRINK_ISA is read once, when the addon loads). Then ClusteredLinear's forward (native kernel, no float32 copy
// kept) against gather + linear, the code check per load, and codebookGemm's argument errors (exact messages).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Generator, Tensor, getNumThreads, noGrad, setNumThreads } from '../../src/index.ts';
import { nativeAddon, setBackend } from '../../src/backend/registry.ts';
import { codebookGemm, nativeTestSkip, type NativeAddon } from '../../src/backend/native/index.ts';
import { linear } from '../../src/ops/matmul.ts';
import { packCodes } from '../../src/compress/share/kmeans.ts';
import { ClusteredLinear, gatherWeight } from '../../src/compress/share/clustered.ts';

const skip = nativeTestSkip();
const addon = skip ? null : (nativeAddon() as NativeAddon & { setSimd(on?: boolean): boolean; setGemmKernel(name?: string): string });
const CHILD = process.env.SHRINK_CODEBOOK_TEST_CHILD === '1';
const g = new Generator(41);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * g.normal());
const randCodes = (n: number, k: number) => Int32Array.from({ length: n }, () => Math.floor(g.random() * k));

/** y = x·Wᵀ + b in float64, W[n, k] = codebook[codes[n·K + k]]. */
function reference(x: Float32Array, M: number, K: number, N: number, codes: Int32Array, cb: Float32Array, bias: Float32Array | null): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * cb[codes[n * K + k]!]!;
      y[m * N + n] = s;
    }
  return y;
}

/** woGemm's tolerance (test/backend/quant-native.test.ts): float32 rounding, 2e-5·(1 + |want|). */
function close(got: Float32Array, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < got.length; i++)
    if (!(Math.abs(got[i]! - want[i]!) <= 2e-5 * (1 + Math.abs(want[i]!)))) assert.fail(`${what} [${i}]: native ${got[i]} vs reference ${want[i]}`);
}

// (bits, codebook entries): 4-bit full and partial; 8-bit in one zmm (vpermps), gathered, full
const BOOKS = [[4, 16], [4, 5], [8, 16], [8, 200], [8, 256]] as const;
const SHAPES: [number, number, number][] = [];
for (const M of [1, 3, 17, 64]) for (const K of [7, 33, 771]) for (const N of [1, 15, 33]) SHAPES.push([M, K, N]);

function kernelAgainstReference(label: string): void {
  const prevThreads = getNumThreads();
  try {
    for (const [bits, entries] of BOOKS)
      for (const [M, K, N] of SHAPES) {
        const codes = randCodes(N * K, entries);
        const packed = packCodes(codes, bits);
        const cb = rand(entries, 0.1);
        const x = rand(M * K);
        for (const bias of [null, rand(N)]) {
          const want = reference(x, M, K, N, codes, cb, bias);
          for (const threads of [1, 2]) {
            setNumThreads(threads);
            const out = new Float32Array(M * N).fill(NaN);
            codebookGemm(addon!, x, M, K, N, packed, bits, cb, bias, out);
            close(out, want, `${label} ${bits}-bit ×${entries} ${M}×${K}×${N} bias=${bias !== null} ${threads}t`);
          }
        }
      }
  } finally {
    setNumThreads(prevThreads);
  }
}

const MODES = [{ simd: true }, { simd: false }] as const;
for (const mode of MODES)
  describe(`codebookGemm (${mode.simd ? 'SIMD' : 'portable'})`, { skip }, () => {
    before(() => {
      addon!.setSimd(mode.simd);
      addon!.setGemmKernel(mode.simd ? 'auto' : 'portable');
    });
    after(() => {
      addon!.setSimd(true);
      addon!.setGemmKernel('auto');
    });

    test('the lookup path in use follows SHRINK_ISA and setSimd', () => {
      const info = addon!.info();
      const want = !mode.simd || !info.avx2 ? 'portable' : info.isa === 'avx512' ? 'avx512' : 'avx2';
      assert.equal(addon!.codebookKernel().split(':')[0], want);
      assert.equal(addon!.kernels().codebook, addon!.codebookKernel());
      if (CHILD) assert.equal(info.isa === 'avx512', false, 'the child runs under SHRINK_ISA=avx2');
    });

    test('matches the float64 reference: M ∈ {1, 3, 17, 64}, K ∈ {7, 33, 771}, N ∈ {1, 15, 33}, 4/8-bit, ±bias, 1 and 2 threads', () => {
      kernelAgainstReference(addon!.codebookKernel());
    });

    test('a code past the codebook reads the zero-padded table, never out of bounds', () => {
      // the caller's invariant is broken on purpose: every result must stay finite (no stray memory read)
      const [M, K, N] = [5, 40, 17];
      const codes = Int32Array.from({ length: N * K }, (_, i) => (i % 3 === 0 ? 255 : i % 4));
      const out = new Float32Array(M * N);
      codebookGemm(addon!, rand(M * K), M, K, N, packCodes(codes, 8), 8, rand(4), null, out);
      assert.ok(out.every(Number.isFinite));
      const out4 = new Float32Array(M * N);
      codebookGemm(addon!, rand(M * K), M, K, N, packCodes(codes.map((c) => c & 15), 4), 4, rand(3), null, out4);
      assert.ok(out4.every(Number.isFinite));
    });
  });

test('codebookGemm under SHRINK_ISA=avx2 (a child process: the ISA cap is read when the addon loads)', { skip: skip || CHILD || (addon!.info().isa !== 'avx512' && 'this CPU (or SHRINK_ISA) has no AVX-512: the in-process runs covered its best path') }, () => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=dot', fileURLToPath(import.meta.url)], {
    env: { ...process.env, SHRINK_ISA: 'avx2', SHRINK_CODEBOOK_TEST_CHILD: '1' },
    encoding: 'utf8',
  });
  assert.equal(child.status, 0, `${child.stdout}\n${child.stderr}`);
});

describe('ClusteredLinear on the native kernel', { skip: skip || (CHILD && 'covered by the parent process') }, () => {
  let prev: string;
  before(() => {
    prev = setBackend('native');
  });
  after(() => {
    setBackend(prev as never);
  });

  for (const [bits, entries] of BOOKS)
    test(`forward equals gather + linear (${bits}-bit, ${entries} entries), keeps no float32 weight`, () => {
      for (const [lead, K, N, bias] of [[[1], 33, 15, true], [[3], 7, 33, false], [[2, 9], 771, 33, true], [[64], 33, 1, true]] as const) {
        const codes = randCodes(N * K, entries);
        const cb = rand(entries, 0.1);
        const b = bias ? Tensor.from(rand(N)) : null;
        const cl = ClusteredLinear.fromCodes(cb, codes, [N, K], bits, b);
        const x = Tensor.from(rand(lead.reduce((p: number, q) => p * q, 1) * K), { shape: [...lead, K] });
        const y = noGrad(() => cl.forward(x));
        assert.deepEqual(y.shape, [...lead, N]);
        const want = noGrad(() => linear(x, gatherWeight(cl.codebook, Tensor.from(codes), N, K), b)).toFloat32Array();
        close(y.toFloat32Array(), want, `${bits}-bit ${lead.join('×')}×${K}×${N}`);
        const priv = cl as unknown as { _dense: unknown; _codesTensor: unknown };
        assert.equal(priv._dense, null, 'no float32 weight is cached');
        assert.equal(priv._codesTensor, null, 'no int32 codes are kept');
        // the same on the reference backend (the cached dense path)
        setBackend('ref');
        const r = noGrad(() => cl.forward(x)).toFloat32Array();
        setBackend('native');
        close(r, want, `ref backend ${bits}-bit`);
      }
    });

  test('a trained codebook is used at once; gradients still flow (gather path, and x / bias through the float path)', () => {
    const [N, K] = [20, 9];
    const codes = randCodes(N * K, 16);
    const cl = ClusteredLinear.fromCodes(rand(16, 0.1), codes, [N, K], 4, Tensor.from(rand(N)));
    const x = Tensor.from(rand(4 * K), { shape: [4, K] });
    const y0 = noGrad(() => cl.forward(x)).toFloat32Array();
    noGrad(() => cl.codebook.copy_(cl.codebook.mul(2)));
    const y1 = noGrad(() => cl.forward(x)).toFloat32Array();
    const want = noGrad(() => linear(x, gatherWeight(cl.codebook, Tensor.from(codes), N, K), cl.bias)).toFloat32Array();
    close(y1, want, 'after the codebook changed');
    assert.notDeepEqual(y1, y0);
    // training the centroids: the differentiable gather
    cl.forward(x).sum().backward();
    assert.ok(cl.codebook.grad && cl.codebook.grad.toFloat32Array().some((v) => v !== 0));
    // frozen centroids, input needing a gradient: the float path, gradient to x
    cl.codebook.requiresGrad_(false);
    const xg = Tensor.from(rand(4 * K), { shape: [4, K] }).requiresGrad_(true);
    cl.forward(xg).sum().backward();
    assert.ok(xg.grad && xg.grad.toFloat32Array().some((v) => v !== 0));
  });

  test('codes are checked once per load: a code past the codebook throws, naming it', () => {
    const [N, K] = [6, 10];
    const cl = ClusteredLinear.fromCodes(rand(5, 0.1), randCodes(N * K, 5), [N, K], 4, null);
    const x = Tensor.from(rand(3 * K), { shape: [3, K] });
    noGrad(() => cl.forward(x));
    const bad = randCodes(N * K, 5);
    bad[37] = 9;
    noGrad(() => cl.getBuffer('weight_codes')!.copy_(Tensor.from(packCodes(bad, 4))));
    assert.throws(() => noGrad(() => cl.forward(x)), { message: "ClusteredLinear: code 9 at 37 is not below the codebook's 5 entries" });
  });

  test('an input of the wrong width throws', () => {
    const cl = ClusteredLinear.fromCodes(rand(4), randCodes(12, 4), [3, 4], 4, null);
    assert.throws(() => noGrad(() => cl.forward(Tensor.from(rand(10), { shape: [2, 5] }))), { message: 'ClusteredLinear: input [2, 5] has 5 features, expected 4' });
  });
});

test('codebookGemm argument errors (checked in TypeScript, exact messages)', { skip: skip || (CHILD && 'covered by the parent process') }, () => {
  const [M, K, N] = [2, 3, 5];
  type A = { x: Float32Array; codes: Uint8Array; cb: Float32Array; bias: Float32Array | null; out: Float32Array; M: number; K: number; N: number; bits: number };
  const ok = { x: rand(M * K), codes: new Uint8Array(Math.ceil((N * K) / 2)), cb: rand(16), bias: rand(N) as Float32Array | null, out: new Float32Array(M * N) };
  const call = (o: Partial<A>) => {
    const a = { ...ok, M, K, N, bits: 4, ...o };
    codebookGemm(addon!, a.x, a.M, a.K, a.N, a.codes, a.bits, a.cb, a.bias, a.out);
  };
  call({});
  call({ bias: null });
  const cases: [Partial<A>, string][] = [
    [{ M: -1 }, 'M must be an integer in [0, 2^31), got -1'],
    [{ K: 0 }, 'K must be an integer in [1, 2^31), got 0'],
    [{ N: 1.5 }, 'N must be an integer in [1, 2^31), got 1.5'],
    [{ bits: 2 }, 'bits must be 4 or 8, got 2'],
    [{ x: new Float64Array(6) as unknown as Float32Array }, 'x must be a Float32Array'],
    [{ x: rand(5) }, 'x has 5 elements, expected M·K = 6'],
    [{ codes: new Int8Array(8) as unknown as Uint8Array }, 'codes must be a Uint8Array'],
    [{ codes: new Uint8Array(7) }, 'codes has 7 bytes, expected 8 for 5·3 4-bit codes'],
    [{ bits: 8 }, 'codes has 8 bytes, expected 15 for 5·3 8-bit codes'],
    [{ cb: rand(17) }, 'the codebook has 17 values, expected 1 to 16 for 4-bit codes'],
    [{ cb: new Float32Array(0) }, 'the codebook has 0 values, expected 1 to 16 for 4-bit codes'],
    [{ cb: [1, 2] as unknown as Float32Array }, 'codebook must be a Float32Array'],
    [{ bias: rand(4) }, 'bias has 4 elements, expected N = 5'],
    [{ bias: new Float64Array(5) as unknown as Float32Array }, 'bias must be a Float32Array or null'],
    [{ out: new Float32Array(11) }, 'out has 11 elements, expected M·N = 10'],
  ];
  for (const [o, msg] of cases) assert.throws(() => call(o), { message: `codebookGemm: ${msg}` }, msg);
  // the addon re-checks on its own (a call that bypasses TypeScript throws, it never reads out of bounds)
  assert.throws(() => addon!.codebookGemm(ok.x, M, K, N, new Uint8Array(2), 4, ok.cb, null, ok.out), { name: 'RangeError', message: 'shrink_native.codebookGemm: codes too short' });
  assert.throws(() => addon!.codebookGemm(ok.x, M, K, N, ok.codes, 4, rand(17), null, ok.out), { name: 'RangeError', message: 'shrink_native.codebookGemm: the codebook must hold 1 to 2^bits values' });
  assert.throws(() => addon!.codebookGemm(ok.x, M, K, N, ok.codes, 3, ok.cb, null, ok.out), { name: 'RangeError', message: 'shrink_native.codebookGemm: bits must be 4 or 8' });
});
