/**
 * Fuzz target "native" (issue #23): every function of the Node-API addon.
 *
 *  1. parity (in process): random shapes (0-size, 1, odd sizes, occasionally a few thousand elements), views with
 *     offsets, transposes, narrows and broadcasts (stride 0), random ops and parameters, through the native Backend
 *     wrapper (default and minNative = 0) against refBackend (the spec). Every typed array handed to native code sits
 *     between guard floats in a larger buffer: a guard that changes is an out-of-bounds write, and an out-of-bounds
 *     read of a guard (1e30) shows up as a difference from ref.
 *  2. abuse (in a child process, so that an abort or a segfault is caught): direct addon calls with random argument
 *     values — wrong types, wrong and empty lengths, null, NaN, negative, fractional and huge sizes (2^31, 2^32 ± 1,
 *     2^62, …), corrupt meta arrays — and the backend wrapper with bogus shapes/offsets/strides. Each call must return
 *     or throw an Error; the process must survive and the guards stay intact.
 *
 * Run alone: node --import tsx fuzz/targets/native.ts --cases N [--seed S] (JSON summary on stdout). Skipped (0 cases,
 * one note) when the addon is not built.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, type Backend, type View } from '../../src/backend/backend.ts';
import { refBackend } from '../../src/backend/ref/index.ts';
import { createNativeBackend, loadNative, type NativeAddon } from '../../src/backend/native/index.ts';
import { main, type Failure, type RunOptions, type Summary } from './tokenizers.ts';

const SELF = fileURLToPath(import.meta.url);
const GUARD = Math.fround(1e30);
const PAD = 8;

// ---- guarded arrays

const guarded: { buf: Float32Array; n: number }[] = [];
/** A Float32Array of n elements inside a buffer with PAD guard floats on each side. */
function gF32(n: number, fill?: (i: number) => number): Float32Array {
  const buf = new Float32Array(n + 2 * PAD).fill(GUARD);
  const a = buf.subarray(PAD, PAD + n);
  if (fill) for (let i = 0; i < n; i++) a[i] = fill(i);
  else a.fill(0);
  guarded.push({ buf, n });
  return a;
}
function checkGuards(): void {
  for (const { buf, n } of guarded)
    for (let i = 0; i < PAD; i++)
      if (buf[i] !== GUARD || buf[PAD + n + i] !== GUARD) {
        guarded.length = 0;
        throw new Error('a guard float around an array changed: out-of-bounds write');
      }
  guarded.length = 0;
}

function close(name: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = 2e-5): void {
  if (got.length !== want.length) throw new Error(`${name}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (g === w || (g !== g && w !== w)) continue;
    if (!(Math.abs(g - w) <= tol * (1 + Math.abs(w)))) throw new Error(`${name}: element ${i}: native ${g}, ref ${w}`);
  }
}

// ---- 1. parity

const dim = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 5 }) }, { weight: 1, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 6, max: 40 }) });
const shapeArb = fc.array(dim, { maxLength: 4 }).chain((s) =>
  // occasionally one long axis (threads, vector tails): keep numel ≤ ~40k
  fc.oneof({ weight: 9, arbitrary: fc.constant(s) }, { weight: 1, arbitrary: fc.integer({ min: 100, max: 3000 }).map((n) => [...s.slice(0, 1).map(() => 2), n]) }),
);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A view over `shape`: a permuted (transposed) base with extra margin (narrowed), an offset, and broadcast dims. */
const viewArb = (shape: readonly number[]) =>
  fc.record({
    perm: fc.shuffledSubarray([...shape.keys()], { minLength: shape.length, maxLength: shape.length }),
    margin: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: shape.length, maxLength: shape.length }),
    bcast: fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
    offset: fc.integer({ min: 0, max: 5 }),
    seed: fc.integer(),
  }).map(({ perm, margin, bcast, offset, seed }) => {
    // base dims in permuted order, each possibly larger than needed (a narrowed view)
    const baseDims = perm.map((d) => (bcast[d] ? 1 : shape[d]! + margin[d]!));
    const baseStrides: number[] = [];
    let s = 1;
    for (let k = baseDims.length - 1; k >= 0; k--) (baseStrides[k] = s), (s *= baseDims[k]!);
    const strides = shape.map((_, d) => (bcast[d] ? 0 : baseStrides[perm.indexOf(d)]!));
    let r = seed | 0;
    const data = gF32(offset + s, () => ((r = (Math.imul(r, 1103515245) + 12345) | 0), ((r >>> 8) / (1 << 24)) * 4 - 2));
    return { data, offset, strides } as View;
  });

interface ParityCase {
  name: string;
  run(b: Backend): Float32Array[];
}

const unaryOp = fc.constantFrom(...UNARY_OPS);
const sz = fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 20 }) }, { weight: 1, arbitrary: fc.integer({ min: 21, max: 2000 }) });
const vals = (n: number, seed: number, lo = -2, hi = 2) => {
  let r = seed | 0;
  return gF32(n, () => ((r = (Math.imul(r, 1103515245) + 12345) | 0), lo + ((r >>> 8) / (1 << 24)) * (hi - lo)));
};

const parityCase: fc.Arbitrary<ParityCase> = fc.oneof(
  shapeArb.chain((shape) => fc.tuple(fc.constant(shape), viewArb(shape), unaryOp, fc.double({ min: -2, max: 2, noNaN: true }), fc.double({ min: -2, max: 2, noNaN: true }))).map(([shape, x, op, a, b]) => ({
    name: `unary ${op} [${shape}] strides [${x.strides}] offset ${x.offset}`,
    run: (be: Backend) => {
      const out = gF32(numel(shape));
      be.unary(op, x, shape, out, op === 'clamp' ? Math.min(a, b) : a, op === 'clamp' ? Math.max(a, b) : b);
      return [out];
    },
  })),
  shapeArb.chain((shape) => fc.tuple(fc.constant(shape), viewArb(shape), viewArb(shape), fc.constantFrom(...BINARY_OPS))).map(([shape, a, b, op]) => ({
    name: `binary ${op} [${shape}] a [${a.strides}]+${a.offset} b [${b.strides}]+${b.offset}`,
    run: (be: Backend) => {
      const out = gF32(numel(shape));
      be.binary(op, a, b, shape, out);
      return [out];
    },
  })),
  shapeArb.chain((shape) => fc.tuple(fc.constant(shape), viewArb(shape), viewArb(shape), viewArb(shape))).map(([shape, c, a, b]) => ({
    name: `where [${shape}]`,
    run: (be: Backend) => {
      const cc = { ...c, data: c.data.map((v) => (v > 0 ? 1 : 0)) as Float32Array };
      const out = gF32(numel(shape));
      be.where(cc, a, b, shape, out);
      return [out];
    },
  })),
  fc.tuple(fc.constantFrom(...REDUCE_OPS), fc.integer({ min: 0, max: 6 }), sz, fc.integer({ min: 0, max: 6 }), fc.boolean(), fc.integer()).map(([op, outer, r, inner, withIdx, seed]) => ({
    name: `reduce ${op} ${outer}×${r}×${inner}`,
    run: (be: Backend) => {
      const x = vals(outer * r * inner, seed, op === 'prod' ? 0.5 : -2, op === 'prod' ? 1.5 : 2);
      const out = gF32(outer * inner);
      const idx = withIdx && (op === 'max' || op === 'min') ? new Int32Array(outer * inner) : null;
      be.reduce(op, x, outer, r, inner, out, idx);
      return idx ? [out, Float32Array.from(idx)] : [out];
    },
  })),
  fc.tuple(fc.integer({ min: 0, max: 6 }), sz, fc.boolean(), fc.integer()).map(([rows, n, log, seed]) => ({
    name: `softmax ${rows}×${n} log ${log}`,
    run: (be: Backend) => {
      const x = vals(rows * n, seed);
      const y = gF32(rows * n);
      be.softmax(x, rows, n, y, log);
      const g = vals(rows * n, seed + 1);
      const dx = gF32(rows * n);
      be.softmaxBackward(y, g, rows, n, dx, log);
      return [y, dx];
    },
  })),
  fc.tuple(fc.integer({ min: 0, max: 6 }), sz, fc.boolean(), fc.boolean(), fc.integer()).map(([rows, n, hasW, hasB, seed]) => ({
    name: `layerNorm/rmsNorm ${rows}×${n} w ${hasW} b ${hasB}`,
    run: (be: Backend) => {
      const x = vals(rows * n, seed);
      const w = hasW ? vals(n, seed + 1) : null;
      const b = hasB ? vals(n, seed + 2) : null;
      const out = gF32(rows * n), mean = gF32(rows), rstd = gF32(rows);
      be.layerNorm(x, w, b, rows, n, 1e-5, out, mean, rstd);
      const g = vals(rows * n, seed + 3);
      const dx = gF32(rows * n), dw = hasW ? gF32(n) : null, db = hasB ? gF32(n) : null;
      be.layerNormBackward(x, w, mean, rstd, g, rows, n, dx, dw, db);
      const out2 = gF32(rows * n), rstd2 = gF32(rows), dx2 = gF32(rows * n), dw2 = hasW ? gF32(n) : null;
      be.rmsNorm(x, w, rows, n, 1e-5, out2, rstd2);
      be.rmsNormBackward(x, w, rstd2, g, rows, n, dx2, dw2);
      return [out, mean, rstd, dx, ...(dw ? [dw] : []), ...(db ? [db] : []), out2, rstd2, dx2, ...(dw2 ? [dw2] : [])];
    },
  })),
  fc.tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.integer()).map(([V, rows, d, seed]) => ({
    name: `embedding V ${V} rows ${rows} dim ${d}`,
    run: (be: Backend) => {
      const w = vals(V * d, seed);
      const idx = Int32Array.from({ length: rows }, (_, i) => (i * 7 + seed) % V < 0 ? -((i * 7 + seed) % V) : (i * 7 + seed) % V);
      const out = gF32(rows * d);
      be.embedding(w, idx, d, out);
      const dw = gF32(V * d);
      be.embeddingBackward(vals(rows * d, seed + 1), idx, d, dw);
      return [out, dw];
    },
  })),
  fc.tuple(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 1, max: 300 }), fc.double({ min: 0, max: 0.3, noNaN: true }), fc.integer()).map(([rows, V, eps, seed]) => ({
    name: `crossEntropy ${rows}×${V} eps ${eps}`,
    run: (be: Backend) => {
      const x = vals(rows * V, seed, -4, 4);
      const t = Int32Array.from({ length: rows }, (_, i) => (i === 1 ? -100 : Math.abs(seed + i) % V));
      const loss = gF32(rows), lse = gF32(rows);
      be.crossEntropy(x, t, rows, V, -100, eps, loss, lse);
      const out = gF32(rows * V);
      be.crossEntropyBackward(x, t, lse, vals(rows, seed + 1), rows, V, -100, eps, out);
      return [loss, lse, out];
    },
  })),
  fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.boolean(), fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.integer()).map(
    ([batch, M, N, K, tA, tB, acc, pad, seed]) => ({
      name: `matmul batch ${batch} ${M}×${K}·${K}×${N} transA ${tA} transB ${tB} acc ${acc} pad ${pad}`,
      run: (be: Backend) => {
        const lda = (tA ? M : K) + pad, ldb = (tB ? K : N) + pad;
        const aSize = (tA ? K : M) * lda, bSize = (tB ? N : K) * ldb;
        const a = vals(batch * aSize + 3, seed), b = vals(batch * bSize + 3, seed + 1);
        const out = vals(batch * M * N, seed + 2);
        const aOffsets = Int32Array.from({ length: batch }, (_, i) => i * aSize + (i % 2));
        const bOffsets = Int32Array.from({ length: batch }, (_, i) => (batch - 1 - i) * bSize);
        be.matmul({ a, b, out, batch, M, N, K, aOffsets, bOffsets, lda, ldb, transA: tA, transB: tB, accumulate: acc });
        return [out];
      },
    }),
  ),
  fc.tuple(sz, unaryOp, fc.integer()).map(([n, op, seed]) => ({
    name: `unaryBackward ${op} n ${n}`,
    run: (be: Backend) => {
      const x = vals(n, seed, 0.1, 2);
      const y = gF32(n);
      refBackend.unary(op, { data: x, offset: 0, strides: [1] }, [n], y, 0.5, 1.5);
      const out = gF32(n);
      be.unaryBackward(op, x, y, vals(n, seed + 1), out, 0.5, 1.5);
      return [out];
    },
  })),
  fc.tuple(sz, fc.integer()).map(([n, seed]) => ({
    name: `adamw n ${n}`,
    run: (be: Backend) => {
      const p = vals(n, seed), m = vals(n, seed + 1), v = vals(n, seed + 2, 0, 1);
      be.adamw(p, vals(n, seed + 3), m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001);
      return [p, m, v];
    },
  })),
);

function parityProp(addon: NativeAddon) {
  const wrapped = createNativeBackend(addon, refBackend);
  const direct = createNativeBackend(addon, refBackend, { minNative: 0 });
  return fc.property(parityCase, fc.boolean(), fc.boolean(), (c, useDirect, simd) => {
    addon.setSimd(simd);
    try {
      const want = c.run(refBackend);
      const got = c.run(useDirect ? direct : wrapped);
      checkGuards();
      got.forEach((g, i) => close(`${c.name} (output ${i}, ${useDirect ? 'minNative 0' : 'default'}, simd ${simd})`, g, want[i]!, /matmul|adamw/.test(c.name) ? 1e-4 : 2e-5));
      // conversions, on the same data
    } finally {
      guarded.length = 0;
      addon.setSimd(true);
    }
  });
}

function convertProp(addon: NativeAddon) {
  return fc.property(fc.float32Array({ maxLength: 70 }), (src) => {
    const s = gF32(src.length, (i) => src[i]!);
    for (const [to, from] of [['f32ToF16', 'f16ToF32'], ['f32ToBf16', 'bf16ToF32']] as const) {
      const half = new Uint16Array(src.length);
      addon[to](s, half);
      const back = gF32(src.length);
      addon[from](half, back);
      for (let i = 0; i < src.length; i++) {
        const x = s[i]!, y = back[i]!;
        // round to nearest: half an ulp (f16: 2^-11 relative, 2^-25 absolute in the subnormals; bf16: 2^-8, 2^-134)
        if (x !== x ? y === y : Math.abs(y - x) > Math.abs(x) * (to === 'f32ToF16' ? 1e-3 : 4e-3) + (to === 'f32ToF16' ? 3e-8 : 1e-40) && !(Math.abs(x) > (to === 'f32ToF16' ? 65504 : 3.3895e38)))
          throw new Error(`${to}/${from}: ${x} → ${y}`);
      }
    }
    checkGuards();
  });
}

// ---- 2. abuse (child process)

/** Argument kinds of each addon function: f F32, f? F32|null, i I32, u16, u8, i8 (+ '?' nullable), n integer, d double, b bool, m meta. */
const SIGS: Record<string, string[]> = {
  unary: ['n', 'f', 'n', 'f', 'n', 'd', 'd'],
  unaryStrided: ['f', 'f', 'm1', 'd', 'd'],
  unaryBackward: ['n', 'f?', 'f?', 'f', 'f', 'd', 'd'],
  binary: ['f', 'f', 'f', 'm2'],
  binaryContig: ['n', 'f', 'n', 'f', 'n', 'f'],
  where: ['f', 'f', 'f', 'f', 'm3'],
  reduce: ['n', 'f', 'n', 'n', 'n', 'f', 'i?'],
  softmax: ['f', 'n', 'n', 'f', 'b'],
  softmaxBackward: ['f', 'f', 'n', 'n', 'f', 'b'],
  layerNorm: ['f', 'f?', 'f?', 'n', 'n', 'd', 'f', 'f', 'f'],
  layerNormBackward: ['f', 'f?', 'f', 'f', 'f', 'n', 'n', 'f', 'f?', 'f?'],
  rmsNorm: ['f', 'f?', 'n', 'n', 'd', 'f', 'f'],
  rmsNormBackward: ['f', 'f?', 'f', 'f', 'n', 'n', 'f', 'f?'],
  embedding: ['f', 'i', 'n', 'f'],
  embeddingBackward: ['f', 'i', 'n', 'f'],
  crossEntropy: ['f', 'i', 'n', 'n', 'n', 'd', 'f', 'f'],
  crossEntropyBackward: ['f', 'i', 'f', 'f', 'n', 'n', 'n', 'd', 'f'],
  adamw: ['f', 'f', 'f', 'f', 'd', 'd', 'd', 'd', 'd', 'd', 'd'],
  f32ToF16: ['f', 'u16'],
  f16ToF32: ['u16', 'f'],
  f32ToBf16: ['f', 'u16'],
  bf16ToF32: ['u16', 'f'],
  sgemm: ['f', 'f', 'f', 'n', 'n', 'n', 'n', 'i', 'i', 'n', 'n', 'b', 'b', 'b'],
  sgemmRef: ['f', 'f', 'f', 'n', 'n', 'n', 'n', 'i', 'i', 'n', 'n', 'b', 'b', 'b'],
  quantizeRowsStatic: ['f', 'n', 'n', 'n', 'd', 'n', 'u8'],
  quantizeRowsU7: ['f', 'n', 'n', 'n', 'u8', 'f', 'i'],
  packInt8Weight: ['i8', 'n', 'n', 'i8', 'i'],
  int8Gemm: ['u8', 'n', 'n', 'i8', 'n', 'f', 'i', 'f', 'b', 'i', 'f?', 'f'],
  dequantRows: ['i8?', 'u8?', 'n', 'f', 'i8?', 'u8?', 'n', 'b', 'n', 'n', 'n', 'f'],
  woGemm: ['f', 'n', 'i8?', 'u8?', 'n', 'f', 'i8?', 'u8?', 'n', 'b', 'n', 'n', 'f?', 'f'],
  setSimd: ['b'],
  setGemmKernel: ['s'],
  info: [],
};
/** Functions in files this target may report but not fix (gemm.cc, quant.cc). */
export const REPORT_ONLY = new Set(['sgemm', 'sgemmRef', 'quantizeRowsStatic', 'quantizeRowsU7', 'packInt8Weight', 'int8Gemm', 'dequantRows', 'woGemm', 'setGemmKernel']);

const INTS = [0, 1, 2, 3, 4, 5, 7, 8, 16, 17, -1, -2, 1.5, NaN, Infinity, -Infinity, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53, 2 ** 62, 2 ** 63, -(2 ** 63), 2 ** 62 + 2 ** 10, 1e300];
const I32S = [0, 1, 2, 3, 4, 5, -1, -2, 2 ** 31 - 1, -(2 ** 31), 65536, 65537, 46341, 1 << 30, 16, 17];
const LENS = [0, 1, 2, 3, 4, 5, 8, 16, 17, 33, 64];

interface AbuseCase {
  fn: string;
  args: unknown[];
}
/** One random call. `pick` draws from a seeded stream so the parent can name a crashing case by seed and index. */
function makeCase(fns: string[], rnd: () => number): AbuseCase {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const fn = pick(fns);
  const sig = SIGS[fn]!;
  const wrong = rnd() < 0.1;
  const arr = (ctor: new (n: number) => ArrayLike<number> & object, elem: () => number) => {
    const n = pick(LENS);
    const a = ctor === Float32Array ? gF32(n) : new ctor(n);
    for (let i = 0; i < n; i++) (a as unknown as number[])[i] = elem();
    return a;
  };
  const junk = () => pick<unknown>([null, undefined, 0, 'x', {}, [1, 2], new Float64Array(4), new Int32Array(4), new Float32Array(4), new Uint16Array(3), true, 2 ** 40]);
  const args = sig.map((k) => {
    if (wrong && rnd() < 0.3) return junk();
    const nullable = k.endsWith('?');
    if (nullable && rnd() < 0.3) return null;
    switch (k.replace('?', '')) {
      case 'f': return arr(Float32Array, () => (rnd() - 0.5) * 4);
      case 'i': return arr(Int32Array, () => pick(I32S) % (rnd() < 0.7 ? 4 : 2 ** 31));
      case 'u16': return arr(Uint16Array, () => Math.floor(rnd() * 65536));
      case 'u8': return arr(Uint8Array, () => Math.floor(rnd() * 256));
      case 'i8': return arr(Int8Array, () => Math.floor(rnd() * 256) - 128);
      case 'n': return rnd() < 0.6 ? pick([0, 1, 2, 3, 4]) : pick(INTS);
      case 'd': return rnd() < 0.8 ? rnd() * 2 - 0.5 : pick(INTS);
      case 'b': return rnd() < 0.5;
      case 's': return pick(['portable', 'auto', 'avx2', '', undefined]);
      default: { // meta for m1/m2/m3: [op, offsets…, nd, shape, strides per operand]
        const nops = Number(k.slice(1));
        const lead = fn === 'where' ? 3 : 1 + nops;
        const nd = rnd() < 0.9 ? Math.floor(rnd() * 4) : pick([16, 17, -1, 2 ** 31 - 1]);
        const len = rnd() < 0.85 ? lead + 1 + Math.max(0, nd) * (1 + nops) : pick([0, 1, 2, 3, 5]);
        const m = new Int32Array(Math.min(Math.max(len, 0), 200));
        for (let i = 0; i < m.length; i++) m[i] = rnd() < 0.7 ? pick([0, 1, 2, 3, 4]) : pick(I32S);
        if (m.length > lead) m[lead] = nd;
        return m;
      }
    }
  });
  return { fn, args };
}

/** Wrapper abuse: the Backend wrapper with bogus shapes, strides and offsets must throw an Error or agree with nothing going out of bounds. */
function wrapperCase(be: Backend, rnd: () => number): { desc: string; call: () => void } {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const nd = Math.floor(rnd() * 3);
  const shape = Array.from({ length: nd }, () => (rnd() < 0.8 ? Math.floor(rnd() * 5) : pick(INTS)));
  const view = (): View => ({ data: gF32(pick(LENS)), offset: rnd() < 0.7 ? Math.floor(rnd() * 4) : pick(INTS), strides: shape.map(() => (rnd() < 0.7 ? Math.floor(rnd() * 4) : pick(INTS))) });
  const out = gF32(rnd() < 0.5 ? Math.floor(Math.max(0, Math.min(64, shape.reduce((a, b) => a * (Number.isFinite(b) ? b : 1), 1)))) : pick(LENS));
  const what = Math.floor(rnd() * 3);
  const x = view(), y = view(), z = view();
  const desc = `wrapper ${['unary', 'binary', 'where'][what]} shape [${shape}] views ${JSON.stringify([x, y, z].map((v) => [v.data.length, v.offset, v.strides]))} out ${out.length}`;
  const uop = pick(UNARY_OPS), bop = pick(BINARY_OPS);
  return {
    desc: `${desc} op ${what === 0 ? uop : bop}`,
    call: () => (what === 0 ? be.unary(uop, x, shape, out, 1, 0) : what === 1 ? be.binary(bop, x, y, shape, out) : be.where(x, y, z, shape, out)),
  };
}

function mulberry(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Child: runs `cases` abuse calls from `seed`, writing the index of the call in progress to `progress` (a file). */
function child(seed: number, cases: number, progress: string, skip: string[]): void {
  const addon = loadNative()!;
  const be = createNativeBackend(addon, refBackend, { minNative: 0 });
  const fns = Object.keys(SIGS).filter((f) => typeof (addon as unknown as Record<string, unknown>)[f] === 'function' && !skip.includes(f));
  const fd = fs.openSync(progress, 'w');
  const rnd = mulberry(seed);
  const bad: string[] = [];
  for (let k = 0; k < cases; k++) {
    const useWrapper = rnd() < 0.15;
    let desc = '';
    let c: AbuseCase | null = null;
    if (!useWrapper) c = makeCase(fns, rnd);
    const line = `${k}\n`;
    fs.writeSync(fd, line, 0);
    try {
      if (c) {
        desc = `${c.fn}(${c.args.map(describe).join(', ')})`;
        (addon as unknown as Record<string, (...a: unknown[]) => unknown>)[c.fn]!(...c.args);
      } else {
        const w = wrapperCase(be, rnd);
        desc = w.desc;
        w.call();
      }
    } catch (e) {
      if (!(e instanceof Error)) bad.push(`${desc}: threw a non-Error ${String(e)}`);
    }
    try {
      checkGuards();
    } catch (e) {
      bad.push(`${desc}: ${(e as Error).message}`);
    }
    if (bad.length >= 20) break;
  }
  addon.setSimd(true);
  addon.setGemmKernel?.('auto');
  process.stdout.write(JSON.stringify({ bad }) + '\n');
}

function describe(a: unknown): string {
  if (ArrayBuffer.isView(a)) return `${a.constructor.name}(${(a as unknown as ArrayLike<number>).length})${a instanceof Int32Array && a.length <= 24 ? `[${a}]` : ''}`;
  return typeof a === 'string' ? JSON.stringify(a) : String(a);
}

/** Replays abuse case number `index` of `seed` in-process and returns its description (for crash reports). */
export function describeCase(seed: number, index: number, skip: string[]): string {
  const addon = loadNative()!;
  const fns = Object.keys(SIGS).filter((f) => typeof (addon as unknown as Record<string, unknown>)[f] === 'function' && !skip.includes(f));
  const rnd = mulberry(seed);
  const be: Backend = { ...refBackend, unary() {}, binary() {}, where() {} } as Backend;
  let desc = '';
  for (let k = 0; k <= index; k++) {
    const useWrapper = rnd() < 0.15;
    if (useWrapper) desc = wrapperCase(be, rnd).desc;
    else {
      const c = makeCase(fns, rnd);
      desc = `${c.fn}(${c.args.map(describe).join(', ')})`;
    }
    guarded.length = 0;
  }
  return desc;
}

function runAbuse(cases: number, seed: number, failures: Failure[], verbose: boolean, skipFns: readonly string[] = []): number {
  const progress = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-fuzz-native-')), 'progress');
  const skip: string[] = [...skipFns];
  const crashes = new Map<string, number>();
  let done = 0;
  let batch = 0;
  while (done < cases) {
    const n = Math.min(20000, cases - done);
    const s = seed + 1000 + batch++;
    const r = spawnSync(process.execPath, ['--import', 'tsx', SELF, '--child', String(s), String(n), progress, skip.join(',')], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
      timeout: 60_000 + n * 5, // a call that does not return (a loop that does not end) is a failure too
    });
    if (r.status === 0) {
      const { bad } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bad: string[] };
      for (const b of bad) failures.push({ property: 'native abuse', seed: s, counterexample: b.slice(0, 2000), error: b.split(': ').pop()! });
      done += n;
      continue;
    }
    const at = Number(fs.readFileSync(progress, 'utf8').trim() || 0);
    const desc = describeCase(s, at, skip);
    const fn = desc.slice(0, desc.indexOf('('));
    const why = r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 'did not return (timeout)' : `child process died (${r.signal ?? `exit ${r.status}`})`;
    failures.push({ property: 'native abuse', seed: s, path: String(at), counterexample: desc.slice(0, 2000), error: `${why}: ${r.stderr.slice(-600)}` });
    if (verbose) process.stderr.write(`native: crash in ${desc.slice(0, 300)}\n`);
    crashes.set(fn, (crashes.get(fn) ?? 0) + 1);
    if (crashes.get(fn)! >= 2 && fn) skip.push(fn); // keep fuzzing the rest
    done += at + 1;
  }
  fs.rmSync(path.dirname(progress), { recursive: true, force: true });
  return done;
}

/** skipFns: addon functions left out of the abuse calls (known defects being fixed elsewhere). */
export async function run(opts: RunOptions & { skipFns?: readonly string[] }): Promise<Summary> {
  const t0 = performance.now();
  const addon = loadNative();
  if (!addon) return { target: 'native', cases: 0, seconds: 0, failures: [], note: 'native addon not built' } as Summary;
  const seed = opts.seed ?? 0x5eed;
  const failures: Failure[] = [];
  let cases = 0;
  const inproc = [
    { name: 'native parity vs ref', prop: parityProp(addon), share: 0.45 },
    { name: 'f16/bf16 conversions', prop: convertProp(addon), share: 0.05 },
  ];
  for (const [k, p] of inproc.entries()) {
    const t1 = performance.now();
    const numRuns = Math.max(1, Math.round(opts.cases * p.share));
    const d = await fc.check(p.prop as fc.IRawProperty<unknown>, { numRuns, seed: seed + k, endOnFailure: false });
    cases += d.numRuns + (d.failed ? 1 : 0);
    if (d.failed)
      failures.push({ property: p.name, seed: seed + k, path: d.counterexamplePath ?? undefined, counterexample: fc.stringify(d.counterexample).slice(0, 2000), error: String((d.errorInstance as Error)?.message ?? d.errorInstance).slice(0, 2000) });
    if (opts.verbose) process.stderr.write(`native: ${p.name}: ${d.numRuns} cases, ${((performance.now() - t1) / 1000).toFixed(1)} s${d.failed ? ' FAILED' : ''}\n`);
  }
  const t2 = performance.now();
  const n = runAbuse(Math.max(1, opts.cases - cases), seed, failures, !!opts.verbose, opts.skipFns);
  cases += n;
  if (opts.verbose) process.stderr.write(`native: abuse (child process): ${n} cases, ${((performance.now() - t2) / 1000).toFixed(1)} s\n`);
  return { target: 'native', cases, seconds: +((performance.now() - t0) / 1000).toFixed(2), failures };
}

export const target = { name: 'native', run };
export default target;

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) child(Number(process.argv[i + 1]), Number(process.argv[i + 2]), process.argv[i + 3]!, (process.argv[i + 4] ?? '').split(',').filter(Boolean));
  else await main('native', run);
}
