/**
 * GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers";
 * reference IST-DASLab/gptq, gptq.py `GPTQ.add_batch` / `fasterquant`), for one weight W [N, K] given the layer's
 * input Hessian H = 2/n Σ x xᵀ [K, K]:
 *
 * - dead inputs (H_ii = 0) get H_ii = 1 and a zero weight column;
 * - optional act-order: columns processed by descending H_ii; with groups, each column keeps the scale of its
 *   original contiguous group ("static groups", computed from the unquantized W), so the file format stays plain
 *   contiguous groups;
 * - dampening λ = percdamp · mean(diag H) added to the diagonal; H⁻¹ via Cholesky, then its upper Cholesky factor;
 * - lazy batches of 128 columns: quantize a column, spread its error over the remaining columns of the block, then
 *   apply the block's accumulated update to the rest of W in one product;
 * - per-group parameters found on the *updated* weights when a group starts (as the reference does without
 *   act-order), per-row parameters from the whole W at the start otherwise.
 *
 * All arithmetic in float64. Returns the QuantizedWeight and the reference's loss Σ (w − q)²/d² / 2.
 */
import { matmul } from '../../ops/matmul.ts';
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

/** Lower Cholesky factor of a symmetric positive-definite [K, K] matrix (in place into L); false if not SPD. */
function cholesky(A: Float64Array, K: number, L: Float64Array): boolean {
  L.fill(0);
  for (let j = 0; j < K; j++) {
    let d = A[j * K + j]!;
    for (let k = 0; k < j; k++) d -= L[j * K + k]! * L[j * K + k]!;
    if (!(d > 0)) return false;
    const ljj = Math.sqrt(d);
    L[j * K + j] = ljj;
    for (let i = j + 1; i < K; i++) {
      let s = A[i * K + j]!;
      const li = i * K;
      const lj = j * K;
      for (let k = 0; k < j; k++) s -= L[li + k]! * L[lj + k]!;
      L[i * K + j] = s / ljj;
    }
  }
  return true;
}

/** Upper Cholesky factor U of H⁻¹ (H⁻¹ = Uᵀ U), from H. */
function upperCholeskyOfInverse(H: Float64Array, K: number, name: string, percdamp: number): Float64Array {
  const L = new Float64Array(K * K);
  if (!cholesky(H, K, L)) throw new Error(`${name}: GPTQ Hessian is not positive definite after dampening ${percdamp}; raise --percdamp (e.g. 0.1) or use more calibration data`);
  // Linv: inverse of the lower-triangular L, by forward substitution column by column
  const Linv = new Float64Array(K * K);
  for (let j = 0; j < K; j++) {
    Linv[j * K + j] = 1 / L[j * K + j]!;
    for (let i = j + 1; i < K; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s += L[i * K + k]! * Linv[k * K + j]!;
      Linv[i * K + j] = -s / L[i * K + i]!;
    }
  }
  // H⁻¹ = Linvᵀ Linv
  const Hinv = new Float64Array(K * K);
  for (let i = 0; i < K; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < K; k++) s += Linv[k * K + i]! * Linv[k * K + j]!;
      Hinv[i * K + j] = s;
      Hinv[j * K + i] = s;
    }
  const Lh = new Float64Array(K * K);
  if (!cholesky(Hinv, K, Lh)) throw new Error(`${name}: GPTQ inverse Hessian is not positive definite; raise --percdamp`);
  const U = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j <= i; j++) U[j * K + i] = Lh[i * K + j]!;
  return U;
}

export interface GptqOptions {
  percdamp?: number;
  actOrder?: boolean;
  blockSize?: number;
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
  const H = Float64Array.from(H0);
  const W = Float64Array.from(w32); // [N, K]
  for (let i = 0; i < K; i++)
    if (H[i * K + i] === 0) {
      H[i * K + i] = 1;
      for (let r = 0; r < N; r++) W[r * K + i] = 0;
    }
  const gpr = K / G;
  const scale = new Float32Array(N * gpr);
  const zero = new Int32Array(N * gpr);
  const findParams = (g: number, src: Float64Array, cols: (c: number) => number) => {
    for (let r = 0; r < N; r++) {
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
  if (opts.actOrder) perm.sort((a, b) => H[b * K + b]! - H[a * K + a]! || a - b);
  const actGroups = opts.actOrder || G === K; // parameters fixed up front (static groups / per-row)
  if (actGroups) for (let g = 0; g < gpr; g++) findParams(g, W, (c) => c);
  // permuted copies
  const Wp = new Float64Array(N * K);
  const Hp = new Float64Array(K * K);
  for (let r = 0; r < N; r++) for (let c = 0; c < K; c++) Wp[r * K + c] = W[r * K + perm[c]!]!;
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) Hp[i * K + j] = H[perm[i]! * K + perm[j]!]!;
  let mean = 0;
  for (let i = 0; i < K; i++) mean += Hp[i * K + i]!;
  const damp = (percdamp * mean) / K;
  for (let i = 0; i < K; i++) Hp[i * K + i] += damp;
  const U = upperCholeskyOfInverse(Hp, K, name, percdamp);

  const codes = new Int32Array(N * K); // in original column order
  let loss = 0;
  const err = new Float64Array(N * B);
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K);
    for (let i = i1; i < i2; i++) {
      const orig = perm[i]!;
      if (!actGroups && orig % G === 0) findParams(orig / G, Wp, (c) => c); // groups start on the updated weights
      const g = Math.floor(orig / G);
      const d = U[i * K + i]!;
      for (let r = 0; r < N; r++) {
        const s = scale[r * gpr + g]!;
        const z = zero[r * gpr + g]!;
        const wv = Wp[r * K + i]!;
        const code = quantizeValue(wv, s, z, spec.bits);
        codes[r * K + orig] = code;
        const qv = (code - z) * s;
        loss += ((wv - qv) * (wv - qv)) / (d * d) / 2;
        const e = (wv - qv) / d;
        err[r * B + (i - i1)] = e;
        // spread the error over the rest of the block
        const row = r * K;
        for (let j = i + 1; j < i2; j++) Wp[row + j] -= e * U[i * K + j]!;
      }
    }
    // lazy batch update of the columns after the block: W[:, i2:] -= Err · U[i1:i2, i2:]
    if (i2 < K)
      for (let r = 0; r < N; r++) {
        const row = r * K;
        for (let i = i1; i < i2; i++) {
          const e = err[r * B + (i - i1)]!;
          if (e === 0) continue;
          const ui = i * K;
          for (let j = i2; j < K; j++) Wp[row + j] -= e * U[ui + j]!;
        }
      }
  }
  const packed = spec.bits === 8 ? Int8Array.from(codes) : new Uint8Array((N * K) / 2);
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
