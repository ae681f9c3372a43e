/**
 * The GEMMs behind QuantLinear. On the native backend the addon's kernels run (native/quant.cc): for int8-dynamic
 * a fused per-token activation quantizer and an exact u8×int8→int32 GEMM with the dequantize epilogue (bit for bit
 * what the TypeScript path here computes for the same activation range, see int8ActivationMax); for weight-only int8/int4 the packed float32 GEMM with its B panels
 * dequantized as they are packed (KC×16 at a time, so the float weight never exists whole; equal to the reference
 * to float32 rounding). Elsewhere these TypeScript paths run: weight-only dequantizes 64 output rows at a time and
 * multiplies with the float32 GEMM; int8-dynamic quantizes activations per token and sums integer products exactly.
 * Weight-only layers of at most FP32_CACHE_MAX_WEIGHTS weights may instead keep a dequantized float32 copy
 * ('fp32-cache'); chooseKernel (end of this file) picks per layer and batch-shape class.
 */
import os from 'node:os';
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
  /** Rows ids[i] of the weight dequantized into out[i·K …] (QuantEmbedding); every id in [0, rows). */
  dequantGather?(c8: Int8Array | null, c4: Uint8Array | null, bits: number, scale: Float32Array, z8: Int8Array | null, z4: Uint8Array | null, groupSize: number, perTensor: boolean, K: number, rows: number, ids: Int32Array, out: Float32Array): void;
  /** gemm.cc's packed SGEMM (the fp32-cache kernel calls it with transB and accumulate onto the bias). */
  sgemm(a: Float32Array, b: Float32Array, out: Float32Array, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
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
 * out[i·K …] = row ids[i] of w dequantized, natively in one call when the addon has dequantGather (ids already
 * checked to be in range by the caller); false when the caller must take its own path.
 */
export function dequantGather(w: QuantizedWeight, ids: Int32Array, out: Float32Array): boolean {
  const q = quantAddon();
  if (!q || typeof q.dequantGather !== 'function') return false;
  q.dequantGather(...weightArgs(w), w.shape[0], ids, out);
  return true;
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

/**
 * Scratch for the int8 kernels' activation codes, scales and zero points: grown when a call needs more, never
 * shrunk, shared by every layer (calls are synchronous and the addon is done with them when it returns), so a
 * forward does not allocate three typed arrays per layer. Views of exactly M·Kp / M elements.
 */
let SCRATCH = { qa: new Uint8Array(0), sa: new Float32Array(0), za: new Int32Array(0) };
function scratch(M: number, Kp: number): { qa: Uint8Array; sa: Float32Array; za: Int32Array } {
  if (SCRATCH.qa.length < M * Kp) SCRATCH.qa = new Uint8Array(Math.max(M * Kp, 2 * SCRATCH.qa.length));
  if (SCRATCH.sa.length < M) {
    SCRATCH.sa = new Float32Array(Math.max(M, 2 * SCRATCH.sa.length));
    SCRATCH.za = new Int32Array(SCRATCH.sa.length);
  }
  return { qa: SCRATCH.qa.subarray(0, M * Kp), sa: SCRATCH.sa.subarray(0, M), za: SCRATCH.za.subarray(0, M) };
}

/** out[M, N] = x[M, K] · dequant(W)ᵀ + bias: the 'wo-pack' kernel (dequantize-in-pack) natively. */
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
    const { qa, sa, za } = scratch(M, Kp);
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
  if (nq && M > 0) {
    const Kp = Math.ceil(K / 4) * 4;
    const { qa, sa, za } = scratch(M, Kp);
    sa.fill(inScale);
    za.fill(inZero);
    nq.quantizeRowsStatic(x, M, K, Kp, inScale, inZero, qa);
    const p = packed(nq, w);
    nq.int8Gemm(qa, M, Kp, p.packed, N, sa, za, w.scale, w.perTensor, p.rowSum, bias, out, 127);
    return;
  }
  const sa = new Float32Array(M).fill(inScale);
  const za = new Int32Array(M).fill(inZero);
  const inv = Math.fround(1 / inScale);
  const q = new Uint8Array(M * K);
  for (let i = 0; i < M * K; i++) q[i] = Math.min(127, Math.max(0, roundHalfEven(Math.fround(x[i]! * inv)) + inZero));
  integerGemmFallback(q, sa, za, M, w, bias, out, 127);
}

// ---- Per-layer kernel choice

/**
 * The kernels a QuantLinear can run on:
 * - 'int8-gemm': int8-dynamic / int8-static, always: the exact integer GEMM *is* those schemes' definition (a float
 *   path would change their results), so they have no other candidate; lower fixed costs are what they get.
 * - 'wo-pack': weight-only int8 / int4 on the addon's woGemm, B panels dequantized as they are packed (no float
 *   copy of the weight at run time).
 * - 'fp32-cache': weight-only layers of at most FP32_CACHE_MAX_WEIGHTS weights: the weight dequantized once into
 *   a float32 copy (4 bytes per weight of memory at run time; the file keeps its integer bytes) and multiplied by
 *   the plain packed SGEMM. Same numbers as 'wo-pack' up to float32 summation order (both dequantize to exactly
 *   (q − zero)·scale in float32; the GEMMs may add the K products in a different order).
 * - 'reference': the TypeScript paths (no native addon / TypeScript backend).
 */
export type QuantKernel = 'int8-gemm' | 'wo-pack' | 'fp32-cache' | 'reference';
/** Batch-shape classes a choice is made (and cached) for: M = rows of the layer input (tokens × batch). */
export type ShapeClass = 'decode' | 'small' | 'large';
export const SHAPE_CLASSES: readonly ShapeClass[] = ['decode', 'small', 'large'];
/** decode: M ≤ 4 (woGemm's GEMV path), small: M ≤ 64, large: above. */
export function shapeClass(M: number): ShapeClass {
  return M <= 4 ? 'decode' : M <= 64 ? 'small' : 'large';
}
/** A representative M per class (inspect and the compress report measure with it when no input was seen yet). */
export const CLASS_M: Record<ShapeClass, number> = { decode: 1, small: 32, large: 256 };
/** The largest weight-only layer (N·K weights) that may keep a float32 copy: 65,536 weights = 256 KiB. */
export const FP32_CACHE_MAX_WEIGHTS = 65536;
/** 'fp32-cache' must beat 'wo-pack' by this factor to be chosen (it costs memory; ties go to the packed codes). */
const CACHE_MARGIN = 0.97;

export interface KernelChoice {
  kernel: QuantKernel;
  /** Why, in words: forced, the only exact kernel, too large for a cache, or the measured times. */
  reason: string;
}

const FORCE_VALUES = ['auto', 'int8-gemm', 'wo-pack', 'fp32-cache'] as const;
type Forced = (typeof FORCE_VALUES)[number];
/** SHRINK_QUANT_KERNEL: 'auto' (default), 'wo-pack' or 'fp32-cache' (weight-only layers), 'int8-gemm' (a no-op: integer layers always run it). */
export function forcedQuantKernel(): Forced {
  const v = (process.env.SHRINK_QUANT_KERNEL ?? 'auto').trim() || 'auto';
  if (!(FORCE_VALUES as readonly string[]).includes(v)) throw new Error(`SHRINK_QUANT_KERNEL must be one of ${FORCE_VALUES.join(', ')}, got '${v}'`);
  return v as Forced;
}

let CPU: string | undefined;
const cpuModel = () => (CPU ??= (os.cpus()[0]?.model ?? 'unknown CPU').trim());
/** Measured choices: CPU model | weight format and shape | shape class → choice. In-process only. */
const MEASURED = new Map<string, KernelChoice>();
/** Forget the measured choices (tests; a benchmark that pins threads differently). */
export function clearKernelChoices(): void {
  MEASURED.clear();
}

function weightKey(w: QuantizedWeight): string {
  return `${cpuModel()}|${w.bits}b|g${w.perTensor ? 'T' : w.groupSize}|${w.zero ? 'z' : 's'}|${w.shape[0]}x${w.shape[1]}`;
}

/** ms per call of each function: 1 warm-up each, then 5 interleaved rounds of ≥ 0.2 ms (≤ 64 calls); the best round. */
function timeKernels(fns: Record<string, () => void>): Record<string, number> {
  const names = Object.keys(fns);
  for (const k of names) fns[k]!();
  const best: Record<string, number> = Object.fromEntries(names.map((k) => [k, Infinity]));
  for (let r = 0; r < 5; r++)
    for (const k of names) {
      let n = 0;
      const t0 = performance.now();
      let t = t0;
      do {
        fns[k]!();
        n++;
        t = performance.now();
      } while (t - t0 < 0.2 && n < 64);
      best[k] = Math.min(best[k]!, (t - t0) / n);
    }
  return best;
}

/**
 * The kernel a QuantLinear of `scheme` runs for an input of M rows. Weight-only layers small enough for an fp32
 * cache are measured once per (CPU model, weight shape and format, shape class): both candidates run on `x` (the
 * call's input, or random rows when none is given) and the faster is kept for every later call of that class.
 */
export function chooseKernel(scheme: string, w: QuantizedWeight, M: number, x?: Float32Array, bias: Float32Array | null = null): KernelChoice {
  const forced = forcedQuantKernel();
  const q = quantAddon();
  if (scheme === 'int8-dynamic' || scheme === 'int8-static') {
    const tile = int8Kernel().replace(/^int8 /, '');
    const why = `${scheme}: the exact integer GEMM is the scheme's definition (a float kernel would change its results)`;
    return { kernel: q ? 'int8-gemm' : 'reference', reason: `${why}; ${tile} tile${forced !== 'auto' && forced !== 'int8-gemm' ? `; SHRINK_QUANT_KERNEL=${forced} does not apply` : ''}` };
  }
  if (!q) return { kernel: 'reference', reason: 'TypeScript backend (no native addon): panels dequantized into the float32 GEMM' };
  if (forced === 'wo-pack' || forced === 'fp32-cache') return { kernel: forced, reason: `forced by SHRINK_QUANT_KERNEL=${forced}` };
  const [N, K] = w.shape;
  if (N * K > FP32_CACHE_MAX_WEIGHTS)
    return { kernel: 'wo-pack', reason: `${N}×${K} = ${(N * K).toLocaleString('en-US')} weights > ${FP32_CACHE_MAX_WEIGHTS.toLocaleString('en-US')}: no fp32 cache (it would hold ${((4 * N * K) / 1024).toFixed(0)} KiB)` };
  const cls = shapeClass(M);
  const key = `${weightKey(w)}|${cls}`;
  const seen = MEASURED.get(key);
  if (seen) return seen;
  const xs = x && x.length >= M * K ? x.subarray(0, M * K) : Float32Array.from({ length: M * K }, () => Math.random() * 2 - 1);
  const out = new Float32Array(M * N);
  const hadCache = F32CACHE.has(w.codes);
  const t = timeKernels({ 'wo-pack': () => weightOnlyLinear(xs, M, w, bias, out), 'fp32-cache': () => fp32CacheLinear(xs, M, w, bias, out) });
  const cache = t['fp32-cache']! < CACHE_MARGIN * t['wo-pack']!;
  if (!cache && !hadCache) F32CACHE.delete(w.codes); // measured, not chosen: give the memory back
  const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
  const choice: KernelChoice = {
    kernel: cache ? 'fp32-cache' : 'wo-pack',
    reason: `measured at M=${M} (${cls}): wo-pack ${us(t['wo-pack']!)}, fp32-cache ${us(t['fp32-cache']!)}${cache ? ` (+${((4 * N * K) / 1024).toFixed(0)} KiB fp32 at run time)` : ''}`,
  };
  MEASURED.set(key, choice);
  return choice;
}

/** The dequantized float32 weight of small weight-only layers, rebuilt when the codes' storage version moves. */
interface F32Cached {
  w: Float32Array;
  version: number;
  N: number;
  K: number;
}
const F32CACHE = new WeakMap<object, F32Cached>();
const ZERO_OFFSET = new Int32Array(1);
function fp32Weight(w: QuantizedWeight): Float32Array {
  const [N, K] = w.shape;
  const version = storageVersion(w.codes);
  let c = F32CACHE.get(w.codes);
  if (!c || c.version !== version || c.N !== N || c.K !== K) {
    c = { w: c && c.w.length === N * K ? c.w : new Float32Array(N * K), version, N, K };
    dequantPanel(w, 0, N, c.w);
    F32CACHE.set(w.codes, c);
  }
  return c.w;
}

/** Bytes of float32 weight copies the 'fp32-cache' kernel holds for this weight now (0 when none). */
export function fp32CacheBytes(w: QuantizedWeight): number {
  return F32CACHE.get(w.codes)?.w.byteLength ?? 0;
}

/** The 'fp32-cache' kernel: out = x · Wᵀ + bias on the packed SGEMM with the cached dequantized weight. */
export function fp32CacheLinear(x: Float32Array, M: number, w: QuantizedWeight, bias: Float32Array | null, out: Float32Array): void {
  const [N, K] = w.shape;
  const W = fp32Weight(w);
  const q = quantAddon();
  if (M === 0) return;
  if (q && typeof q.sgemm === 'function') {
    if (bias) for (let m = 0; m < M; m++) out.set(bias, m * N);
    else out.fill(0, 0, M * N);
    q.sgemm(x, W, out, 1, M, N, K, ZERO_OFFSET, ZERO_OFFSET, K, K, false, true, true);
    return;
  }
  const y = noGrad(() => matmul(new Tensor(x.subarray(0, M * K), [M, K], 'float32'), new Tensor(W, [N, K], 'float32').t()).data as Float32Array);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) out[m * N + n] = y[m * N + n]! + (bias ? bias[n]! : 0);
}

/** Run the chosen kernel of a weight-only layer. */
export function runWeightOnly(kernel: QuantKernel, x: Float32Array, M: number, w: QuantizedWeight, bias: Float32Array | null, out: Float32Array): void {
  if (kernel === 'fp32-cache') fp32CacheLinear(x, M, w, bias, out);
  else weightOnlyLinear(x, M, w, bias, out);
}
