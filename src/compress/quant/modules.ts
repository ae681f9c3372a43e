/**
 * Quantized drop-in modules: QuantLinear replaces Linear (or GPT-2's Conv1D, stored transposed to [out, in]) and
 * QuantEmbedding replaces Embedding. Weights stay integer in memory and on disk:
 *
 * - `int8`: weight-only int8 (per tensor, per output channel or per group of input columns, symmetric or with a
 *   zero point); the GEMM dequantizes panel by panel, never the whole matrix.
 * - `int8-dynamic`: int8 per-channel symmetric weights and per-token activations quantized on the fly, multiplied
 *   on the exact int8×int8→int32 kernel with a fused dequantize epilogue.
 * - `int8-static`: as int8-dynamic, but every token's activations use one calibrated (scale, zero point) per layer
 *   (`input_scale`, `input_zero_point`; calibrate.ts), so nothing is measured at run time.
 * - `int4`: two 4-bit codes per byte (low nibble = even column), per-group scales and zero points (asymmetric, as
 *   GPTQ and AWQ store them); 3-bit GPTQ codes use the same 4-bit containers.
 *
 * Which kernel a QuantLinear runs is chosen per layer and batch-shape class (kernels.ts chooseKernel; `kernelFor`,
 * `kernelPlan`): integer schemes always the exact int8 GEMM; weight-only layers dequantize-in-pack, or a cached
 * float32 copy of the weight for tiny layers when it measures faster (SHRINK_QUANT_KERNEL forces one).
 *
 * Dequantization everywhere is w = (q − zero)·scale. The checkpoint keys are `<name>.weight` (I8) or
 * `<name>.weight_packed` (U8), `<name>.weight_scale` (F32), `<name>.weight_zero_point` (I8 / U8, asymmetric
 * only) and `<name>.bias`; see format.ts.
 */
import type { StoredPart } from '../../eval/size.ts';
import { Module } from '../../nn/module.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { linear } from '../../ops/matmul.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { backend } from '../../backend/registry.ts';
import { CLASS_M, SHAPE_CLASSES, chooseKernel, dequantGather, forcedQuantKernel, int8DynamicLinear, int8StaticLinear, runWeightOnly, shapeClass, type KernelChoice, type ShapeClass } from './kernels.ts';

export type QuantScheme = 'int8' | 'int8-dynamic' | 'int8-static' | 'int4';
export const QUANT_SCHEMES: readonly QuantScheme[] = ['int8', 'int8-dynamic', 'int8-static', 'int4'];
/** Schemes whose activations are integer too (per-channel symmetric int8 weights on the integer GEMM). */
export const isIntegerActivations = (s: QuantScheme) => s === 'int8-dynamic' || s === 'int8-static';

/** An integer weight [N, K] with its dequantization parameters. */
export interface QuantizedWeight {
  /** Output and input features. */
  shape: [number, number];
  /** Bits of the codes (8, or 2..4 in 4-bit containers). */
  bits: number;
  /** 8-bit: Int8Array [N·K] (signed codes). ≤ 4-bit: Uint8Array [N·K/2], unsigned codes, low nibble = even k. */
  codes: Int8Array | Uint8Array;
  /** Columns per scale: K for per-channel, a divisor of K for groups; per-tensor is `perTensor`. */
  groupSize: number;
  perTensor: boolean;
  /** [1] per tensor, [N] per channel, [N · K/groupSize] per group. */
  scale: Float32Array;
  /** Same length as scale; null = symmetric (zero 0 for signed 8-bit codes). */
  zero: Int8Array | Uint8Array | null;
  /** Whether the quantizer was symmetric (2–4-bit symmetric codes still store their constant zero point). */
  symmetric?: boolean;
}

export function numScales(w: Pick<QuantizedWeight, 'shape' | 'groupSize' | 'perTensor'>): number {
  return w.perTensor ? 1 : w.shape[0] * (w.shape[1] / w.groupSize);
}

/** Dequantize rows [r0, r1) of a quantized weight into out ((r1 − r0)·K floats). The reference for every kernel. */
export function dequantizeRows(w: QuantizedWeight, r0: number, r1: number, out: Float32Array): void {
  const [, K] = w.shape;
  const G = w.perTensor ? K : w.groupSize;
  const gpr = K / G;
  for (let r = r0; r < r1; r++) {
    const o = (r - r0) * K;
    for (let g = 0; g < gpr; g++) {
      const si = w.perTensor ? 0 : r * gpr + g;
      const s = w.scale[si]!;
      const z = w.zero ? w.zero[si]! : 0;
      for (let k = g * G; k < (g + 1) * G; k++) {
        const i = r * K + k;
        const q = w.bits === 8 ? (w.codes as Int8Array)[i]! : ((w.codes as Uint8Array)[i >> 1]! >> ((i & 1) * 4)) & 15;
        out[o + k] = Math.fround((q - z) * s);
      }
    }
  }
}

/** The whole weight in float32 (for tests, export and QAT conversion checks; modules never call it). */
export function dequantize(w: QuantizedWeight): Tensor {
  const [N, K] = w.shape;
  const out = new Float32Array(N * K);
  dequantizeRows(w, 0, N, out);
  return new Tensor(out, [N, K], 'float32');
}

/** Storage bytes of a quantized weight (codes + scales + zero points). */
export function quantizedBytes(w: QuantizedWeight): number {
  return w.codes.byteLength + w.scale.byteLength + (w.zero?.byteLength ?? 0);
}

function checkWeight(where: string, w: QuantizedWeight): void {
  const [N, K] = w.shape;
  if (w.bits === 8 ? !(w.codes instanceof Int8Array) : !(w.codes instanceof Uint8Array))
    throw new Error(`${where}: ${w.bits}-bit codes must be ${w.bits === 8 ? 'an Int8Array' : 'a Uint8Array (two codes per byte)'}`);
  const nCodes = w.bits === 8 ? N * K : (N * K) / 2;
  if (w.codes.length !== nCodes) throw new Error(`${where}: codes have ${w.codes.length} elements, expected ${nCodes} for [${N}, ${K}] at ${w.bits} bits`);
  if (!w.perTensor && (w.groupSize < 1 || K % w.groupSize !== 0)) throw new Error(`${where}: group size ${w.groupSize} does not divide in_features ${K}`);
  const ns = numScales(w);
  if (w.scale.length !== ns) throw new Error(`${where}: weight_scale has ${w.scale.length} elements, expected ${ns}`);
  if (w.zero && w.zero.length !== ns) throw new Error(`${where}: weight_zero_point has ${w.zero.length} elements, expected ${ns}`);
  if (w.bits < 8 && w.bits !== 4 && w.bits !== 3 && w.bits !== 2) throw new Error(`${where}: unsupported bits ${w.bits} (expected 2, 3, 4 or 8)`);
  if (w.bits < 8 && K % 2 !== 0) throw new Error(`${where}: in_features ${K} must be even for two 4-bit codes per byte`);
}

/** The tensors a quantized weight contributes to a state dict (names relative to the module). */
function registerQuantBuffers(m: Module, w: QuantizedWeight): void {
  const [N, K] = w.shape;
  const sshape = w.perTensor ? [1] : w.groupSize === K ? [N] : [N, K / w.groupSize];
  if (w.bits === 8) m.registerBuffer('weight', new Tensor(w.codes, [N, K], 'int8'));
  else m.registerBuffer('weight_packed', new Tensor(w.codes, [N, K / 2], 'uint8'));
  m.registerBuffer('weight_scale', new Tensor(w.scale, sshape, 'float32'));
  if (w.zero) m.registerBuffer('weight_zero_point', new Tensor(w.zero, sshape, w.zero instanceof Int8Array ? 'int8' : 'uint8'));
}

/** The stored parts of a quantized weight (codes count as weights; scales and zero points as bytes only). */
function quantParts(w: QuantizedWeight, inFeatures = w.shape[1]): StoredPart[] {
  const parts: StoredPart[] = [
    // zero-padding columns (a group size that does not divide in_features) are bytes, not weights
    { storage: w.codes, bytes: w.codes.byteLength, parameters: w.shape[0] * inFeatures },
    { storage: w.scale, bytes: w.scale.byteLength, parameters: 0 },
  ];
  if (w.zero) parts.push({ storage: w.zero, bytes: w.zero.byteLength, parameters: 0 });
  return parts;
}

/** Re-read the buffers (after loadStateDict copied a checkpoint into them) into the QuantizedWeight view. */
function syncFromBuffers(m: Module, w: QuantizedWeight): void {
  w.codes = (m.getBuffer('weight') ?? m.getBuffer('weight_packed'))!.data as Int8Array | Uint8Array;
  w.scale = m.getBuffer('weight_scale')!.data as Float32Array;
  w.zero = (m.getBuffer('weight_zero_point')?.data as Int8Array | Uint8Array | undefined) ?? null;
}

/** Linear with an integer weight: y = x·dequant(W)ᵀ + b. Inference only (no gradient reaches W). */
export class QuantLinear extends Module {
  bias: Tensor | null;
  readonly qweight: QuantizedWeight;
  /** Input features the layer takes; the stored weight may have more columns (zero padding up to a group multiple). */
  readonly inFeatures: number;
  /** The float module it replaced: a Linear, or a GPT-2 Conv1D whose [in, out] weight is stored transposed. */
  origin: 'linear' | 'conv1d' = 'linear';
  /** The kernel chosen per batch-shape class (kernels.ts chooseKernel), with the backend and override it was chosen under. */
  private kernels: Partial<Record<ShapeClass, KernelChoice & { stamp: string }>> = {};
  constructor(
    readonly scheme: QuantScheme,
    qweight: QuantizedWeight,
    bias: Tensor | null,
    inFeatures = qweight.shape[1],
  ) {
    super();
    if (!(inFeatures >= 1 && inFeatures <= qweight.shape[1])) throw new Error(`QuantLinear: in_features ${inFeatures} must be in [1, ${qweight.shape[1]}] (the stored columns)`);
    this.inFeatures = inFeatures;
    checkWeight(`QuantLinear(${scheme})`, qweight);
    if (isIntegerActivations(scheme) && (qweight.bits !== 8 || qweight.zero || qweight.groupSize !== qweight.shape[1]))
      throw new Error(`QuantLinear(${scheme}): needs 8-bit symmetric per-channel weights (no zero point, no groups)`);
    if (scheme === 'int4' && qweight.bits > 4) throw new Error(`QuantLinear(int4): weight has ${qweight.bits} bits`);
    if (scheme === 'int8' && qweight.bits !== 8) throw new Error(`QuantLinear(int8): weight has ${qweight.bits} bits`);
    this.qweight = { ...qweight };
    registerQuantBuffers(this, this.qweight);
    if (scheme === 'int8-static') {
      this.registerBuffer('input_scale', new Tensor(new Float32Array([1]), [1], 'float32'));
      this.registerBuffer('input_zero_point', new Tensor(new Int32Array([0]), [1], 'int32'));
    }
    this.bias = bias ? bias.detach() : null;
  }
  /** int8-static: the calibrated activation scale and zero point (7-bit codes). */
  setInputQuant(scale: number, zero: number): void {
    if (this.scheme !== 'int8-static') throw new Error(`QuantLinear(${this.scheme}): only int8-static layers take a static input range`);
    if (!(scale > 0) || !Number.isInteger(zero) || zero < 0 || zero > 127) throw new Error(`QuantLinear: input scale must be > 0 and zero point in 0..127, got ${scale}, ${zero}`);
    this.getBuffer('input_scale')!.data[0] = scale;
    this.getBuffer('input_zero_point')!.data[0] = zero;
  }
  get outFeatures(): number {
    return this.qweight.shape[0];
  }
  /** Codes, scales, zero points and bias as stored (eval/size.ts). */
  storedSize(): StoredPart[] {
    syncFromBuffers(this, this.qweight);
    const parts = quantParts(this.qweight, this.inFeatures);
    if (this.bias) parts.push({ storage: this.bias.data, bytes: this.bias.nbytes, parameters: this.bias.numel });
    for (const k of ['input_scale', 'input_zero_point']) {
      const b = this.getBuffer(k);
      if (b) parts.push({ storage: b.data, bytes: b.nbytes, parameters: 0 });
    }
    return parts;
  }
  override loadStateDict(...a: Parameters<Module['loadStateDict']>): ReturnType<Module['loadStateDict']> {
    const r = super.loadStateDict(...a);
    syncFromBuffers(this, this.qweight);
    return r;
  }
  /**
   * The kernel this layer runs (or would run) for inputs of M rows, and why: chosen at the first call of M's shape
   * class (decode M ≤ 4, small M ≤ 64, large) and kept; `x` is the input a measurement runs on (random rows when absent).
   */
  kernelFor(M: number, x?: Float32Array): KernelChoice {
    const cls = shapeClass(M);
    const stamp = `${backend().name}|${forcedQuantKernel()}`;
    const c = this.kernels[cls];
    if (c && c.stamp === stamp) return c;
    syncFromBuffers(this, this.qweight);
    const b = this.bias ? (this.bias.floatData('QuantLinear') as Float32Array) : null;
    const chosen = { ...chooseKernel(this.scheme, this.qweight, M, x, b), stamp };
    this.kernels[cls] = chosen;
    return chosen;
  }
  /** The kernel per shape class (decode, small, large), measuring with CLASS_M rows where nothing was chosen yet. */
  kernelPlan(): Record<ShapeClass, KernelChoice> {
    return Object.fromEntries(
      SHAPE_CLASSES.map((cls) => {
        const { kernel, reason } = this.kernelFor(CLASS_M[cls]);
        return [cls, { kernel, reason }];
      }),
    ) as Record<ShapeClass, KernelChoice>;
  }
  /** The kernels chosen so far by real calls, per shape class (the compress report lists them). */
  chosenKernels(): Partial<Record<ShapeClass, KernelChoice>> {
    return Object.fromEntries(Object.entries(this.kernels).map(([cls, c]) => [cls, { kernel: c!.kernel, reason: c!.reason }]));
  }
  /** The weight in float32 (tests, reports). */
  dequantized(): Tensor {
    syncFromBuffers(this, this.qweight);
    return dequantize(this.qweight);
  }
  forward(x: Tensor): Tensor {
    const K = this.inFeatures;
    if (x.shape[x.ndim - 1] !== K) throw new Error(`QuantLinear: input [${x.shape.join(', ')}] has ${x.shape[x.ndim - 1]} features, expected ${K}`);
    syncFromBuffers(this, this.qweight);
    const M = x.numel / K;
    let xd = x.floatData('QuantLinear');
    const Kp = this.qweight.shape[1];
    if (Kp !== K) {
      // zero columns up to the padded width (their weights dequantize to exactly 0)
      const padded = new Float32Array(M * Kp);
      for (let m = 0; m < M; m++) padded.set(xd.subarray(m * K, (m + 1) * K), m * Kp);
      xd = padded;
    }
    const out = new Float32Array(M * this.outFeatures);
    const b = this.bias ? (this.bias.floatData('QuantLinear') as Float32Array) : null;
    const kernel = M > 0 ? this.kernelFor(M, xd as Float32Array).kernel : 'wo-pack'; // int8 schemes: always int8-gemm (or reference)
    if (this.scheme === 'int8-dynamic') int8DynamicLinear(xd as Float32Array, M, this.qweight, b, out);
    else if (this.scheme === 'int8-static')
      int8StaticLinear(xd as Float32Array, M, this.qweight, this.getBuffer('input_scale')!.data[0]!, this.getBuffer('input_zero_point')!.data[0]!, b, out);
    else runWeightOnly(kernel, xd as Float32Array, M, this.qweight, b, out);
    return new Tensor(out, [...x.shape.slice(0, -1), this.outFeatures], 'float32');
  }
}

/**
 * Embedding with integer rows (int8 per row, or int4 groups): a row is dequantized when looked up. The same
 * QuantizedWeight can serve a tied output head (QuantLinear), since per-row scales are its per-channel scales.
 */
export class QuantEmbedding extends Module {
  readonly qweight: QuantizedWeight;
  constructor(
    qweight: QuantizedWeight,
    readonly paddingIdx: number | null = null,
  ) {
    super();
    checkWeight('QuantEmbedding', qweight);
    this.qweight = { ...qweight };
    registerQuantBuffers(this, this.qweight);
  }
  override loadStateDict(...a: Parameters<Module['loadStateDict']>): ReturnType<Module['loadStateDict']> {
    const r = super.loadStateDict(...a);
    syncFromBuffers(this, this.qweight);
    return r;
  }
  /** Codes, scales and zero points as stored (eval/size.ts). */
  storedSize(): StoredPart[] {
    syncFromBuffers(this, this.qweight);
    return quantParts(this.qweight);
  }
  forward(ids: Tensor): Tensor {
    syncFromBuffers(this, this.qweight);
    const [V, D] = this.qweight.shape;
    const idx = ids.contiguous().data;
    const out = new Float32Array(idx.length * D);
    const rows = new Int32Array(idx.length);
    for (let i = 0; i < idx.length; i++) {
      const r = Number(idx[i]);
      if (!(r >= 0 && r < V)) throw new Error(`QuantEmbedding: index ${r} is out of range for ${V} embeddings`);
      rows[i] = r;
    }
    // natively in one call (the same (q − zero)·scale values), else row by row here
    if (!dequantGather(this.qweight, rows, out)) for (let i = 0; i < rows.length; i++) dequantizeRows(this.qweight, rows[i]!, rows[i]! + 1, out.subarray(i * D, (i + 1) * D));
    return new Tensor(out, [...ids.shape, D], 'float32');
  }
}

/** A float reference forward for a QuantLinear (dequantized weight through the fp32 GEMM): tests use it. */
export function referenceForward(m: QuantLinear, x: Tensor): Tensor {
  return noGrad(() => linear(x, m.dequantized().narrow(1, 0, m.inFeatures), m.bias));
}

/**
 * Every QuantLinear of a model with its kernel per shape class, one line each: `plan` measures the classes not yet
 * chosen (inspect), otherwise only the classes real calls chose are listed (the compress report, after its latency runs).
 */
export function quantKernelTable(model: Module, plan: boolean): { name: string; scheme: QuantScheme; shape: [number, number]; kernels: Partial<Record<ShapeClass, KernelChoice>> }[] {
  const rows = [];
  for (const [name, m] of model.namedModules())
    if (m instanceof QuantLinear) rows.push({ name, scheme: m.scheme, shape: [...m.qweight.shape] as [number, number], kernels: plan ? m.kernelPlan() : m.chosenKernels() });
  return rows;
}

/** One line per class: `decode wo-pack (reason); large fp32-cache (reason)`. */
export function formatKernelChoices(k: Partial<Record<ShapeClass, KernelChoice>>): string {
  return Object.entries(k)
    .map(([cls, c]) => `${cls} ${c!.kernel} (${c!.reason})`)
    .join('; ');
}
