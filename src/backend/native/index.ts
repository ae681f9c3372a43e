/**
 * The `native` backend: the Node-API addon (native/*.cc, built into build/Release/shrink_native.node by
 * `npm run build:native`) behind the Backend interface. Typed arrays are handed over without copying.
 *
 * Per-call cost is dominated by Node-API unwrapping each typed-array argument (~85 ns, ENGINE-NOTES §1.3), so:
 * shapes, strides, offsets and the op code of strided calls travel in one reused Int32Array (`meta`); scalars go as
 * plain numbers; nothing is allocated per call. Any call with a Float64Array (gradient checks) goes to `ref`.
 *
 * V8 stores typed arrays of ≤ 64 bytes inside the JS heap and has to move their storage out ("externalize") the
 * first time native code asks for it, which costs more than a small kernel. So outputs of ≤ 16 floats run on `ref`
 * (faster than any native call at that size), and tiny inputs or side outputs next to a large main output are
 * copied through persistent off-heap scratch arrays.
 *
 * The op layer validates everything before it gets here; the addon re-checks types and extents (a mistake there
 * throws a TypeError/RangeError rather than crashing the process).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, type Backend, type FArray, type UnaryOp, type View } from '../backend.ts';

type F32 = Float32Array;

/** Functions exported by the addon. Signatures are those of native/*.cc; `meta` layouts are documented there. */
export interface NativeAddon {
  /**
   * avx2: the AVX2+FMA kernels run (the CPU has them, this build has them and SHRINK_ISA allows them); isa: the
   * instruction-set level the kernels use (the CPU's, lowered by SHRINK_ISA); cpuIsa: the CPU's own; isaRequested:
   * SHRINK_ISA or null; cpu: what the CPU and OS support (cpuid + xgetbv), whatever SHRINK_ISA says; denormals:
   * 'flush' (FTZ+DAZ inside kernels, the default) or 'keep' (SHRINK_DENORMALS=keep); threads: the pool size;
   * maxThreads: the largest size setThreads accepts; threadSpawnFailed: the system refused a worker thread (the pool
   * runs on fewer); x86: the build contains the x86 SIMD kernels (false on arm64 and other targets: portable only).
   */
  info(): {
    avx2: boolean;
    isa: IsaLevel;
    cpuIsa: IsaLevel;
    isaRequested: string | null;
    cpu: { avx2: boolean; f16c: boolean; avx512: boolean; avx512vnni: boolean; avx512bf16: boolean; avxvnni: boolean; amx: boolean };
    denormals: DenormalMode;
    threads: number;
    maxThreads: number;
    threadSpawnFailed: boolean;
    x86: boolean;
  };
  /** The path each kernel family dispatches to now, e.g. {sgemm: 'avx2 6x16', int8: 'avx2 vpmaddubsw', elementwise: 'avx2', …}. */
  kernels(): Record<string, string>;
  /** Tests and benchmarks only: sets the denormal mode for later calls; returns the mode in effect. */
  _setDenormals(mode?: DenormalMode): DenormalMode;
  /** Tests only: the FTZ+DAZ state on the JS thread outside kernels, inside a kernel, and on the pool's workers (null: 1 thread). */
  _denormalState(): { js: boolean; kernel: boolean; workers: boolean | null };
  /** Sets the pool size (the caller counts as one thread), an integer in [1, maxThreads] (else a RangeError); returns the new size. */
  setThreads(n: number): number;
  /** Tests only: starting a worker thread fails (as EAGAIN would) once this many workers exist; -1 lifts the limit. */
  _setThreadSpawnLimit(workers: number): void;
  /** Enables/disables the AVX2/F16C paths of the elementwise, reduce, nn, convert and quant kernels (for tests); returns whether they are active. */
  setSimd(enabled?: boolean): boolean;

  sgemm(a: F32, b: F32, out: F32, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
  /** Triple-loop reference GEMM (tests). */
  sgemmRef(a: F32, b: F32, out: F32, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
  setGemmBlocking(kc?: number, mc?: number, nc?: number): [number, number, number];
  setGemmKernel(name?: 'auto' | 'avx512' | 'avx2' | 'portable'): 'avx512' | 'avx2' | 'portable';

  /** out[0, n) = f(x[xOffset, xOffset + n)). */
  unary(op: number, x: F32, xOffset: number, out: F32, n: number, alpha: number, beta: number): void;
  /** meta = [op, xOffset, nd, shape[nd], strides[nd]]; out is contiguous over shape. */
  unaryStrided(x: F32, out: F32, meta: Int32Array, alpha: number, beta: number): void;
  /** out = g·f'(x) over out.length elements; x or y may be null when the op's derivative does not read it. */
  unaryBackward(op: number, x: F32 | null, y: F32 | null, g: F32, out: F32, alpha: number, beta: number): void;
  /** meta = [op, aOffset, bOffset, nd, shape[nd], aStrides[nd], bStrides[nd]]. */
  binary(a: F32, b: F32, out: F32, meta: Int32Array): void;
  /** Both operands contiguous: out[i] = a[aOffset + i] op b[bOffset + i] over out.length elements. */
  binaryContig(op: number, a: F32, aOffset: number, b: F32, bOffset: number, out: F32): void;
  /** meta = [cOffset, aOffset, bOffset, nd, shape[nd], cStrides[nd], aStrides[nd], bStrides[nd]]. */
  where(cond: F32, a: F32, b: F32, out: F32, meta: Int32Array): void;
  reduce(op: number, x: F32, outer: number, r: number, inner: number, out: F32, idx: Int32Array | null): void;

  softmax(x: F32, rows: number, n: number, out: F32, log: boolean): void;
  softmaxBackward(y: F32, g: F32, rows: number, n: number, out: F32, log: boolean): void;
  layerNorm(x: F32, w: F32 | null, b: F32 | null, rows: number, n: number, eps: number, out: F32, mean: F32, rstd: F32): void;
  layerNormBackward(x: F32, w: F32 | null, mean: F32, rstd: F32, g: F32, rows: number, n: number, dx: F32, dw: F32 | null, db: F32 | null): void;
  rmsNorm(x: F32, w: F32 | null, rows: number, n: number, eps: number, out: F32, rstd: F32): void;
  rmsNormBackward(x: F32, w: F32 | null, rstd: F32, g: F32, rows: number, n: number, dx: F32, dw: F32 | null): void;
  /** Row count = idx.length. */
  embedding(w: F32, idx: Int32Array, dim: number, out: F32): void;
  embeddingBackward(g: F32, idx: Int32Array, dim: number, dw: F32): void;
  crossEntropy(x: F32, t: Int32Array, rows: number, V: number, ignoreIndex: number, eps: number, loss: F32, lse: F32): void;
  crossEntropyBackward(x: F32, t: Int32Array, lse: F32, gRow: F32, rows: number, V: number, ignoreIndex: number, eps: number, out: F32): void;
  /** In place over p.length elements. */
  adamw(p: F32, g: F32, m: F32, v: F32, lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number): void;
  /** Fused inverted dropout (xoshiro128** stream of Generator.nextU32); state: 4 words, advanced in place. Optional: older builds lack it. */
  dropout?(x: F32, out: F32, state: Int32Array, threshold: number, scale: number): void;

  /** Converts src.length elements; dst must be at least as long. Round to nearest even; bit-exact with src/tensor/dtype.ts. */
  f32ToF16(src: F32, dst: Uint16Array): void;
  f16ToF32(src: Uint16Array, dst: F32): void;
  f32ToBf16(src: F32, dst: Uint16Array): void;
  bf16ToF32(src: Uint16Array, dst: F32): void;

  /** Integer kernels of quantized layers (native/quant.cc; src/compress/quant/kernels.ts calls them). */
  quantizeRowsStatic(x: F32, M: number, K: number, Kp: number, scale: number, zero: number, q: Uint8Array): void;
  quantizeRowsU7(x: F32, M: number, K: number, Kp: number, q: Uint8Array, scale: F32, zero: Int32Array): void;
  packInt8Weight(w: Int8Array, N: number, K: number, packed: Int8Array, rowSum: Int32Array): void;
  int8Gemm(qa: Uint8Array, M: number, Kp: number, packed: Int8Array, N: number, sa: F32, za: Int32Array, sw: F32, swPerTensor: boolean, rowSum: Int32Array, bias: F32 | null, out: F32): void;
  dequantRows(c8: Int8Array | null, c4: Uint8Array | null, bits: number, scale: F32, z8: Int8Array | null, z4: Uint8Array | null, groupSize: number, perTensor: boolean, K: number, r0: number, r1: number, out: F32): void;
  woGemm(x: F32, M: number, c8: Int8Array | null, c4: Uint8Array | null, bits: number, scale: F32, z8: Int8Array | null, z4: Uint8Array | null, groupSize: number, perTensor: boolean, K: number, N: number, bias: F32 | null, out: F32): void;

  /**
   * The codebook GEMM of weight-shared layers (native/codebook.cc; ClusteredLinear calls it through codebookGemm()
   * below, which checks the arguments): out = x · Wᵀ + bias with W[n, k] = codebook[code[n·K + k]], the B panels
   * looked up while they are packed. codes: one byte per weight (bits 8) or two (bits 4, low nibble = even index).
   */
  codebookGemm(x: F32, M: number, K: number, N: number, codes: Uint8Array, bits: number, codebook: F32, bias: F32 | null, out: F32): void;
  /** The lookup path codebookGemm runs now: 'avx512: …', 'avx2: …' or 'portable' (SHRINK_ISA, setSimd). */
  codebookKernel(): string;

  /** SIGINT/SIGTERM watch (native/signal.cc; src/train/interrupt.ts is the API). signalWatch returns false where unsupported. */
  signalWatch(): boolean;
  /** Ends one watch; returns the number left (the last one restores the previous handlers). */
  signalUnwatch(): number;
  /** The signal number received while watching, or 0. */
  signalPending(): number;
  signalClear(): void;
}

/** Instruction-set levels of the native kernels (native/simd.h); SHRINK_ISA caps the level. */
export type IsaLevel = 'avx512' | 'avx2' | 'portable';
/** 'flush': kernels run with FTZ+DAZ, subnormal floats read and write as ±0 (default); 'keep': IEEE subnormals. */
export type DenormalMode = 'flush' | 'keep';
export const ISA_VALUES = ['avx512', 'avx2', 'portable', 'native'] as const;
export const DENORMAL_VALUES = ['flush', 'keep'] as const;

/**
 * Checks SHRINK_ISA and SHRINK_DENORMALS (the addon reads them once, when it loads) and throws a clear Error for a
 * value it does not know, instead of the addon failing to load and Shrink falling back to `ref`.
 */
export function checkNativeEnv(env: NodeJS.ProcessEnv = process.env): void {
  const isa = env.SHRINK_ISA;
  if (isa !== undefined && isa !== '' && !(ISA_VALUES as readonly string[]).includes(isa))
    throw new Error(`SHRINK_ISA must be 'avx512', 'avx2' or 'portable' (or 'native'/unset: all the CPU has), got '${isa}'`);
  const dn = env.SHRINK_DENORMALS;
  if (dn !== undefined && dn !== '' && !(DENORMAL_VALUES as readonly string[]).includes(dn))
    throw new Error(`SHRINK_DENORMALS must be 'flush' (the default) or 'keep', got '${dn}'`);
}

/** The addon file: build/Release/shrink_native.node, or $SHRINK_NATIVE_ADDON (another build of it, e.g. a portable-only one). */
export const ADDON_PATH = process.env.SHRINK_NATIVE_ADDON || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/Release/shrink_native.node');

let loaded: NativeAddon | null | undefined;
let loadError: string | null = null;

/**
 * SHRINK_REQUIRE_NATIVE=1 (CI sets it): the addon must load. The backend registry then throws instead of falling
 * back to `ref`, and the native tests fail instead of skipping, so a broken build cannot pass unnoticed.
 */
export function nativeRequired(): boolean {
  return process.env.SHRINK_REQUIRE_NATIVE === '1';
}

/**
 * For tests of the addon: false when it loaded (run them), else the reason to skip them. Throws when
 * SHRINK_REQUIRE_NATIVE=1 and the addon did not load, which fails the test file instead of skipping it.
 */
export function nativeTestSkip(): string | false {
  if (loadNative()) return false;
  const why = `native addon not available (${nativeLoadError()})`;
  if (nativeRequired()) throw new Error(`SHRINK_REQUIRE_NATIVE=1 but the ${why}; run 'npm run build:native' and fix the build`);
  return why;
}

/** Why the addon did not load (null if it did or was not tried). */
export function nativeLoadError(): string | null {
  return loadError;
}

/** The addon (loaded once), or null — never a throw — when it is not built or fails to load; see nativeLoadError(). */
export function loadNative(): NativeAddon | null {
  if (loaded !== undefined) return loaded;
  if (!existsSync(ADDON_PATH)) {
    loadError = `${ADDON_PATH} not found (run 'npm run build:native')`;
    return (loaded = null);
  }
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (e) {
    loadError = e instanceof Error ? e.message : String(e);
    loaded = null;
  }
  return loaded;
}

/**
 * Bulk float16/bfloat16 conversion through the addon, for the dtype layer. Each helper converts src.length elements
 * into dst (allocated when omitted) and returns it, or returns null when the addon is not available.
 */
export const nativeConvert = {
  f32ToF16(src: Float32Array, dst?: Uint16Array): Uint16Array | null {
    const a = loadNative();
    if (!a) return null;
    const d = dst ?? new Uint16Array(src.length);
    a.f32ToF16(src, d);
    return d;
  },
  f16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array | null {
    const a = loadNative();
    if (!a) return null;
    const d = dst ?? new Float32Array(src.length);
    a.f16ToF32(src, d);
    return d;
  },
  f32ToBf16(src: Float32Array, dst?: Uint16Array): Uint16Array | null {
    const a = loadNative();
    if (!a) return null;
    const d = dst ?? new Uint16Array(src.length);
    a.f32ToBf16(src, d);
    return d;
  },
  bf16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array | null {
    const a = loadNative();
    if (!a) return null;
    const d = dst ?? new Float32Array(src.length);
    a.bf16ToF32(src, d);
    return d;
  },
};

const code = <T extends string>(names: readonly T[]): Record<T, number> => Object.fromEntries(names.map((o, i) => [o, i])) as Record<T, number>;
const UNARY_CODE = code(UNARY_OPS);
const BINARY_CODE = code(BINARY_OPS);
const REDUCE_CODE = code(REDUCE_OPS);

/** Views with more dims than this (after nothing is collapsed) run on `ref`; native/elementwise.cc allows 16. */
export const MAX_DIMS = 16;
/** Outputs up to this many elements run on `ref` (see the file comment). */
export const TINY = 16;
/** Offsets, strides and sizes go through an Int32Array. */
const I32_MAX = 0x7fffffff;

/**
 * out[M, N] = x[M, K] · Wᵀ + bias with W[n, k] = codebook[code[n·K + k]], on the addon's codebookGemm (the float32
 * weight never exists whole). Every argument is checked here first, each with an Error that names it; that every
 * code is below codebook.length is the caller's invariant (ClusteredLinear checks its codes once per load; the
 * kernel reads a zero-padded copy of the codebook, so a bad code can never read out of bounds either way).
 * codes: N·K bytes (bits 8) or ⌈N·K/2⌉ (bits 4, two per byte, low nibble = even index of the flattened n·K + k).
 */
export function codebookGemm(
  addon: Pick<NativeAddon, 'codebookGemm'>,
  x: F32,
  M: number,
  K: number,
  N: number,
  codes: Uint8Array,
  bits: number,
  codebook: F32,
  bias: F32 | null,
  out: F32,
): void {
  const fail = (what: string): never => {
    throw new Error(`codebookGemm: ${what}`);
  };
  for (const [name, v, min] of [['M', M, 0], ['K', K, 1], ['N', N, 1]] as const)
    if (!Number.isInteger(v) || v < min || v > I32_MAX) fail(`${name} must be an integer in [${min}, 2^31), got ${v}`);
  if (bits !== 4 && bits !== 8) fail(`bits must be 4 or 8, got ${bits}`);
  if (!(x instanceof Float32Array)) fail('x must be a Float32Array');
  if (x.length !== M * K) fail(`x has ${x.length} elements, expected M·K = ${M * K}`);
  const nCodes = bits === 8 ? N * K : Math.ceil((N * K) / 2);
  if (!(codes instanceof Uint8Array)) fail('codes must be a Uint8Array');
  if (codes.length !== nCodes) fail(`codes has ${codes.length} bytes, expected ${nCodes} for ${N}·${K} ${bits}-bit codes`);
  if (!(codebook instanceof Float32Array)) fail('codebook must be a Float32Array');
  if (codebook.length < 1 || codebook.length > 2 ** bits) fail(`the codebook has ${codebook.length} values, expected 1 to ${2 ** bits} for ${bits}-bit codes`);
  if (bias !== null && !(bias instanceof Float32Array)) fail('bias must be a Float32Array or null');
  if (bias !== null && bias.length !== N) fail(`bias has ${bias.length} elements, expected N = ${N}`);
  if (!(out instanceof Float32Array)) fail('out must be a Float32Array');
  if (out.length !== M * N) fail(`out has ${out.length} elements, expected M·N = ${M * N}`);
  addon.codebookGemm(x, M, K, N, codes, bits, codebook, bias, out);
}

/** unaryBackward reads y for these ops, x for all others but the four constant-derivative ones. */
const DERIV_NEEDS_Y = new Set<UnaryOp>(['exp', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'recip']);
const DERIV_NEEDS_NOTHING = new Set<UnaryOp>(['copy', 'neg', 'affine', 'sign']);

export interface NativeBackendOptions {
  /**
   * Outputs of at most this many elements run on `ref` (default TINY = 16). Tests pass 0 so that every size,
   * 1-element outputs included, reaches the native kernels.
   */
  minNative?: number;
}

export function createNativeBackend(addon: NativeAddon, ref: Backend, options: NativeBackendOptions = {}): Backend {
  const MIN = options.minNative ?? TINY;
  const meta = new Int32Array(4 + MAX_DIMS * 4);
  // Off-heap scratch (an explicit ArrayBuffer is never stored in the JS heap).
  const fs = [0, 1, 2, 3, 4, 5].map(() => new Float32Array(new ArrayBuffer(TINY * 4)));
  const is = [0, 1].map(() => new Int32Array(new ArrayBuffer(TINY * 4)));
  /** Exact-length off-heap Int32Arrays for index inputs whose length is the row count (embedding, targets). */
  const iByLen = Array.from({ length: TINY + 1 }, (_, k) => new Int32Array(new ArrayBuffer(k * 4)));

  /** `a`, or its contents in scratch slot k when it is tiny (the scratch may be longer; callers pass sizes). */
  const offF = (a: F32, k: number): F32 => {
    if (a.length > TINY) return a;
    const s = fs[k]!;
    s.set(a);
    return s;
  };
  const offI = (a: Int32Array, k: number): Int32Array => {
    if (a.length > TINY) return a;
    const s = is[k]!;
    s.set(a);
    return s;
  };
  /** Exact-length copy for index arrays whose length the kernel reads. */
  const offIdx = (a: Int32Array): Int32Array => {
    if (a.length > TINY) return a;
    const s = iByLen[a.length]!;
    s.set(a);
    return s;
  };
  /** Output slot: `a` itself, or scratch slot k when tiny (copy back with back()). */
  const outF = (a: F32, k: number): F32 => (a.length > TINY ? a : fs[k]!);
  const back = (dst: F32, src: F32): void => {
    if (dst !== src) for (let i = 0; i < dst.length; i++) dst[i] = src[i]!;
  };
  /**
   * Shapes too many dims for the addon run on ref; and a shape whose element count `out` cannot hold (or that is not
   * a count: negative, fractional, NaN) is an Error on either path, before ref would loop over billions of elements.
   */
  const tooManyDims = (shape: readonly number[], out: FArray): boolean => {
    let n = 1;
    for (let d = 0; d < shape.length; d++) n *= shape[d]!;
    if (!(n <= out.length) || !Number.isInteger(n) || n < 0)
      throw new Error(`native backend: shape [${shape.join(', ')}] does not match an output of ${out.length} elements`);
    return shape.length > MAX_DIMS;
  };
  const big = (a: FArray): boolean => a.length > I32_MAX;

  /**
   * An offset, size or stride bound for the Int32Array `meta` (or an int64 argument): it must be an int32, else an
   * Error. Writing 2^32 + 5 or 1.5 into meta would silently become 5 or 1 and read the wrong elements.
   */
  const int32 = (v: number, what: string): number => {
    if ((v | 0) !== v) throw new Error(`native backend: ${what} must be an integer in [-2^31, 2^31), got ${v}`);
    return v;
  };
  /** Writes nd, shape and each view's strides at meta[at…]; returns meta. */
  const pack = (at: number, shape: readonly number[], v0: View, v1: View | null, v2: View | null): Int32Array => {
    const nd = shape.length;
    meta[at] = nd;
    let p = at + 1;
    for (let d = 0; d < nd; d++) meta[p++] = int32(shape[d]!, 'a dimension');
    for (const v of [v0, v1, v2]) {
      if (!v) continue;
      const st = v.strides;
      if (st.length < nd) throw new Error(`native backend: a view has ${st.length} strides for ${nd} dimensions`);
      for (let d = 0; d < nd; d++) meta[p++] = int32(st[d]!, 'a stride');
    }
    return meta;
  };
  /** numel of shape when the view reads it contiguously from its offset, else -1. */
  const contiguousNumel = (shape: readonly number[], strides: readonly number[]): number => {
    let expect = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const s = shape[d]!;
      if (s !== 1 && strides[d] !== expect) return -1;
      expect *= s;
    }
    return expect;
  };

  return {
    name: 'native',

    unary(op, x, shape, out, alpha, beta) {
      const xd = x.data;
      if (tooManyDims(shape, out) || !(xd instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN || big(xd))
        return ref.unary(op, x, shape, out, alpha, beta);
      const data = offF(xd, 0);
      int32(x.offset, 'an offset');
      const n = contiguousNumel(shape, x.strides);
      if (n >= 0) {
        if (n > 0) addon.unary(UNARY_CODE[op], data, x.offset, out, n, alpha, beta);
        return;
      }
      meta[0] = UNARY_CODE[op];
      meta[1] = x.offset;
      addon.unaryStrided(data, out, pack(2, shape, x, null, null), alpha, beta);
    },

    unaryBackward(op, x, y, g, out, alpha, beta) {
      if (!(out instanceof Float32Array) || !(g instanceof Float32Array) || !(x instanceof Float32Array) || !(y instanceof Float32Array) || out.length <= MIN)
        return ref.unaryBackward(op, x, y, g, out, alpha, beta);
      // Pass only what the derivative reads: each typed-array argument costs ~85 ns.
      const needY = DERIV_NEEDS_Y.has(op);
      const needX = !needY && !DERIV_NEEDS_NOTHING.has(op);
      addon.unaryBackward(UNARY_CODE[op], needX ? x : null, needY ? y : null, g, out, alpha, beta);
    },

    binary(op, a, b, shape, out) {
      const ad = a.data;
      const bd = b.data;
      if (tooManyDims(shape, out) || !(ad instanceof Float32Array) || !(bd instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN || big(ad) || big(bd))
        return ref.binary(op, a, b, shape, out);
      int32(a.offset, 'an offset');
      int32(b.offset, 'an offset');
      if (out.length === contiguousNumel(shape, a.strides) && out.length === contiguousNumel(shape, b.strides))
        return addon.binaryContig(BINARY_CODE[op], offF(ad, 0), a.offset, offF(bd, 1), b.offset, out);
      meta[0] = BINARY_CODE[op];
      meta[1] = a.offset;
      meta[2] = b.offset;
      addon.binary(offF(ad, 0), offF(bd, 1), out, pack(3, shape, a, b, null));
    },

    where(cond, a, b, shape, out) {
      const cd = cond.data;
      const ad = a.data;
      const bd = b.data;
      if (
        tooManyDims(shape, out) || !(cd instanceof Float32Array) || !(ad instanceof Float32Array) || !(bd instanceof Float32Array) ||
        !(out instanceof Float32Array) || out.length <= MIN || big(cd) || big(ad) || big(bd)
      )
        return ref.where(cond, a, b, shape, out);
      meta[0] = int32(cond.offset, 'an offset');
      meta[1] = int32(a.offset, 'an offset');
      meta[2] = int32(b.offset, 'an offset');
      addon.where(offF(cd, 0), offF(ad, 1), offF(bd, 2), out, pack(3, shape, cond, a, b));
    },

    reduce(op, x, outer, r, inner, out, idx) {
      if (!(x instanceof Float32Array) || !(out instanceof Float32Array) || x.length <= MIN) return ref.reduce(op, x, outer, r, inner, out, idx);
      if (outer * inner === 0) return;
      // A large input with a tiny output (a full sum, a per-row loss…) still runs natively, through scratch.
      const o = outF(out, 0);
      const ix = idx === null ? null : idx.length > TINY ? idx : is[0]!;
      addon.reduce(REDUCE_CODE[op], x, outer, r, inner, o, ix);
      back(out, o);
      if (idx && ix !== idx) for (let i = 0; i < idx.length; i++) idx[i] = ix![i]!;
    },

    matmul(p) {
      const { a, b, out } = p;
      if (!(a instanceof Float32Array) || !(b instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN) return ref.matmul(p);
      addon.sgemm(offF(a, 0), offF(b, 1), out, p.batch, p.M, p.N, p.K, offI(p.aOffsets, 0), offI(p.bOffsets, 1), p.lda, p.ldb, p.transA, p.transB, p.accumulate);
    },

    softmax(x, rows, n, out, log) {
      if (!(x instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN) return ref.softmax(x, rows, n, out, log);
      addon.softmax(x, rows, n, out, log);
    },
    softmaxBackward(y, g, rows, n, out, log) {
      if (!(y instanceof Float32Array) || !(g instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN)
        return ref.softmaxBackward(y, g, rows, n, out, log);
      addon.softmaxBackward(y, g, rows, n, out, log);
    },

    layerNorm(x, w, b, rows, n, eps, out, mean, rstd) {
      if (
        !(x instanceof Float32Array) || !(out instanceof Float32Array) || !(mean instanceof Float32Array) || !(rstd instanceof Float32Array) ||
        (w !== null && !(w instanceof Float32Array)) || (b !== null && !(b instanceof Float32Array)) || out.length <= MIN
      )
        return ref.layerNorm(x, w, b, rows, n, eps, out, mean, rstd);
      const m = outF(mean, 2);
      const r = outF(rstd, 3);
      addon.layerNorm(x, w && offF(w, 0), b && offF(b, 1), rows, n, eps, out, m, r);
      back(mean, m);
      back(rstd, r);
    },
    layerNormBackward(x, w, mean, rstd, g, rows, n, dx, dw, db) {
      if (
        !(x instanceof Float32Array) || !(mean instanceof Float32Array) || !(rstd instanceof Float32Array) || !(g instanceof Float32Array) ||
        !(dx instanceof Float32Array) || (w !== null && !(w instanceof Float32Array)) || (dw !== null && !(dw instanceof Float32Array)) ||
        (db !== null && !(db instanceof Float32Array)) || dx.length <= MIN
      )
        return ref.layerNormBackward(x, w, mean, rstd, g, rows, n, dx, dw, db);
      // dWeight/dBias are accumulated into: tiny ones go through scratch loaded with their current values.
      const dwo = dw && offF(dw, 3);
      const dbo = db && offF(db, 4);
      addon.layerNormBackward(x, w && offF(w, 0), offF(mean, 1), offF(rstd, 2), g, rows, n, dx, dwo, dbo);
      if (dw) back(dw, dwo!);
      if (db) back(db, dbo!);
    },
    rmsNorm(x, w, rows, n, eps, out, rstd) {
      if (!(x instanceof Float32Array) || !(out instanceof Float32Array) || !(rstd instanceof Float32Array) || (w !== null && !(w instanceof Float32Array)) || out.length <= MIN)
        return ref.rmsNorm(x, w, rows, n, eps, out, rstd);
      const r = outF(rstd, 1);
      addon.rmsNorm(x, w && offF(w, 0), rows, n, eps, out, r);
      back(rstd, r);
    },
    rmsNormBackward(x, w, rstd, g, rows, n, dx, dw) {
      if (
        !(x instanceof Float32Array) || !(rstd instanceof Float32Array) || !(g instanceof Float32Array) || !(dx instanceof Float32Array) ||
        (w !== null && !(w instanceof Float32Array)) || (dw !== null && !(dw instanceof Float32Array)) || dx.length <= MIN
      )
        return ref.rmsNormBackward(x, w, rstd, g, rows, n, dx, dw);
      const dwo = dw && offF(dw, 2);
      addon.rmsNormBackward(x, w && offF(w, 0), offF(rstd, 1), g, rows, n, dx, dwo);
      if (dw) back(dw, dwo!);
    },

    embedding(w, idx, dim, out) {
      if (!(w instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN) return ref.embedding(w, idx, dim, out);
      addon.embedding(offF(w, 0), offIdx(idx), dim, out);
    },
    embeddingBackward(g, idx, dim, dw) {
      if (!(g instanceof Float32Array) || !(dw instanceof Float32Array) || g.length <= MIN || dw.length <= MIN) return ref.embeddingBackward(g, idx, dim, dw);
      addon.embeddingBackward(g, offIdx(idx), dim, dw);
    },

    crossEntropy(x, t, rows, V, ignoreIndex, eps, loss, lse) {
      if (!(x instanceof Float32Array) || !(loss instanceof Float32Array) || !(lse instanceof Float32Array) || x.length <= MIN)
        return ref.crossEntropy(x, t, rows, V, ignoreIndex, eps, loss, lse);
      const l = outF(loss, 0);
      const s = outF(lse, 1);
      addon.crossEntropy(x, offI(t, 0), rows, V, ignoreIndex, eps, l, s);
      back(loss, l);
      back(lse, s);
    },
    crossEntropyBackward(x, t, lse, gRow, rows, V, ignoreIndex, eps, out) {
      if (!(x instanceof Float32Array) || !(lse instanceof Float32Array) || !(gRow instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN)
        return ref.crossEntropyBackward(x, t, lse, gRow, rows, V, ignoreIndex, eps, out);
      addon.crossEntropyBackward(x, offI(t, 0), offF(lse, 0), offF(gRow, 1), rows, V, ignoreIndex, eps, out);
    },

    adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2) {
      if (p.length <= MIN) return ref.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
      addon.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
    },

    dropout(x, out, state, threshold, scale) {
      if (!(x instanceof Float32Array) || !(out instanceof Float32Array) || out.length <= MIN || !addon.dropout) return ref.dropout(x, out, state, threshold, scale);
      addon.dropout(x, out, state, threshold, scale);
    },
  };
}
