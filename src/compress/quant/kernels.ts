/**
 * The GEMMs behind QuantLinear. On the native backend the addon's kernels run (native/quant.cc): for int8-dynamic
 * a fused per-token activation quantizer and an exact u8×int8→int32 GEMM with the dequantize epilogue (bit for bit
 * what the TypeScript path here computes for the same activation range, see int8ActivationMax); for weight-only int8/int4 the packed float32 GEMM with its B panels
 * dequantized as they are packed (KC×16 at a time, so the float weight never exists whole; equal to the reference
 * to float32 rounding). Elsewhere these TypeScript paths run: weight-only dequantizes 64 output rows at a time and
 * multiplies with the float32 GEMM; int8-dynamic quantizes activations per token and sums integer products exactly.
 */
import { matmul } from '../../ops/matmul.ts';
import { Tensor, storageVersion } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { backend, nativeAddon } from '../../backend/registry.ts';
import { dequantizeRows, type QuantizedWeight } from './modules.ts';

const ROWS = 64;

interface QuantAddon {
  quantizeRowsStatic(x: Float32Array, M: number, K: number, Kp: number, scale: number, zero: number, q: Uint8Array): void;
  quantizeRowsU7(x: Float32Array, M: number, K: number, Kp: number, q: Uint8Array, scale: Float32Array, zero: Int32Array): void;
  /** Per-row codes 0..qmax (qmax in 1..255): quantizeActivationsPerToken's formulas. */
  quantizeRows(x: Float32Array, M: number, K: number, Kp: number, qmax: number, q: Uint8Array, scale: Float32Array, zero: Int32Array): void;
  packInt8Weight(w: Int8Array, N: number, K: number, packed: Int8Array, rowSum: Int32Array): void;
  /** maxCode: the largest activation code qa may hold (default 127); above 127 the AVX2 kernel hands over to the portable one. */
  int8Gemm(qa: Uint8Array, M: number, Kp: number, packed: Int8Array, N: number, sa: Float32Array, za: Int32Array, sw: Float32Array, swPerTensor: boolean, rowSum: Int32Array, bias: Float32Array | null, out: Float32Array, maxCode?: number): void;
  /** The int8 GEMM kernel in use: 'avx512-vnni' | 'avx-vnni' | 'avx512-vnni-ymm' | 'avx2' | 'portable'. */
  int8Kernel(): string;
  /** Every int8 kernel this CPU (and SHRINK_ISA, setSimd) allows. */
  int8Kernels(): string[];
  /** Pin a kernel ('auto' unpins); throws RangeError when it is not available. Returns the kernel now in use. */
  setInt8Kernel(name: string): string;
  dequantRows(c8: Int8Array | null, c4: Uint8Array | null, bits: number, scale: Float32Array, z8: Int8Array | null, z4: Uint8Array | null, groupSize: number, perTensor: boolean, K: number, r0: number, r1: number, out: Float32Array): void;
  woGemm(x: Float32Array, M: number, c8: Int8Array | null, c4: Uint8Array | null, bits: number, scale: Float32Array, z8: Int8Array | null, z4: Uint8Array | null, groupSize: number, perTensor: boolean, K: number, N: number, bias: Float32Array | null, out: Float32Array): void;
}

/** The weight arguments of the addon's dequantizing kernels: codes, bits, scale, zero, groupSize, perTensor, K. */
function weightArgs(w: QuantizedWeight) {
  const z = w.zero;
  return [
    w.bits === 8 ? (w.codes as Int8Array) : null,
    w.bits === 8 ? null : (w.codes as Uint8Array),
    w.bits,
    w.scale,
    z instanceof Int8Array ? z : null,
    z instanceof Uint8Array ? z : null,
    w.groupSize,
    w.perTensor,
    w.shape[1],
  ] as const;
}

/** The addon's integer kernels when the native backend is active (and built with them), else null. */
function quantAddon(): QuantAddon | null {
  if (backend().name !== 'native') return null;
  const a = nativeAddon() as unknown as Partial<QuantAddon> | null;
  return a && typeof a.int8Gemm === 'function' ? (a as QuantAddon) : null;
}

/** Rows [r0, r1) of w dequantized into out, natively when possible. */
function dequantPanel(w: QuantizedWeight, r0: number, r1: number, out: Float32Array): void {
  const q = quantAddon();
  if (!q) return dequantizeRows(w, r0, r1, out);
  q.dequantRows(...weightArgs(w), r0, r1, out);
}

/**
 * Packed int8 weights per codes array, built on first use and rebuilt when the codes' storage version moved:
 * Module.loadStateDict copies a checkpoint into the existing buffers in place (Tensor.copy_, which bumps the
 * version), so the same array can hold new codes. Writers that bypass Tensor's in-place methods must call
 * bumpStorageVersion (src/tensor/tensor.ts). The shape is part of the key too (one array, two interpretations).
 */
interface Packed {
  packed: Int8Array;
  rowSum: Int32Array;
  version: number;
  N: number;
  K: number;
}
const PACKED = new WeakMap<object, Packed>();
function packed(q: QuantAddon, w: QuantizedWeight): Packed {
  const [N, K] = w.shape;
  const version = storageVersion(w.codes);
  let p = PACKED.get(w.codes);
  if (!p || p.version !== version || p.N !== N || p.K !== K) {
    const size = Math.ceil(N / 16) * 16 * Math.ceil(K / 4) * 4;
    p = { packed: p && p.packed.length === size ? p.packed : new Int8Array(size), rowSum: p && p.N === N ? p.rowSum : new Int32Array(N), version, N, K };
    q.packInt8Weight(w.codes as Int8Array, N, K, p.packed, p.rowSum);
    PACKED.set(w.codes, p);
  }
  return p;
}

/** out[M, N] = x[M, K] · dequant(W)ᵀ + bias. */
export function weightOnlyLinear(x: Float32Array, M: number, w: QuantizedWeight, bias: Float32Array | null, out: Float32Array): void {
  const [N, K] = w.shape;
  const q = quantAddon();
  if (q) return q.woGemm(x, M, ...weightArgs(w), N, bias, out);
  const xt = new Tensor(x, [M, K], 'float32');
  const panel = new Float32Array(ROWS * K);
  noGrad(() => {
    for (let r0 = 0; r0 < N; r0 += ROWS) {
      const r1 = Math.min(N, r0 + ROWS);
      dequantPanel(w, r0, r1, panel);
      const wt = new Tensor(panel.subarray(0, (r1 - r0) * K), [r1 - r0, K], 'float32');
      const y = matmul(xt, wt.t()).data as Float32Array; // [M, r1 - r0]
      const n = r1 - r0;
      for (let m = 0; m < M; m++) for (let j = 0; j < n; j++) out[m * N + r0 + j] = y[m * n + j]! + (bias ? bias[r0 + j]! : 0);
    }
  });
}

/** The addon's int8 kernel family ('avx512-vnni', 'avx2', …) whether or not the native backend is active; null without the addon. */
export function nativeInt8Kernel(): string | null {
  const a = nativeAddon() as unknown as Partial<QuantAddon> | null;
  return a && typeof a.int8Kernel === 'function' ? a.int8Kernel() : null;
}

/**
 * The kernel int8-dynamic / int8-static QuantLinear layers run on now: 'int8 avx512-vnni', 'int8 avx-vnni',
 * 'int8 avx2', 'int8 portable' (the addon's, on the native backend) or 'int8 reference' (the TypeScript path).
 */
export function int8Kernel(): string {
  const q = quantAddon();
  return q && typeof q.int8Kernel === 'function' ? `int8 ${q.int8Kernel()}` : 'int8 reference';
}

/**
 * The largest activation code of int8-dynamic layers in this process: 255 (full 8 bits) when the addon's int8
 * kernel is a VNNI one (vpdpbusd sums u8×s8 products straight into int32), else 127 (AVX2's vpmaddubsw saturates
 * 16-bit pair sums of full 8-bit activations; 7 bits keep them exact). It follows the addon's kernel even when the
 * TypeScript backend is active, so both backends (and QAT's fake quantization) use the same range and agree bit
 * for bit; it changes with SHRINK_ISA=avx2, setSimd(false) and setInt8Kernel.
 */
export function int8ActivationMax(): 127 | 255 {
  return /vnni/.test(nativeInt8Kernel() ?? '') ? 255 : 127;
}

/**
 * Per-token activation quantization to unsigned codes 0..qmax with a zero point; qmax defaults to
 * int8ActivationMax() (255 with a VNNI kernel, 127 otherwise: AVX2's u8×s8 multiply-add vpmaddubsw saturates 16-bit
 * pair sums for full 8-bit activations, and 7 bits keep every product sum exact).
 * Per row: s = (max − min)/qmax in float32 with 0 inside the range; zero = clamp(round(−min/s), 0, qmax);
 * code = clamp(round(fround(x · fround(1/s))) + zero, 0, qmax), rounding half to even (what one AVX2 multiply and
 * convert compute, so the native kernel matches bit for bit).
 */
export function quantizeActivationsPerToken(x: Float32Array, M: number, K: number, qmax: number = int8ActivationMax()): { q: Uint8Array; scale: Float32Array; zero: Int32Array } {
  if (!Number.isInteger(qmax) || qmax < 1 || qmax > 255) throw new Error(`quantizeActivationsPerToken: qmax must be an integer in 1..255, got ${qmax}`);
  const q = new Uint8Array(M * K);
  const scale = new Float32Array(M);
  const zero = new Int32Array(M);
  for (let m = 0; m < M; m++) {
    let lo = 0;
    let hi = 0;
    for (let k = 0; k < K; k++) {
      const v = x[m * K + k]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const s = Math.max(Math.fround((hi - lo) / qmax), 1.1920928955078125e-7);
    const inv = Math.fround(1 / s);
    const z = Math.min(qmax, Math.max(0, roundHalfEven(-lo / s)));
    scale[m] = s;
    zero[m] = z;
    for (let k = 0; k < K; k++) q[m * K + k] = Math.min(qmax, Math.max(0, roundHalfEven(Math.fround(x[m * K + k]! * inv)) + z));
  }
  return { q, scale, zero };
}

export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * out = sx[m]·sw[n]·Σ_k (qx − zx)·qw + bias, with exact integer sums; activations quantized per token to codes
 * 0..qmax (default int8ActivationMax(): the range the addon's kernel takes). Without the native kernel the integer
 * products run on the float32 GEMM: codes are small integers, and any partial sum of at most ⌊2^24 / (qmax·128)⌋
 * products (1,032 for 7-bit activations, 514 for 8-bit) stays below 2^24, so float32 adds them exactly in any
 * order; longer rows are split into such chunks and summed in float64.
 */
export function int8DynamicLinear(x: Float32Array, M: number, w: QuantizedWeight, bias: Float32Array | null, out: Float32Array, qmax: number = int8ActivationMax()): void {
  const [N, K] = w.shape;
  const nq = quantAddon();
  if (nq && M > 0 && typeof nq.quantizeRows === 'function') {
    const Kp = Math.ceil(K / 4) * 4;
    const qa = new Uint8Array(M * Kp);
    const sa = new Float32Array(M);
    const za = new Int32Array(M);
    nq.quantizeRows(x, M, K, Kp, qmax, qa, sa, za);
    const p = packed(nq, w);
    nq.int8Gemm(qa, M, Kp, p.packed, N, sa, za, w.scale, w.perTensor, p.rowSum, bias, out, qmax);
    return;
  }
  const { q, scale, zero } = quantizeActivationsPerToken(x, M, K, qmax);
  integerGemmFallback(q, scale, zero, M, w, bias, out, qmax);
}

/** out = sa[m]·sw[n]·(Σ_k qa·qw − za[m]·rowsum[n]) + bias on the float32 GEMM (exact integer chunks). */
function integerGemmFallback(q: Uint8Array, scale: Float32Array, zero: Int32Array, M: number, w: QuantizedWeight, bias: Float32Array | null, out: Float32Array, qmax: number): void {
  const [N, K] = w.shape;
  const qw = w.codes as Int8Array;
  const CH = qmax <= 127 ? 1024 : 512; // ≤ 2^24 / (qmax·128): every float32 partial sum is an exact integer
  const acc = new Float64Array(M * N);
  noGrad(() => {
    for (let k0 = 0; k0 < K; k0 += CH) {
      const kc = Math.min(CH, K - k0);
      const a = new Float32Array(M * kc);
      for (let m = 0; m < M; m++) for (let k = 0; k < kc; k++) a[m * kc + k] = q[m * K + k0 + k]!;
      const at = new Tensor(a, [M, kc], 'float32');
      const panel = new Float32Array(ROWS * kc);
      for (let r0 = 0; r0 < N; r0 += ROWS) {
        const r1 = Math.min(N, r0 + ROWS);
        const n = r1 - r0;
        for (let r = 0; r < n; r++) for (let k = 0; k < kc; k++) panel[r * kc + k] = qw[(r0 + r) * K + k0 + k]!;
        const y = matmul(at, new Tensor(panel.subarray(0, n * kc), [n, kc], 'float32').t()).data as Float32Array;
        for (let m = 0; m < M; m++) for (let j = 0; j < n; j++) acc[m * N + r0 + j] += y[m * n + j]!;
      }
    }
  });
  const rowSum = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += qw[n * K + k]!;
    rowSum[n] = s;
  }
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) out[m * N + n] = scale[m]! * w.scale[w.perTensor ? 0 : n]! * (acc[m * N + n]! - zero[m]! * rowSum[n]!) + (bias ? bias[n]! : 0);
}

/**
 * Static int8: activations quantized with one calibrated (scale, zero) for every token (calibrate.ts), then the
 * same exact integer GEMM as int8-dynamic. Codes: clamp(round(fround(x · fround(1/scale))) + zero, 0, 127). Always
 * 7 bits, whatever the kernel: the calibrated (scale, zero) are saved with the model, and a model calibrated on a
 * VNNI machine must run exactly on an AVX2 one too.
 */
export function int8StaticLinear(x: Float32Array, M: number, w: QuantizedWeight, inScale: number, inZero: number, bias: Float32Array | null, out: Float32Array): void {
  const [N, K] = w.shape;
  const nq = quantAddon();
  const sa = new Float32Array(M).fill(inScale);
  const za = new Int32Array(M).fill(inZero);
  if (nq && M > 0) {
    const Kp = Math.ceil(K / 4) * 4;
    const qa = new Uint8Array(M * Kp);
    nq.quantizeRowsStatic(x, M, K, Kp, inScale, inZero, qa);
    const p = packed(nq, w);
    nq.int8Gemm(qa, M, Kp, p.packed, N, sa, za, w.scale, w.perTensor, p.rowSum, bias, out, 127);
    return;
  }
  const inv = Math.fround(1 / inScale);
  const q = new Uint8Array(M * K);
  for (let i = 0; i < M * K; i++) q[i] = Math.min(127, Math.max(0, roundHalfEven(Math.fround(x[i]! * inv)) + inZero));
  integerGemmFallback(q, sa, za, M, w, bias, out, 127);
}
