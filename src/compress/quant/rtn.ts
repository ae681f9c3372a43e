/**
 * Round-to-nearest weight quantization of a [N, K] matrix into a QuantizedWeight, with the conventions of the
 * references the fixtures pin (test/data/fixtures/seed1/methods/quant.json):
 *
 * - 8-bit symmetric (torch.ao per-tensor / per-channel qint8): scale = max(|min|, |max|)/127.5, codes −128..127.
 * - 8-bit affine (torch.ao qint8 affine): range widened to include 0, scale = (max − min)/255,
 *   zero = −128 − round(min/scale) clamped to −128..127.
 * - 2..4-bit, formula 'gptq' (IST-DASLab/gptq Quantizer, the default): range widened to include 0; asymmetric
 *   scale = (max − min)/maxq, zero = round(−min/scale); symmetric: max = max(|min|, max), scale = 2·max/maxq,
 *   zero = (maxq + 1)/2; an all-zero group uses [−1, 1].
 * - 2..4-bit, formula 'awq' (mit-han-lab/llm-awq pseudo_quantize_tensor, asymmetric only): the raw group range
 *   (0 not forced in), scale = max(max − min, 1e-5)/maxq, zero = clamp(−round(min/scale), 0, maxq).
 * - 2..4-bit, formula 'absmax' (symmetric only, llama.cpp Q4_0-like): scale = max(max|w|, 1e-5)/(2^(b−1) − 1),
 *   signed codes clamp(round(w/scale), −2^(b−1), 2^(b−1) − 1) stored offset by zero = 2^(b−1).
 * Low-bit codes are 0..maxq, two per byte.
 *
 * Rounding is half to even (torch.round) on float32 values; scales are float32 with a float32-eps floor.
 */
import type { QuantizedWeight } from './modules.ts';
import { roundHalfEven } from './kernels.ts';

export type Granularity = 'tensor' | 'channel' | 'group';

export interface WeightQuantSpec {
  bits: number;
  granularity: Granularity;
  /** Columns per group (granularity 'group'). */
  groupSize?: number;
  symmetric: boolean;
  /** Scale / zero formula for 2–4 bits (default 'gptq'); ignored for 8 bits. */
  formula?: Int4Formula;
}

export type Int4Formula = 'gptq' | 'awq' | 'absmax';
export const INT4_FORMULAS: readonly Int4Formula[] = ['gptq', 'awq', 'absmax'];

const F32_EPS = 1.1920928955078125e-7;
const f = Math.fround;

/** Parse '8', 'int4', 'channel', 'tensor', 'group:64' style options into a spec; errors name the option. */
export function parseGranularity(s: string): { granularity: Granularity; groupSize?: number } {
  if (s === 'tensor' || s === 'channel') return { granularity: s };
  const m = /^group:(\d+)$/.exec(s);
  if (m && Number(m[1]) >= 2) return { granularity: 'group', groupSize: Number(m[1]) };
  throw new Error(`--granularity must be tensor, channel or group:<size> (size ≥ 2, e.g. group:64), got '${s}'`);
}

/** Scale and zero point of one range under a spec (the zero is stored in codes' domain). */
export function qparams(lo: number, hi: number, bits: number, symmetric: boolean, formula: Int4Formula = 'gptq'): { scale: number; zero: number } {
  if (bits === 8) {
    const mn = Math.min(lo, 0);
    const mx = Math.max(hi, 0);
    if (symmetric) return { scale: Math.max(f(Math.max(-mn, mx) / 127.5), F32_EPS), zero: 0 };
    const scale = Math.max(f(f(mx - mn) / 255), F32_EPS); // float32 subtraction, then division, as torch
    return { scale, zero: Math.min(127, Math.max(-128, -128 - roundHalfEven(f(mn / scale)))) };
  }
  const maxq = 2 ** bits - 1;
  if (formula === 'awq') {
    const scale = f(Math.max(f(hi - lo), f(1e-5)) / maxq);
    return { scale, zero: Math.min(maxq, Math.max(0, -roundHalfEven(f(lo / scale)))) };
  }
  if (formula === 'absmax') {
    const half = 2 ** (bits - 1);
    return { scale: f(Math.max(Math.max(-lo, hi), f(1e-5)) / (half - 1)), zero: half };
  }
  let mn = Math.min(lo, 0);
  let mx = Math.max(hi, 0);
  if (symmetric) {
    mx = Math.max(Math.abs(mn), mx);
    if (mn < 0) mn = -mx;
  }
  if (mn === 0 && mx === 0) {
    mn = -1;
    mx = 1;
  }
  const scale = f(f(mx - mn) / maxq);
  return { scale, zero: symmetric ? (maxq + 1) / 2 : roundHalfEven(f(-mn / scale)) };
}

/** One code for value v under (scale, zero); 8-bit codes are signed, lower bit widths unsigned. */
export function quantizeValue(v: number, scale: number, zero: number, bits: number): number {
  const [qmin, qmax] = bits === 8 ? [-128, 127] : [0, 2 ** bits - 1];
  return Math.min(qmax, Math.max(qmin, roundHalfEven(f(v / scale)) + zero));
}

function checkSpec(name: string, K: number, spec: WeightQuantSpec): number {
  if (!Number.isInteger(spec.bits) || spec.bits < 2 || spec.bits > 8 || (spec.bits > 4 && spec.bits < 8))
    throw new Error(`${name}: unsupported bits ${spec.bits} (expected 8, or 2, 3 or 4 stored two codes per byte)`);
  checkFormula(spec);
  if (spec.granularity === 'group') {
    const G = spec.groupSize ?? 0;
    if (!Number.isInteger(G) || G < 2) throw new Error(`${name}: group size must be an integer ≥ 2, got ${spec.groupSize}`);
    if (K % G !== 0)
      throw new Error(`${name}: group size ${G} does not divide in_features ${K}; choose a divisor of ${K}, or pad the input dimension to ${Math.ceil(K / G) * G} with zero columns (padding adds zero weights that cost bytes but no accuracy)`);
    return G;
  }
  return K;
}

/** The formula/symmetry combinations that exist: awq is asymmetric, absmax symmetric. */
export function checkFormula(spec: Pick<WeightQuantSpec, 'formula' | 'symmetric'>): void {
  const fm = spec.formula ?? 'gptq';
  if (!INT4_FORMULAS.includes(fm)) throw new Error(`unknown int4 formula '${fm}' (expected ${INT4_FORMULAS.join(', ')})`);
  if (fm === 'awq' && spec.symmetric) throw new Error("int4 formula 'awq' is asymmetric (a zero point per group); drop --symmetric or use formula 'absmax'");
  if (fm === 'absmax' && !spec.symmetric) throw new Error("int4 formula 'absmax' is symmetric; drop --asymmetric or use formula 'awq' or 'gptq'");
}

/** Quantize a float32 weight [N, K] round-to-nearest. `name` labels errors (NaN/Inf give the flat index). */
export function quantizeWeight(name: string, w: Float32Array, N: number, K: number, spec: WeightQuantSpec): QuantizedWeight {
  if (w.length !== N * K) throw new Error(`${name}: weight has ${w.length} elements, expected ${N}×${K}`);
  const G = checkSpec(name, K, spec);
  if (spec.bits < 8 && K % 2 !== 0) throw new Error(`${name}: in_features ${K} must be even to pack two ${spec.bits}-bit codes per byte`);
  for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i]!)) throw new Error(`${name}: non-finite value ${w[i]} at index ${i} (row ${Math.floor(i / K)}, column ${i % K})`);
  const perTensor = spec.granularity === 'tensor';
  const gpr = perTensor ? 1 : K / G;
  const ns = perTensor ? 1 : N * gpr;
  const scale = new Float32Array(ns);
  const zeroVals = new Int32Array(ns);
  const rangeOf = (r0: number, r1: number, c0: number, c1: number): [number, number] => {
    let lo = Infinity;
    let hi = -Infinity;
    for (let r = r0; r < r1; r++)
      for (let c = c0; c < c1; c++) {
        const v = w[r * K + c]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    return [lo, hi];
  };
  if (perTensor) {
    const p = qparams(...rangeOf(0, N, 0, K), spec.bits, spec.symmetric, spec.formula);
    scale[0] = p.scale;
    zeroVals[0] = p.zero;
  } else
    for (let r = 0; r < N; r++)
      for (let g = 0; g < gpr; g++) {
        const p = qparams(...rangeOf(r, r + 1, g * G, (g + 1) * G), spec.bits, spec.symmetric, spec.formula);
        scale[r * gpr + g] = p.scale;
        zeroVals[r * gpr + g] = p.zero;
      }
  const codes = spec.bits === 8 ? new Int8Array(N * K) : new Uint8Array((N * K) / 2);
  for (let r = 0; r < N; r++)
    for (let c = 0; c < K; c++) {
      const si = perTensor ? 0 : r * gpr + Math.floor(c / G);
      const q = quantizeValue(w[r * K + c]!, scale[si]!, zeroVals[si]!, spec.bits);
      const i = r * K + c;
      if (spec.bits === 8) codes[i] = q;
      else codes[i >> 1]! |= q << ((i & 1) * 4);
    }
  const storeZero = spec.bits < 8 || !spec.symmetric;
  return {
    shape: [N, K],
    bits: spec.bits,
    codes,
    groupSize: perTensor ? K : G,
    perTensor,
    scale,
    zero: storeZero ? (spec.bits === 8 ? Int8Array.from(zeroVals) : Uint8Array.from(zeroVals)) : null,
    symmetric: spec.symmetric,
  };
}
