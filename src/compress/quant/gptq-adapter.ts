/**
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers";
 * reference IST-DASLab/gptq, gptq.py `GPTQ.add_batch` / `fasterquant`), for one weight W [N, K] given the layer's
 * input Hessian H = 2/n Σ x xᵀ [K, K]:
 *
 * - dead inputs (H_ii = 0) get H_ii = 1 and a zero weight column;
 * - optional act-order: columns processed by descending H_ii; with groups, each column keeps the scale of its
 *   original contiguous group ("static groups", computed from the unquantized W), so the file format stays plain
 *   contiguous groups;
 * - dampening λ = percdamp · mean(diag H) added to the diagonal; the upper Cholesky factor of H⁻¹ from one
 *   factorization and one triangular inverse (upperCholeskyOfInverseInPlace), shared by layers with one Hessian;
 * - lazy batches of 128 columns: quantize a column, spread its error over the remaining columns of the block, then
 *   apply the block's accumulated update to the rest of W in one product;
 * - per-group parameters found on the *updated* weights when a group starts (as the reference does without
 *   act-order), per-row parameters from the whole W at the start otherwise.
 *
 * Arithmetic in float64 except the lazy block update, a float32 GEMM as the reference computes everything. The
 * column loop runs on the addon when it is loaded (gptqColumnsF64, rows across threads), bit for bit
 * {@link gptqColumnsReference}.
 * Returns the QuantizedWeight and the reference's loss Σ (w − q)²/d² / 2.
 */
import { matmul } from '../../ops/matmul.ts';
import { backend, nativeAddon } from '../../backend/registry.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import type { QuantizedWeight } from './modules.ts';
import { qparams, quantizeValue, type WeightQuantSpec } from './rtn.ts';

/**
 * Add `rows` input vectors x [rows, K] to the running Hessian: H ← H·n/(n + rows) + 2/(n + rows)·xᵀx.
 * Returns the new sample count. (The reference counts sequences; counting tokens only rescales H, which GPTQ's
 * relative dampening makes irrelevant.)
 */
export function accumulateHessian(H: Float64Array, x: Float32Array, rows: number, K: number, n: number): number {
  if (H.length !== K * K) throw new Error(`accumulateHessian: H has ${H.length} elements, expected ${K}×${K}`);
  if (x.length !== rows * K) throw new Error(`accumulateHessian: x has ${x.length} elements, expected ${rows}×${K}`);
  if (rows === 0) return n;
  const xtx = noGrad(() => {
    const xt = new Tensor(x, [rows, K], 'float32');
    return matmul(xt.t(), xt).data as Float32Array;
  });
  const total = n + rows;
  const a = n / total;
  const b = 2 / total;
  for (let i = 0; i < K * K; i++) H[i] = H[i]! * a + b * xtx[i]!;
  return total;
}

/**
 * Add the rows of a layer input x [..., K] to the running Hessian, leaving out the rows whose `tokenMask` entry is 0
 * (padding) when the mask has one entry per row. Returns the new sample count.
 */
export function accumulateInputs(H: Float64Array, x: Tensor, K: number, n: number, tokenMask: ArrayLike<number> | null): number {
  const rows = x.numel / K;
  let data = x.contiguous().toFloat32Array();
  let kept = rows;
  if (tokenMask && tokenMask.length === rows) {
    kept = 0;
    const packed = new Float32Array(rows * K);
    for (let r = 0; r < rows; r++) if (tokenMask[r]) packed.set(data.subarray(r * K, (r + 1) * K), K * kept++);
    data = packed.subarray(0, kept * K);
  }
  return kept > 0 ? accumulateHessian(H, data, kept, K, n) : n;
}

/**
 * In place: the lower Cholesky factor of the symmetric positive-definite [K, K] matrix in A (its lower triangle is
 * read; the strict upper triangle is zeroed). False if A is not positive definite. Row-oriented (each entry a
 * contiguous dot product of two rows already factored).
 */
function choleskyInPlace(A: Float64Array, K: number): boolean {
  for (let i = 0; i < K; i++) {
    const ri = i * K;
    for (let j = 0; j <= i; j++) {
      const rj = j * K;
      let s = A[ri + j]!;
      for (let k = 0; k < j; k++) s -= A[ri + k]! * A[rj + k]!;
      if (j < i) A[ri + j] = s / A[rj + j]!;
      else {
        if (!(s > 0)) return false;
        A[ri + i] = Math.sqrt(s);
      }
    }
    A.fill(0, ri + i + 1, ri + K);
  }
  return true;
}

/**
 * In place: the inverse of the lower-triangular [K, K] matrix in L (lower-triangular too), row by row: row i of
 * L⁻¹ is (e_i − Σ_{k<i} L_ik · row k of L⁻¹) / L_ii, each term a contiguous axpy.
 */
function invertLowerInPlace(L: Float64Array, K: number): void {
  const row = new Float64Array(K);
  for (let i = 0; i < K; i++) {
    const ri = i * K;
    row.fill(0, 0, i + 1);
    for (let k = 0; k < i; k++) {
      const l = L[ri + k]!;
      if (l === 0) continue;
      const rk = k * K;
      for (let j = 0; j <= k; j++) row[j] -= l * L[rk + j]!;
    }
    const d = 1 / L[ri + i]!;
    for (let j = 0; j < i; j++) L[ri + j] = row[j]! * d;
    L[ri + i] = d;
  }
}

/**
 * The upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ U), what the reference gets from cholesky → cholesky_inverse →
 * cholesky(upper=True), with one factorization and one triangular inverse: with J the reversal permutation and
 * J H J = M Mᵀ, U = J M⁻¹ J (upper, positive diagonal, and Uᵀ U = J M⁻ᵀ M⁻¹ J = H⁻¹). H is overwritten by U.
 */
export function upperCholeskyOfInverseInPlace(H: Float64Array, K: number, name: string, percdamp: number): Float64Array {
  const { cholesky, invertLower } = linalg();
  // reverse rows and columns in place: A[i][j] ↔ A[K-1-i][K-1-j], i.e. the flat array reversed
  H.reverse();
  if (!cholesky(H, K)) throw new Error(`${name}: GPTQ Hessian is not positive definite after dampening ${percdamp}; raise --percdamp (e.g. 0.1) or use more calibration data`);
  invertLower(H, K);
  H.reverse();
  return H;
}

interface LinalgAddon {
  choleskyF64(A: Float64Array, K: number): boolean;
  invertLowerF64(L: Float64Array, K: number): void;
}

/**
 * The factorizations: the addon's blocked, threaded float64 kernels (native/linalg.cc) on the native backend, the
 * TypeScript ones above (the reference) otherwise.
 */
export function linalg(): { cholesky: (A: Float64Array, K: number) => boolean; invertLower: (L: Float64Array, K: number) => void; name: 'native' | 'reference' } {
  const a = backend().name === 'native' ? (nativeAddon() as unknown as Partial<LinalgAddon> | null) : null;
  if (a && typeof a.choleskyF64 === 'function' && typeof a.invertLowerF64 === 'function')
    return { cholesky: (A, K) => a.choleskyF64!(A, K), invertLower: (L, K) => a.invertLowerF64!(L, K), name: 'native' };
  return { cholesky: choleskyInPlace, invertLower: invertLowerInPlace, name: 'reference' };
}

/** The TypeScript reference factorizations (exported for the native kernels' parity tests). */
export const referenceLinalg = { cholesky: choleskyInPlace, invertLower: invertLowerInPlace };

/** Rows of W per slab of the lazy block update's GEMM. */
const UPDATE_ROWS = 2048;

export interface GptqOptions {
  percdamp?: number;
  actOrder?: boolean;
  blockSize?: number;
  /**
   * Factors of H⁻¹ already computed, by Hessian array: layers that share one Hessian (q/k/v; gate/up) factor it
   * once. Entries are keyed by the options that change the factor (percdamp, act-order).
   */
  factors?: WeakMap<Float64Array, { key: string; U: Float64Array }>;
}

/** One call of GPTQ's column loop: columns [c0, c1) of the lazy block [i1, i2), every row (see gptqColumnsReference). */
export interface GptqColumnsArgs {
  W: Float64Array;
  N: number;
  K: number;
  U: Float64Array;
  i1: number;
  i2: number;
  c0: number;
  c1: number;
  perm: Int32Array;
  G: number;
  scale: Float32Array;
  zero: Int32Array;
  bits: number;
  codes: Int8Array | Uint8Array;
  err: Float64Array;
  B: number;
}

/**
 * GPTQ's inner loop, the specification of the addon's gptqColumnsF64: for every row and each column i in [c0, c1),
 * quantize W[r, i] with the scale / zero of its group (perm[i] / G), store the code at the original column perm[i],
 * and spread the error e = (w − q)/U_ii over the block's later columns (W[r, j] −= e·U_ij, j < i2), keeping e for
 * the lazy update. Returns Σ (w − q)²/U_ii²/2, summed per row, then over rows in order.
 */
export function gptqColumnsReference(a: GptqColumnsArgs): number {
  const { W, K, U, i1, i2, c0, c1, perm, G, scale, zero, bits, codes, err, B } = a;
  const gpr = K / G;
  let loss = 0;
  for (let r = 0; r < a.N; r++) {
    const row = r * K;
    let rowLoss = 0;
    for (let i = c0; i < c1; i++) {
      const orig = perm[i]!;
      const g = Math.floor(orig / G);
      const d = U[i * K + i]!;
      const s = scale[r * gpr + g]!;
      const z = zero[r * gpr + g]!;
      const wv = W[row + i]!;
      const code = quantizeValue(wv, s, z, bits);
      codes[row + orig] = code;
      const qv = (code - z) * s;
      rowLoss += ((wv - qv) * (wv - qv)) / (d * d) / 2;
      const e = (wv - qv) / d;
      err[r * B + (i - i1)] = e;
      const ui = i * K;
      for (let j = i + 1; j < i2; j++) W[row + j] -= e * U[ui + j]!;
    }
    loss += rowLoss;
  }
  return loss;
}

/** The column loop the active backend runs: the addon's (rows across threads, bit for bit the reference) or the reference. */
export function gptqColumns(): (a: GptqColumnsArgs) => number {
  const addon = backend().name === 'native' ? (nativeAddon() as { gptqColumnsF64?: (...x: unknown[]) => number } | null) : null;
  const fn = addon?.gptqColumnsF64;
  if (!fn) return gptqColumnsReference;
  return (a) =>
    fn(a.W, a.N, a.K, a.U, a.i1, a.i2, a.c0, a.c1, a.perm, a.G, a.scale, a.zero, a.bits, new Uint8Array(a.codes.buffer, a.codes.byteOffset, a.codes.length), a.err, a.B);
}

/** GPTQ-quantize W [N, K] (row-major float32) with Hessian H [K, K]; H is not modified. */
export function gptqQuantize(name: string, w32: Float32Array, N: number, K: number, H0: Float64Array, spec: WeightQuantSpec, opts: GptqOptions = {}): { q: QuantizedWeight; loss: number } {
  const percdamp = opts.percdamp ?? 0.01;
  const B = opts.blockSize ?? 128;
  if (H0.length !== K * K) throw new Error(`${name}: Hessian has ${H0.length} elements, expected ${K}×${K}`);
  if (spec.granularity === 'tensor') throw new Error(`${name}: GPTQ needs per-channel or per-group scales, not per-tensor`);
  const G = spec.granularity === 'group' ? spec.groupSize! : K;
  if (K % G !== 0) throw new Error(`${name}: group size ${G} does not divide in_features ${K}`);
  if (spec.bits < 8 && K % 2 !== 0) throw new Error(`${name}: in_features ${K} must be even to pack two ${spec.bits}-bit codes per byte`);
  for (let i = 0; i < w32.length; i++) if (!Number.isFinite(w32[i]!)) throw new Error(`${name}: non-finite value ${w32[i]} at index ${i}`);
  // dead inputs (H_ii = 0): zero weight column, H_ii = 1
  const dead = (i: number) => H0[i * K + i] === 0;
  const W = Float64Array.from(w32); // [N, K]
  for (let i = 0; i < K; i++) if (dead(i)) for (let r = 0; r < N; r++) W[r * K + i] = 0;
  const gpr = K / G;
  const scale = new Float32Array(N * gpr);
  const zero = new Int32Array(N * gpr);
  const findParams = (g: number, src: Float64Array, cols: (c: number) => number, r0 = 0, r1 = N) => {
    for (let r = r0; r < r1; r++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let c = g * G; c < (g + 1) * G; c++) {
        const v = Math.fround(src[r * K + cols(c)]!);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const p = qparams(lo, hi, spec.bits, spec.symmetric, spec.formula);
      scale[r * gpr + g] = p.scale;
      zero[r * gpr + g] = p.zero;
    }
  };
  // column order
  const perm = Array.from({ length: K }, (_, i) => i);
  const diag = (i: number) => (dead(i) ? 1 : H0[i * K + i]!);
  if (opts.actOrder) perm.sort((a, b) => diag(b) - diag(a) || a - b);
  const identity = perm.every((p, i) => p === i);
  const actGroups = opts.actOrder || G === K; // parameters fixed up front (static groups / per-row)
  if (actGroups) for (let g = 0; g < gpr; g++) findParams(g, W, (c) => c);
  let Wp = W;
  if (!identity) {
    Wp = new Float64Array(N * K);
    for (let r = 0; r < N; r++) for (let c = 0; c < K; c++) Wp[r * K + c] = W[r * K + perm[c]!]!;
  }
  // U, the upper Cholesky factor of the dampened, permuted H⁻¹: shared by layers with the same Hessian (q/k/v)
  const key = `${percdamp}|${opts.actOrder ? 1 : 0}`;
  const cached = opts.factors?.get(H0);
  let U: Float64Array;
  if (cached?.key === key) U = cached.U;
  else {
    const Hp = new Float64Array(K * K);
    for (let i = 0; i < K; i++) {
      const ri = perm[i]! * K;
      for (let j = 0; j < K; j++) Hp[i * K + j] = H0[ri + perm[j]!]!;
      if (dead(perm[i]!)) Hp[i * K + i] = 1;
    }
    let mean = 0;
    for (let i = 0; i < K; i++) mean += Hp[i * K + i]!;
    const damp = (percdamp * mean) / K;
    for (let i = 0; i < K; i++) Hp[i * K + i] += damp;
    U = upperCholeskyOfInverseInPlace(Hp, K, name, percdamp);
    opts.factors?.set(H0, { key, U });
  }

  const codes = spec.bits === 8 ? new Int8Array(N * K) : new Uint8Array(N * K); // in original column order
  let loss = 0;
  const err = new Float64Array(N * B);
  const permI32 = Int32Array.from(perm);
  const columns = gptqColumns();
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K);
    // the block's columns in segments that end where a group starts: a group's parameters are found on the weights
    // as the columns before it left them (without act-order the columns are in order, so groups are contiguous)
    for (let c0 = i1; c0 < i2; ) {
      let c1 = i2;
      if (!actGroups) {
        if (c0 % G === 0) findParams(c0 / G, Wp, (c) => c);
        c1 = Math.min(i2, (Math.floor(c0 / G) + 1) * G);
      }
      loss += columns({ W: Wp, N, K, U, i1, i2, c0, c1, perm: permI32, G, scale, zero, bits: spec.bits, codes, err, B });
      c0 = c1;
    }
    // lazy batch update of the columns after the block: W[:, i2:] -= Err · U[i1:i2, i2:], one float32 GEMM (the
    // reference's precision), subtracted in float64
    if (i2 < K) {
      const b = i2 - i1;
      const E = new Float32Array(N * b);
      for (let r = 0; r < N; r++) for (let i = 0; i < b; i++) E[r * b + i] = err[r * B + i]!;
      const Ub = new Float32Array(b * (K - i2));
      for (let i = 0; i < b; i++) for (let j = i2; j < K; j++) Ub[i * (K - i2) + (j - i2)] = U[(i1 + i) * K + j]!;
      const w = K - i2;
      const ub = new Tensor(Ub, [b, w], 'float32');
      // in slabs of rows, so the product never holds all N × (K − i2) at once (a 32,000-row head)
      for (let r0 = 0; r0 < N; r0 += UPDATE_ROWS) {
        const r1 = Math.min(N, r0 + UPDATE_ROWS);
        const upd = noGrad(() => matmul(new Tensor(E.subarray(r0 * b, r1 * b), [r1 - r0, b], 'float32'), ub).data as Float32Array);
        for (let r = r0; r < r1; r++) {
          const row = r * K + i2;
          const o = (r - r0) * w;
          for (let j = 0; j < w; j++) Wp[row + j] -= upd[o + j]!;
        }
      }
    }
  }
  const packed = spec.bits === 8 ? codes : new Uint8Array((N * K) / 2);
  if (spec.bits < 8) for (let i = 0; i < N * K; i++) packed[i >> 1]! |= codes[i]! << ((i & 1) * 4);
  const storeZero = spec.bits < 8 || !spec.symmetric;
  return {
    q: {
      shape: [N, K],
      bits: spec.bits,
      codes: packed,
      groupSize: G,
      perTensor: false,
      scale,
      zero: storeZero ? (spec.bits === 8 ? Int8Array.from(zero) : Uint8Array.from(zero)) : null,
      symmetric: spec.symmetric,
    },
    loss,
  };
}
