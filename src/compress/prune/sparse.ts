/**
 * Sparse storage for pruned layers: {@link SparseLinear} replaces a Linear (or GPT-2 Conv1D, stored as [out, in])
 * whose weight is mostly zeros, keeping only the nonzeros, in whichever of two forms is smaller for that layer:
 *
 * | format | checkpoint tensors | bytes |
 * | --- | --- | --- |
 * | `bitmask` | `weight_bitmask` U8 [⌈N·K/8⌉] (bit i of the row-major [out, in] weight at byte i>>3, bit i&7, LSB first) + `weight_values` F32 [nnz] | N·K/8 + 4·nnz |
 * | `csr` | `weight_row_ptr` I32 [N+1] + `weight_col_idx` U8 [nnz, 2] (uint16 column indices, little-endian) + `weight_values` F32 [nnz] | 4·(N+1) + 6·nnz |
 *
 * Values are the nonzeros in row-major order in both. CSR wins below a density of about 1/16 (2·nnz + 4·N < N·K/8);
 * at 90 % sparsity the bitmask form is 13.1 % of the dense fp32 bytes. In memory the layer always runs from CSR
 * (built once from the bitmask, rebuilt when the buffers are reloaded).
 *
 * Forward, on the native backend: the CSR × dense kernel (native/sparse.cc) when the layer's density is at most the
 * measured break-even for the batch (see {@link SPARSE_DISPATCH}), else the packed SGEMM with B panels densified from
 * CSR as they are packed. Elsewhere (the `ref` backend) {@link spmmReference}, the TypeScript spec of both kernels.
 *
 * Values in int8 (`values: 'int8'`, prune's `storage: "sparse_int8"`): `weight_codes` I8 [nnz] and `weight_scale`
 * F32 [rows] replace `weight_values` — per row, symmetric: scale = max |nonzero| / 127, code = round(v / scale) in
 * [−127, 127] (a nonzero may round to code 0 and stays in the structure). 1 byte a nonzero instead of 4: at 90 %
 * sparsity the bitmask form is N·K/8 + nnz + 4·N ≈ 22.6 % of int8-dense, 5.6 % of fp32. Storage only: the layer
 * dequantizes its codes once (cached with the CSR) and runs the float kernels.
 */
import type { StoredPart } from '../../eval/size.ts';
import { Module } from '../../nn/module.ts';
import { Conv1D, Embedding, Linear, type LinearLike } from '../../nn/layers.ts';
import { Tensor, storageVersion } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { backend, nativeAddon } from '../../backend/registry.ts';
import { registerModuleType } from '../structure.ts';

export type SparseFormat = 'bitmask' | 'csr';
/** How the nonzeros are stored: float32, or int8 codes with a float32 scale per row. */
export type SparseValues = 'float32' | 'int8';

/** A weight [N, K] in CSR form (row-major nonzeros, ascending columns per row). */
export interface CsrWeight {
  N: number;
  K: number;
  rowPtr: Int32Array;
  colIdx: Uint16Array;
  values: Float32Array;
}

/** Bytes each format needs for an [N, K] weight with nnz nonzeros (values float32, or int8 + a scale per row). */
export function sparseBytes(format: SparseFormat, N: number, K: number, nnz: number, values: SparseValues = 'float32'): number {
  const v = values === 'int8' ? nnz + 4 * N : 4 * nnz;
  return format === 'bitmask' ? Math.ceil((N * K) / 8) + v : 4 * (N + 1) + 2 * nnz + v;
}

/** The smaller format for that density (CSR also needs K ≤ 65536 for 16-bit columns). */
export function chooseFormat(N: number, K: number, nnz: number): SparseFormat {
  return K <= 65536 && sparseBytes('csr', N, K, nnz) < sparseBytes('bitmask', N, K, nnz) ? 'csr' : 'bitmask';
}

/** Per-row symmetric int8 codes of a CSR's values (see the file comment). */
export function quantizeSparseValues(c: CsrWeight): { codes: Int8Array; scale: Float32Array } {
  const codes = new Int8Array(c.values.length);
  const scale = new Float32Array(c.N);
  for (let n = 0; n < c.N; n++) {
    let amax = 0;
    for (let j = c.rowPtr[n]!; j < c.rowPtr[n + 1]!; j++) amax = Math.max(amax, Math.abs(c.values[j]!));
    const sc = Math.fround(amax / 127);
    scale[n] = sc;
    if (sc > 0) for (let j = c.rowPtr[n]!; j < c.rowPtr[n + 1]!; j++) codes[j] = Math.max(-127, Math.min(127, Math.round(c.values[j]! / sc)));
  }
  return { codes, scale };
}

/** CSR of a dense row-major [N, K] weight (its nonzeros). */
export function csrFromDense(w: Float32Array, N: number, K: number): CsrWeight {
  if (w.length !== N * K) throw new Error(`csrFromDense: weight has ${w.length} values, expected ${N}·${K}`);
  if (K > 65536) throw new Error(`csrFromDense: in_features ${K} > 65536 does not fit 16-bit column indices`);
  let nnz = 0;
  for (let i = 0; i < w.length; i++) if (w[i] !== 0) nnz++;
  const rowPtr = new Int32Array(N + 1);
  const colIdx = new Uint16Array(nnz);
  const values = new Float32Array(nnz);
  let j = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const v = w[n * K + k]!;
      if (v !== 0) {
        colIdx[j] = k;
        values[j++] = v;
      }
    }
    rowPtr[n + 1] = j;
  }
  return { N, K, rowPtr, colIdx, values };
}

/** The dense row-major weight of a CSR. */
export function csrToDense(c: CsrWeight): Float32Array {
  const out = new Float32Array(c.N * c.K);
  for (let n = 0; n < c.N; n++) for (let j = c.rowPtr[n]!; j < c.rowPtr[n + 1]!; j++) out[n * c.K + c.colIdx[j]!] = c.values[j]!;
  return out;
}

/** out[M, N] = x[M, K] · Wᵀ + bias, summing each row's nonzeros in order in float32 (the spec of native/sparse.cc). */
export function spmmReference(x: Float32Array, M: number, c: CsrWeight, bias: Float32Array | null, out: Float32Array): void {
  const { N, K, rowPtr, colIdx, values } = c;
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let j = rowPtr[n]!; j < rowPtr[n + 1]!; j++) acc = Math.fround(acc + Math.fround(values[j]! * x[m * K + colIdx[j]!]!));
      out[m * N + n] = Math.fround(acc + (bias ? bias[n]! : 0));
    }
}

interface SparseAddon {
  sparseGemm(x: Float32Array, M: number, K: number, rowPtr: Int32Array, colIdx: Uint16Array, vals: Float32Array, N: number, bias: Float32Array | null, out: Float32Array): void;
  sparseDenseGemm(x: Float32Array, M: number, K: number, rowPtr: Int32Array, colIdx: Uint16Array, vals: Float32Array, N: number, bias: Float32Array | null, out: Float32Array): void;
  sparseKernel(): string;
}

/** The addon's sparse kernels when the native backend is active (and built with them), else null. */
export function sparseAddon(): SparseAddon | null {
  if (backend().name !== 'native') return null;
  const a = nativeAddon() as unknown as Partial<SparseAddon> | null;
  return a && typeof a.sparseGemm === 'function' ? (a as SparseAddon) : null;
}

/**
 * When the CSR kernel runs: always below `denseFromM` batch rows, and from there on up to `largeMaxDensity`
 * (nnz / (N·K)); otherwise the packed SGEMM with densified B panels. From `node --import tsx bench/sparse.ts`
 * (768×3072, 1 thread, AVX-512 Zen 4, shared VM; table in README "Pruning"): below 256 rows the CSR kernel is at
 * least as fast as the densifying GEMM at every density measured (50 %, M = 32: 0.56× vs 0.57× of dense; M = 1:
 * 0.51× vs 0.12×, the packed GEMM densifies the whole weight for a single row); at 256 rows and more the two cross
 * between 50 % and 70 % sparsity (50 %: 0.66–0.73× vs 0.76–0.98×; 70 %: 0.98–1.03× vs 0.64–1.10×), hence 0.3.
 */
export const SPARSE_DISPATCH = { denseFromM: 256, largeMaxDensity: 0.3 };

/** Which native kernel a layer of this density uses for M rows. */
export function sparseKernelFor(M: number, density: number): 'csr' | 'dense' {
  return M < SPARSE_DISPATCH.denseFromM || density <= SPARSE_DISPATCH.largeMaxDensity ? 'csr' : 'dense';
}

/** out = x · Wᵀ + bias through the kernel the dispatch picks (or a given one), natively when possible. */
export function sparseLinearForward(x: Float32Array, M: number, c: CsrWeight, bias: Float32Array | null, out: Float32Array, kernel?: 'csr' | 'dense'): void {
  const a = sparseAddon();
  if (!a) return spmmReference(x, M, c, bias, out);
  const k = kernel ?? sparseKernelFor(M, c.values.length / Math.max(1, c.N * c.K));
  (k === 'csr' ? a.sparseGemm : a.sparseDenseGemm)(x, M, c.K, c.rowPtr, c.colIdx, c.values, c.N, bias, out);
}

/**
 * A module whose [rows, cols] weight is stored sparse (bitmask or CSR, see the file comment): the buffers, the
 * CSR view of them, and storedSize(). SparseLinear (rows = out, cols = in) and SparseEmbedding (rows = vocabulary)
 * build on it.
 */
export abstract class SparseWeight extends Module {
  readonly format: SparseFormat;
  readonly nnz: number;
  readonly values: SparseValues;
  /** The CSR built from the buffers, with the arrays it came from and their versions (a reload swaps arrays). */
  private cache: { csr: CsrWeight; key: string; src: (ArrayBufferView | undefined)[] } | null = null;

  protected constructor(
    protected readonly rows: number,
    protected readonly cols: number,
    nnz: number,
    format: SparseFormat,
    csr?: CsrWeight,
    values: SparseValues = 'float32',
  ) {
    super();
    const [N, K] = [rows, cols];
    if (!(Number.isInteger(K) && K >= 1 && Number.isInteger(N) && N >= 1 && Number.isInteger(nnz) && nnz >= 0 && nnz <= N * K))
      throw new Error(`${new.target.name}: bad structure [${N}, ${K}] with nnz ${nnz}`);
    if (format !== 'bitmask' && format !== 'csr') throw new Error(`${new.target.name}: format must be 'bitmask' or 'csr', got ${String(format)}`);
    if (format === 'csr' && K > 65536) throw new Error(`${new.target.name}: csr needs at most 65536 columns, got ${K}`);
    if (csr && (csr.N !== N || csr.K !== K || csr.values.length !== nnz)) throw new Error(`${new.target.name}: the CSR does not match the structure`);
    if (values !== 'float32' && values !== 'int8') throw new Error(`${new.target.name}: values must be 'float32' or 'int8', got ${String(values)}`);
    this.nnz = nnz;
    this.format = format;
    this.values = values;
    const c = csr;
    if (values === 'int8') {
      const q = c ? quantizeSparseValues(c) : { codes: new Int8Array(nnz), scale: new Float32Array(N) };
      this.registerBuffer('weight_codes', new Tensor(q.codes, [nnz], 'int8'));
      this.registerBuffer('weight_scale', new Tensor(q.scale, [N], 'float32'));
    } else this.registerBuffer('weight_values', new Tensor(c ? c.values.slice() : new Float32Array(nnz), [nnz], 'float32'));
    if (format === 'bitmask') {
      const bits = new Uint8Array(Math.ceil((N * K) / 8));
      if (c)
        for (let n = 0; n < N; n++)
          for (let j = c.rowPtr[n]!; j < c.rowPtr[n + 1]!; j++) {
            const i = n * K + c.colIdx[j]!;
            bits[i >> 3]! |= 1 << (i & 7);
          }
      this.registerBuffer('weight_bitmask', new Tensor(bits, [bits.length], 'uint8'));
    } else {
      this.registerBuffer('weight_row_ptr', new Tensor(c ? c.rowPtr.slice() : new Int32Array(N + 1), [N + 1], 'int32'));
      const cols = new Uint8Array(2 * nnz);
      if (c) new Uint16Array(cols.buffer, 0, nnz).set(c.colIdx);
      this.registerBuffer('weight_col_idx', new Tensor(cols, [nnz, 2], 'uint8'));
    }
  }

  get density(): number {
    return this.nnz / (this.rows * this.cols);
  }

  /** The weight as CSR (built from the buffers; cached until they change, e.g. by a checkpoint load). */
  csr(): CsrWeight {
    const fvals = this.getBuffer('weight_values')?.data as Float32Array | undefined;
    const codes = this.getBuffer('weight_codes')?.data as Int8Array | undefined;
    const scale = this.getBuffer('weight_scale')?.data as Float32Array | undefined;
    const bm = this.getBuffer('weight_bitmask')?.data as Uint8Array | undefined;
    const rp = this.getBuffer('weight_row_ptr')?.data as Int32Array | undefined;
    const ci = this.getBuffer('weight_col_idx')?.data as Uint8Array | undefined;
    const src = [fvals ?? codes, scale, bm ?? rp, ci];
    const key = src.map((a) => (a ? storageVersion(a) : -1)).join();
    if (this.cache && this.cache.key === key && this.cache.src.every((a, i) => a === src[i])) return this.cache.csr;
    const [N, K] = [this.rows, this.cols];
    // int8 codes: dequantized once per load, row by row (after the structure is known, below)
    const vals = fvals ?? new Float32Array(this.nnz);
    let csr: CsrWeight;
    if (bm) {
      const rowPtr = new Int32Array(N + 1);
      const colIdx = new Uint16Array(this.nnz);
      let j = 0;
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) {
          const i = n * K + k;
          if ((bm[i >> 3]! >> (i & 7)) & 1) {
            if (j >= this.nnz) throw new Error(`${this.constructor.name}: weight_bitmask has more than nnz = ${this.nnz} bits set`);
            colIdx[j++] = k;
          }
        }
        rowPtr[n + 1] = j;
      }
      if (j !== this.nnz) throw new Error(`${this.constructor.name}: weight_bitmask has ${j} bits set, expected nnz = ${this.nnz}`);
      csr = { N, K, rowPtr, colIdx, values: vals };
    } else {
      const cols = ci!.byteOffset % 2 === 0 ? new Uint16Array(ci!.buffer, ci!.byteOffset, this.nnz) : new Uint16Array(ci!.slice().buffer);
      if (rp![0] !== 0 || rp![N] !== this.nnz) throw new Error(`${this.constructor.name}: weight_row_ptr must run from 0 to nnz = ${this.nnz}`);
      for (let n = 0; n < N; n++) if (rp![n + 1]! < rp![n]!) throw new Error(`${this.constructor.name}: weight_row_ptr decreases at row ${n}`);
      for (let j = 0; j < this.nnz; j++) if (cols[j]! >= K) throw new Error(`${this.constructor.name}: weight_col_idx ${cols[j]} >= ${K} columns`);
      csr = { N, K, rowPtr: rp!, colIdx: cols, values: vals };
    }
    if (codes && scale) for (let n = 0; n < N; n++) for (let j = csr.rowPtr[n]!; j < csr.rowPtr[n + 1]!; j++) vals[j] = codes[j]! * scale[n]!;
    this.cache = { csr, key, src };
    return csr;
  }

  /** The dense [rows, cols] weight (tests, export). */
  dense(): Tensor {
    return new Tensor(csrToDense(this.csr()), [this.rows, this.cols], 'float32');
  }

  /** Values, index structure and bias as stored (eval/size.ts): nonzeros count as parameters, indices as bytes. */
  storedSize(): StoredPart[] {
    const parts: StoredPart[] = [];
    for (const [k, t] of this.namedBuffers('', { persistentOnly: true }))
      if (!k.includes('.')) parts.push({ storage: t.data, bytes: t.nbytes, parameters: k === 'weight_values' || k === 'weight_codes' ? t.numel : 0 });
    for (const [, t] of this.namedOwnParameters()) parts.push({ storage: t.data, bytes: t.nbytes, parameters: t.numel });
    return parts;
  }
}

/** A Linear whose weight is stored sparse (see the file comment). Inference only. */
export class SparseLinear extends SparseWeight {
  bias: Tensor | null;
  /** The float module it replaced (a Conv1D's [in, out] weight is stored transposed, as [out, in]). */
  origin: 'linear' | 'conv1d';

  /** An empty layer of that structure (the checkpoint fills it), or one holding `csr`. */
  constructor(opts: { inFeatures: number; outFeatures: number; nnz: number; format: SparseFormat; bias: boolean; origin?: 'linear' | 'conv1d'; csr?: CsrWeight; biasValues?: Tensor | null; values?: SparseValues }) {
    super(opts.outFeatures, opts.inFeatures, opts.nnz, opts.format, opts.csr, opts.values);
    this.origin = opts.origin ?? 'linear';
    this.bias = opts.biasValues ? opts.biasValues.detach() : opts.bias ? Tensor.zeros([opts.outFeatures]) : null;
  }

  get inFeatures(): number {
    return this.cols;
  }
  get outFeatures(): number {
    return this.rows;
  }

  /** A SparseLinear holding the nonzeros of a Linear / Conv1D (format: the smaller for its density, or given). */
  static fromLinear(m: LinearLike, format?: SparseFormat, values?: SparseValues): SparseLinear {
    const N = m.outFeatures;
    const K = m.inFeatures;
    const w = noGrad(() => m.weightOutIn().contiguous().data) as Float32Array;
    const csr = csrFromDense(w, N, K);
    return new SparseLinear({ inFeatures: K, outFeatures: N, nnz: csr.values.length, format: format ?? chooseFormat(N, K, csr.values.length), bias: m.bias !== null, origin: m instanceof Conv1D ? 'conv1d' : 'linear', csr, biasValues: m.bias, values });
  }

  forward(x: Tensor): Tensor {
    const K = this.inFeatures;
    if (x.shape[x.ndim - 1] !== K) throw new Error(`SparseLinear: input [${x.shape.join(', ')}] has ${x.shape[x.ndim - 1]} features, expected ${K}`);
    const M = x.numel / K;
    const xd = x.contiguous().floatData('SparseLinear') as Float32Array;
    const out = new Float32Array(M * this.outFeatures);
    sparseLinearForward(xd, M, this.csr(), this.bias ? (this.bias.floatData('SparseLinear') as Float32Array) : null, out);
    return new Tensor(out, [...x.shape.slice(0, -1), this.outFeatures], 'float32');
  }
}

/** An Embedding whose table is stored sparse: a looked-up row is expanded from its nonzeros. Inference only. */
export class SparseEmbedding extends SparseWeight {
  constructor(opts: { numEmbeddings: number; embeddingDim: number; nnz: number; format: SparseFormat; paddingIdx?: number | null; csr?: CsrWeight; values?: SparseValues }) {
    super(opts.numEmbeddings, opts.embeddingDim, opts.nnz, opts.format, opts.csr, opts.values);
    this.paddingIdx = opts.paddingIdx ?? null;
  }
  readonly paddingIdx: number | null;
  get numEmbeddings(): number {
    return this.rows;
  }
  get embeddingDim(): number {
    return this.cols;
  }
  static fromEmbedding(m: Embedding, format?: SparseFormat, values?: SparseValues): SparseEmbedding {
    const [V, D] = [m.numEmbeddings, m.embeddingDim];
    const csr = csrFromDense(m.weight.contiguous().data as Float32Array, V, D);
    return new SparseEmbedding({ numEmbeddings: V, embeddingDim: D, nnz: csr.values.length, format: format ?? chooseFormat(V, D, csr.values.length), paddingIdx: m.paddingIdx, csr, values });
  }
  forward(ids: Tensor): Tensor {
    const c = this.csr();
    const D = this.cols;
    const idx = ids.contiguous().data;
    const out = new Float32Array(idx.length * D);
    for (let i = 0; i < idx.length; i++) {
      const r = Number(idx[i]);
      if (!(Number.isInteger(r) && r >= 0 && r < this.rows)) throw new Error(`SparseEmbedding: index ${r} is out of range for ${this.rows} embeddings`);
      for (let j = c.rowPtr[r]!; j < c.rowPtr[r + 1]!; j++) out[i * D + c.colIdx[j]!] = c.values[j]!;
    }
    return new Tensor(out, [...ids.shape, D], 'float32');
  }
}

/**
 * Replace the named Linear / Conv1D (and Embedding) modules of `model` by SparseLinear / SparseEmbedding, in place.
 * An Embedding whose table is shared with another module (a tied LM head) stays dense (its zeros are kept), so the
 * tie holds. Returns the names made sparse.
 */
export function sparsify(model: Module, names: readonly string[], format?: SparseFormat, values?: SparseValues): string[] {
  const owners = new Map<unknown, number>();
  for (const m of model.modules()) for (const [, t] of m.namedOwnParameters()) owners.set(t.data, (owners.get(t.data) ?? 0) + 1);
  const done: string[] = [];
  for (const name of names) {
    const m = model.getSubmodule(name);
    if (m instanceof SparseWeight) continue;
    if (m instanceof Embedding) {
      if ((owners.get(m.weight.data) ?? 0) > 1) continue;
      model.setSubmodule(name, SparseEmbedding.fromEmbedding(m, format, values));
    } else if (m instanceof Linear || m instanceof Conv1D) {
      if ((owners.get(m.weight.data) ?? 0) > 1) continue;
      model.setSubmodule(name, SparseLinear.fromLinear(m, format, values));
    } else throw new Error(`sparsify: '${name}' is a ${m.constructor.name}, not a Linear / Conv1D / Embedding`);
    done.push(name);
  }
  return done;
}

/** Bytes and formats of the SparseLinear layers of a model. */
export function sparseReport(model: Module): Record<string, number> {
  let layers = 0;
  let bytes = 0;
  let dense = 0;
  let csr = 0;
  for (const m of model.modules())
    if (m instanceof SparseWeight) {
      const [N, K] = m instanceof SparseLinear ? [m.outFeatures, m.inFeatures] : [(m as SparseEmbedding).numEmbeddings, (m as SparseEmbedding).embeddingDim];
      layers++;
      bytes += sparseBytes(m.format, N, K, m.nnz, m.values);
      dense += 4 * N * K;
      if (m.format === 'csr') csr++;
    }
  return layers ? { sparse_layers: layers, csr_layers: csr, sparse_weight_bytes: bytes, dense_weight_bytes: dense } : {};
}

/** A checkpoint entry's `values` (absent: float32, as written before int8 values existed). */
function sparseValuesOf(v: unknown, where: string): SparseValues {
  if (v === undefined || v === 'float32' || v === 'int8') return v ?? 'float32';
  throw new Error(`${where}.values: expected 'float32' or 'int8', got ${JSON.stringify(v)}`);
}

registerModuleType<SparseLinear>({
  type: 'sparse_linear',
  cls: SparseLinear,
  describe: (m) => ({ in_features: m.inFeatures, out_features: m.outFeatures, nnz: m.nnz, format: m.format, bias: m.bias !== null, origin: m.origin, ...(m.values === 'int8' ? { values: 'int8' } : {}) }),
  build: (e, where) => {
    const int = (k: string) => {
      const v = e[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (k === 'nnz' ? 0 : 1)) throw new Error(`${where}.${k}: expected an integer, got ${JSON.stringify(v)}`);
      return v;
    };
    if (e.format !== 'bitmask' && e.format !== 'csr') throw new Error(`${where}.format: expected 'bitmask' or 'csr', got ${JSON.stringify(e.format)}`);
    return new SparseLinear({ inFeatures: int('in_features'), outFeatures: int('out_features'), nnz: int('nnz'), format: e.format, bias: e.bias !== false, origin: e.origin === 'conv1d' ? 'conv1d' : 'linear', values: sparseValuesOf(e.values, where) });
  },
});
registerModuleType<SparseEmbedding>({
  type: 'sparse_embedding',
  cls: SparseEmbedding,
  describe: (m) => ({ num_embeddings: m.numEmbeddings, embedding_dim: m.embeddingDim, nnz: m.nnz, format: m.format, padding_idx: m.paddingIdx, ...(m.values === 'int8' ? { values: 'int8' } : {}) }),
  build: (e, where) => {
    const int = (k: string, min: number) => {
      const v = e[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error(`${where}.${k}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
      return v;
    };
    if (e.format !== 'bitmask' && e.format !== 'csr') throw new Error(`${where}.format: expected 'bitmask' or 'csr', got ${JSON.stringify(e.format)}`);
    return new SparseEmbedding({ numEmbeddings: int('num_embeddings', 1), embeddingDim: int('embedding_dim', 1), nnz: int('nnz', 0), format: e.format, paddingIdx: typeof e.padding_idx === 'number' ? e.padding_idx : null, values: sparseValuesOf(e.values, where) });
  },
});
