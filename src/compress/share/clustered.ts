/**
 * `share.kmeans` (one-shot; centroids trainable afterwards): Deep Compression's weight sharing. Each chosen Linear
 * layer's weights are clustered by 1-D k-means (kmeans.ts; k = `clusters`, 16/64/256, `init` linear / random /
 * kmeans++, seeded) and the layer becomes a {@link ClusteredLinear}: a float32 codebook of k values plus one 4- or
 * 8-bit index per weight (4-bit: two per byte, low nibble = even index), and the float bias.
 *
 * Fine-tuning the centroids: the codebook is a trainable parameter and the weight is a gather from it by index
 * (`codebook.indexSelect(0, codes)`), so autograd's scatter-add gives each centroid exactly the sum of its members'
 * gradients — Deep Compression's centroid update. A `finetune` step after `share.kmeans` trains the centroids (and
 * the biases); the codes never change.
 *
 * Inference (no gradient needed) on the native backend: the addon's codebookGemm (native/codebook.cc) looks the
 * codes up while it packs the GEMM's B panels (KC×16 at a time, the int4 weight-only path's pattern; M ≤ 4 looks up
 * one weight row at a time and dots it with the input rows), so the float32 weight never exists and the run-time
 * memory of the layer is its codes. The codes are checked to be below the codebook's size once per load (their
 * storage version, src/tensor/tensor.ts), not per call. Outputs of ≤ 16 elements (the native backend's own TINY
 * rule) gather the weight for that call. On the `ref` backend (the reference path) the forward dequantizes the
 * weight to float32 once and caches it (checked against the codebook on every call, so a trained or reloaded
 * codebook rebuilds it) and runs the float GEMM; so does a forward that needs a gradient for the input or the bias
 * only. Training the centroids always runs the differentiable gather.
 *
 * Storage (`storedSize`, the file): k·4 bytes of codebook + ⌈N·K/2⌉ (4-bit) or N·K (8-bit) bytes of codes + the
 * bias; keys `<name>.codebook` (F32 [k]), `<name>.weight_codes` (U8), `<name>.bias`, and a `clustered_linear`
 * entry in compression_config so fromPretrained rebuilds the module.
 */
import { Module } from '../../nn/module.ts';
import type { LinearLike } from '../../nn/layers.ts';
import { Tensor, storageVersion } from '../../tensor/tensor.ts';
import { isGradEnabled, noGrad } from '../../tensor/autograd.ts';
import { linear } from '../../ops/matmul.ts';
import type { StoredPart } from '../../eval/size.ts';
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import { registerModuleType } from '../structure.ts';
import { backend, nativeAddon } from '../../backend/registry.ts';
import { TINY, codebookGemm, type NativeAddon } from '../../backend/native/index.ts';
import { named, sharingSummary, targetLinears, weight64 } from './common.ts';
import { KMEANS_INITS, kmeans1d, packCodes, unpackCodes, type KmeansInit } from './kmeans.ts';

/** The weight [N, K] gathered from a codebook [k] by int32 codes [N·K] (differentiable in the codebook). */
export function gatherWeight(codebook: Tensor, codes: Tensor, N: number, K: number): Tensor {
  return codebook.indexSelect(0, codes).reshape([N, K]);
}

/** The addon's codebookGemm when the native backend is active (and the addon has it), else null. */
function codebookAddon(): Pick<NativeAddon, 'codebookGemm'> | null {
  if (backend().name !== 'native') return null;
  const a = nativeAddon();
  return a && typeof a.codebookGemm === 'function' ? a : null;
}

/** Throws unless each of the n packed codes is below `clusters` (what the native kernel relies on). */
function checkCodes(packed: Uint8Array, n: number, bits: 4 | 8, clusters: number): void {
  if (clusters >= 2 ** bits) return;
  for (let i = 0; i < n; i++) {
    const c = bits === 8 ? packed[i]! : (packed[i >> 1]! >> ((i & 1) * 4)) & 15;
    if (c >= clusters) throw new Error(`ClusteredLinear: code ${c} at ${i} is not below the codebook's ${clusters} entries`);
  }
}

/** y = x·Wᵀ + b with W[i] = codebook[code[i]] (see the file comment). */
export class ClusteredLinear extends Module {
  /** The shared values, float32 [k]; trainable. */
  codebook: Tensor;
  bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly bits: 4 | 8;
  private _codes: Int32Array | null = null;
  private _codesTensor: Tensor | null = null;
  private _dense: { w: Tensor; key: Float32Array } | null = null;
  /** The codes storage (and its version) last checked to be below the codebook's size. */
  private _checked: { data: Uint8Array; version: number } | null = null;
  constructor(outFeatures: number, inFeatures: number, clusters: number, bits: 4 | 8, opts: { bias?: boolean } = {}) {
    super();
    if (bits !== 4 && bits !== 8) throw new Error(`ClusteredLinear: bits must be 4 or 8, got ${bits as number}`);
    if (!(Number.isInteger(clusters) && clusters >= 1 && clusters <= 2 ** bits)) throw new Error(`ClusteredLinear: ${clusters} clusters do not fit ${bits}-bit codes (at most ${2 ** bits})`);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.bits = bits;
    this.codebook = Tensor.zeros([clusters], { requiresGrad: true });
    const n = outFeatures * inFeatures;
    this.registerBuffer('weight_codes', bits === 8 ? new Tensor(new Uint8Array(n), [outFeatures, inFeatures], 'uint8') : new Tensor(new Uint8Array(Math.ceil(n / 2)), [Math.ceil(n / 2)], 'uint8'));
    this.bias = opts.bias === false ? null : Tensor.zeros([outFeatures], { requiresGrad: true });
  }
  /** A layer from a codebook, unpacked codes (one per weight, row-major [N, K]) and an optional bias (copied). */
  static fromCodes(codebook: ArrayLike<number>, codes: ArrayLike<number>, shape: [number, number], bits: 4 | 8, bias: Tensor | null = null): ClusteredLinear {
    const [N, K] = shape;
    if (codes.length !== N * K) throw new Error(`ClusteredLinear.fromCodes: ${codes.length} codes for a [${N}, ${K}] weight`);
    const m = new ClusteredLinear(N, K, codebook.length, bits, { bias: bias !== null });
    for (let i = 0; i < codes.length; i++) if (!(codes[i]! >= 0 && codes[i]! < codebook.length)) throw new Error(`ClusteredLinear.fromCodes: code ${codes[i]} at ${i} is not below ${codebook.length}`);
    (m.codebook.data as Float32Array).set(Float32Array.from(codebook));
    m.getBuffer('weight_codes')!.data.set(packCodes(codes, bits));
    if (bias) noGrad(() => m.bias!.copy_(bias));
    return m;
  }
  get clusters(): number {
    return this.codebook.numel;
  }
  /** One int32 code per weight (unpacked once, cached). */
  codes(): Int32Array {
    return (this._codes ??= unpackCodes(this.getBuffer('weight_codes')!.data as Uint8Array, this.outFeatures * this.inFeatures, this.bits));
  }
  private codesTensor(): Tensor {
    return (this._codesTensor ??= new Tensor(this.codes(), [this.codes().length], 'int32'));
  }
  /** The weight as float32 [out, in] (a new tensor; no gradient). */
  weightOutIn(): Tensor {
    return noGrad(() => gatherWeight(this.codebook.detach(), this.codesTensor(), this.outFeatures, this.inFeatures));
  }
  /** Codebook, codes and bias as stored (eval/size.ts); the codes represent the N·K weights. */
  storedSize(): StoredPart[] {
    const codes = this.getBuffer('weight_codes')!;
    const parts: StoredPart[] = [
      { storage: this.codebook.data, bytes: this.codebook.nbytes, parameters: 0 },
      { storage: codes.data, bytes: codes.nbytes, parameters: this.outFeatures * this.inFeatures },
    ];
    if (this.bias) parts.push({ storage: this.bias.data, bytes: this.bias.nbytes, parameters: this.bias.numel });
    return parts;
  }
  override loadStateDict(...a: Parameters<Module['loadStateDict']>): ReturnType<Module['loadStateDict']> {
    const r = super.loadStateDict(...a);
    this._codes = null;
    this._codesTensor = null;
    this._dense = null;
    return r;
  }
  /** The packed codes, checked to be below the codebook's size once per storage version (each load bumps it). */
  private checkedCodes(): Uint8Array {
    const data = this.getBuffer('weight_codes')!.data as Uint8Array;
    const version = storageVersion(data);
    if (this._checked?.data !== data || this._checked.version !== version) {
      checkCodes(data, this.outFeatures * this.inFeatures, this.bits, this.clusters);
      this._checked = { data, version };
    }
    return data;
  }
  forward(x: Tensor): Tensor {
    if (isGradEnabled() && this.codebook.requiresGrad) {
      this._dense = null;
      return linear(x, gatherWeight(this.codebook, this.codesTensor(), this.outFeatures, this.inFeatures), this.bias);
    }
    const a = codebookAddon();
    if (a && !(isGradEnabled() && (x.requiresGrad || (this.bias?.requiresGrad ?? false))) && x.dtype === 'float32') {
      const [K, N] = [this.inFeatures, this.outFeatures];
      if (x.shape[x.ndim - 1] !== K) throw new Error(`ClusteredLinear: input [${x.shape.join(', ')}] has ${x.shape[x.ndim - 1]} features, expected ${K}`);
      const M = x.numel / K;
      // a tiny output (the native backend runs such GEMMs on `ref`): this call's weight, gathered
      const w = M * N <= TINY ? this.weightOutIn() : null;
      // nothing of the weight's size stays behind: no float32 copy, no unpacked int32 codes (the gather's)
      this._dense = null;
      this._codes = null;
      this._codesTensor = null;
      if (w) return linear(x, w, this.bias);
      const out = new Float32Array(M * N);
      const b = this.bias ? (this.bias.floatData('ClusteredLinear') as Float32Array) : null;
      codebookGemm(a, x.floatData('ClusteredLinear') as Float32Array, M, K, N, this.checkedCodes(), this.bits, this.codebook.floatData('ClusteredLinear') as Float32Array, b, out);
      return new Tensor(out, [...x.shape.slice(0, -1), N], 'float32');
    }
    const cb = this.codebook.data as Float32Array;
    const d = this._dense;
    if (!d || d.key.length !== cb.length || d.key.some((v, i) => v !== cb[i])) this._dense = { w: this.weightOutIn(), key: cb.slice() };
    return linear(x, this._dense!.w, this.bias);
  }
}

registerModuleType<ClusteredLinear>({
  type: 'clustered_linear',
  cls: ClusteredLinear,
  describe: (m) => ({ in_features: m.inFeatures, out_features: m.outFeatures, clusters: m.clusters, bits: m.bits, bias: m.bias !== null }),
  build: (e, where) => {
    const n = (k: string) => {
      const v = e[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new Error(`${where}.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
      return v;
    };
    const bits = n('bits');
    if (bits !== 4 && bits !== 8) throw new Error(`${where}.bits: expected 4 or 8, got ${bits}`);
    return new ClusteredLinear(n('out_features'), n('in_features'), n('clusters'), bits, { bias: e.bias !== false });
  },
});

// ---------------------------------------------------------------- the method

export interface KmeansConfig {
  /** Clusters per layer (16 → 4-bit codes, up to 256 → 8-bit). */
  clusters: number;
  /** Code width: 4 or 8; null = 4 when clusters ≤ 16, else 8. */
  bits: number | null;
  init: KmeansInit;
  /** Most Lloyd iterations (it stops earlier when no assignment changes). */
  iters: number;
  seed: number;
  /** Whether the codebook trains in a later `finetune` stage (the sum of its members' gradients). */
  train_centroids: boolean;
  targets: string[] | null;
  ignore: string[] | null;
}

const defaults: KmeansConfig = { clusters: 16, bits: null, init: 'linear', iters: 100, seed: 0, train_centroids: true, targets: null, ignore: null };

/** The code width of a config; throws naming the option. */
export function kmeansBits(cfg: KmeansConfig): 4 | 8 {
  if (!(Number.isInteger(cfg.clusters) && cfg.clusters >= 2 && cfg.clusters <= 256)) throw new Error(`option 'clusters' must be an integer in [2, 256], got ${cfg.clusters}`);
  if (cfg.bits !== null && cfg.bits !== 4 && cfg.bits !== 8) throw new Error(`option 'bits' must be 4 or 8, got ${cfg.bits}`);
  const bits = (cfg.bits ?? (cfg.clusters <= 16 ? 4 : 8)) as 4 | 8;
  if (cfg.clusters > 2 ** bits) throw new Error(`option 'clusters' ${cfg.clusters} does not fit option 'bits' ${bits} (at most ${2 ** bits} clusters)`);
  if (!(Number.isInteger(cfg.iters) && cfg.iters >= 1)) throw new Error(`option 'iters' must be an integer >= 1, got ${cfg.iters}`);
  if (!KMEANS_INITS.includes(cfg.init)) throw new Error(`option 'init' must be one of ${KMEANS_INITS.join(', ')}, got ${String(cfg.init)}`);
  return bits;
}

export interface KmeansLayerReport {
  name: string;
  out_features: number;
  in_features: number;
  iterations: number;
  converged: boolean;
  bytes_before: number;
  bytes_after: number;
  /** ‖W − W_clustered‖_F / ‖W‖_F. */
  weight_error: number;
}

function plan(model: Module, cfg: KmeansConfig): { bits: 4 | 8; layers: [string, LinearLike][] } {
  const bits = kmeansBits(cfg);
  const layers = targetLinears(model, cfg.targets, cfg.ignore);
  if (layers.length === 0) throw new Error(`option 'targets': no Linear layer is selected`);
  for (const [name, m] of layers) if (m.outFeatures * m.inFeatures < cfg.clusters) throw new Error(`option 'clusters' ${cfg.clusters}: layer '${name}' has only ${m.outFeatures * m.inFeatures} weights`);
  return { bits, layers };
}

/** Cluster the chosen layers of `model` in place (what the method's apply does). */
export function kmeansModel(model: Module, cfg: Partial<KmeansConfig>, log?: (l: string) => void): KmeansLayerReport[] {
  const c: KmeansConfig = { ...defaults, ...cfg };
  const { bits, layers } = plan(model, c);
  const out: KmeansLayerReport[] = [];
  for (const [name, m] of layers) {
    const N = m.outFeatures;
    const K = m.inFeatures;
    const W = weight64(m);
    const r = kmeans1d(W, c.clusters, { init: c.init, iters: c.iters, seed: c.seed });
    const cl = ClusteredLinear.fromCodes(r.centroids, r.assign, [N, K], bits, m.bias ? noGrad(() => m.bias!.detach()) : null);
    cl.codebook.requiresGrad_(c.train_centroids);
    cl.training = m.training;
    let num = 0;
    let den = 0;
    const cb = cl.codebook.data as Float32Array;
    for (let i = 0; i < W.length; i++) {
      num += (W[i]! - cb[r.assign[i]!]!) ** 2;
      den += W[i]! ** 2;
    }
    model.setSubmodule(name, cl);
    const bytesAfter = cl.storedSize().reduce((a, p) => a + p.bytes, 0);
    const rep: KmeansLayerReport = { name, out_features: N, in_features: K, iterations: r.iterations, converged: r.converged, bytes_before: (N * K + (m.bias ? N : 0)) * 4, bytes_after: bytesAfter, weight_error: Math.sqrt(num / Math.max(den, 1e-300)) };
    out.push(rep);
    log?.(`share.kmeans ${name} [${N}×${K}]: ${c.clusters} clusters (${bits}-bit codes), ${r.iterations} iterations${r.converged ? '' : ' (not converged)'}, ${rep.bytes_before} → ${bytesAfter} bytes, weight error ${rep.weight_error.toExponential(3)}`);
  }
  return out;
}

export function kmeansSummary(layers: KmeansLayerReport[], cfg: KmeansConfig, bits: number): Record<string, number | string> {
  const before = layers.reduce((a, l) => a + l.bytes_before, 0);
  const after = layers.reduce((a, l) => a + l.bytes_after, 0);
  return {
    layers: layers.length,
    clusters: cfg.clusters,
    bits,
    init: cfg.init,
    converged: layers.filter((l) => l.converged).length,
    mean_iterations: layers.reduce((a, l) => a + l.iterations, 0) / Math.max(layers.length, 1),
    ...sharingSummary(before, after, layers.map((l) => l.weight_error)),
  };
}

export const shareKmeans: Method<KmeansConfig> = {
  name: 'share.kmeans',
  kind: 'one-shot',
  description: 'weight clustering (Deep Compression): per-layer k-means codebook + 4/8-bit indices; centroids train in a later finetune step',
  defaults,
  types: { clusters: 'integer', bits: 'integer', init: KMEANS_INITS, iters: 'integer', seed: 'integer', targets: 'string[]', ignore: 'string[]' },
  globs: ['targets', 'ignore'],
  check: (model, cfg) => void named('share.kmeans', () => plan(model, cfg)),
  apply: (model, cfg, ctx) => {
    const bits = named('share.kmeans', () => kmeansBits(cfg));
    const layers = named('share.kmeans', () => kmeansModel(model, cfg, ctx.log));
    return { report: () => kmeansSummary(layers, cfg, bits) };
  },
};

registerMethod(shareKmeans);
