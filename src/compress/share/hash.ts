/**
 * `share.hash` (one-shot; buckets trainable afterwards): HashedNets (Chen et al. 2015, "Compressing Neural Networks
 * with the Hashing Trick"). Each chosen Linear layer becomes a {@link HashedLinear}: its N×K weight is *virtual*,
 * V_ij = ξ(i, j) · w[h(i, j)], with B ≪ N·K real values w (the buckets), a bucket hash h(i, j) ∈ [0, B) and a sign
 * hash ξ(i, j) ∈ {−1, +1} (the sign makes the collisions' errors cancel in expectation: E[ξ V] is unbiased).
 *
 * The hashes (`hashIndexSigns`): MurmurHash3 x86_32 of the 8-byte key (i, j) — two little-endian uint32 words, row
 * i of the [out, in] weight, column j — with a 32-bit seed: h(i, j) = murmur3(i, j; seed) mod B and
 * ξ(i, j) = +1 when the lowest bit of murmur3(i, j; seed ⊕ 0x9e3779b9) is 0, else −1 (a second, independent hash,
 * as the paper's ξ). Integer arithmetic only (Math.imul), so save and load compute the same maps on every machine;
 * only the seed, the shape and B are stored.
 *
 * Fitting a trained layer: the buckets minimising ‖W − V‖²_F = Σ_b Σ_{(i,j) ∈ b} (W_ij − ξ_ij w_b)². Each bucket's
 * term is a 1-D least-squares problem whose normal equation is Σ ξ_ij (W_ij − ξ_ij w_b) = 0, and since ξ² = 1,
 * w_b = mean over the bucket's members of ξ_ij · W_ij — the exact least-squares solution (an empty bucket gets 0;
 * it is never read). Sums in float64.
 *
 * Training: the buckets are a trainable parameter and the virtual weight is
 * `buckets.indexSelect(0, index).mul(sign)` (a gather and a product with a constant ±1 tensor), so autograd gives
 * ∂L/∂w_b = Σ_{(i,j) ∈ b} ξ_ij · ∂L/∂V_ij — HashedNets' gradient — and a following `finetune` step trains them
 * (with the biases). Inference (no gradient, eval mode) materialises V once and caches it, checked against the
 * buckets on every call, so a trained or reloaded layer rebuilds it; training drops the cache.
 *
 * Storage: B·4 bytes of buckets + the bias; keys `<name>.buckets` (F32 [B]), `<name>.bias`, and a `hashed_linear`
 * entry in compression_config (shape, buckets, the seed as a decimal string, hash) so fromPretrained rebuilds the same maps. The index and
 * sign maps are run-time memory only (int32 + float32 per virtual weight).
 */
import { Module } from '../../nn/module.ts';
import type { LinearLike } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { isGradEnabled, noGrad } from '../../tensor/autograd.ts';
import { linear } from '../../ops/matmul.ts';
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import { registerModuleType } from '../structure.ts';
import { named, sharingSummary, targetLinears, weight64 } from './common.ts';

/** The hash family's name, written in the checkpoint (a folder hashed otherwise would be refused, not misread). */
export const HASH_NAME = 'murmur3_x86_32';

/** The sign hash's seed offset (the golden-ratio constant): ξ uses murmur3 with seed ⊕ this. */
const SIGN_SEED_XOR = 0x9e3779b9;

const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));

/** One 32-bit block of MurmurHash3 x86_32 mixed into h. */
function mixBlock(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = rotl(k, 15);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = rotl(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 x86_32 of the 8-byte key (i, j) (two little-endian uint32 words) with `seed`, as an unsigned 32-bit integer. */
export function murmur3Pair(i: number, j: number, seed: number): number {
  let h = seed | 0;
  h = mixBlock(h, i | 0);
  h = mixBlock(h, j | 0);
  h ^= 8; // the key length in bytes
  // fmix32
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Bucket h(i, j) and sign ξ(i, j) of every weight of an [N, K] matrix, row-major (see the file comment). */
export function hashIndexSigns(N: number, K: number, buckets: number, seed: number): { index: Int32Array; sign: Float32Array } {
  if (!(Number.isInteger(buckets) && buckets >= 1)) throw new Error(`hashIndexSigns: buckets must be an integer >= 1, got ${buckets}`);
  const index = new Int32Array(N * K);
  const sign = new Float32Array(N * K);
  const s2 = (seed ^ SIGN_SEED_XOR) | 0;
  for (let i = 0; i < N; i++)
    for (let j = 0; j < K; j++) {
      const p = i * K + j;
      index[p] = murmur3Pair(i, j, seed) % buckets;
      sign[p] = murmur3Pair(i, j, s2) & 1 ? -1 : 1;
    }
  return { index, sign };
}

/**
 * The least-squares buckets of W [N, K] (row-major) under the given maps: w_b = mean of ξ·W over bucket b (exact:
 * see the file comment); empty buckets 0. Float64.
 */
export function fitBuckets(W: ArrayLike<number>, index: Int32Array, sign: ArrayLike<number>, buckets: number): Float64Array {
  const sum = new Float64Array(buckets);
  const count = new Float64Array(buckets);
  for (let p = 0; p < index.length; p++) {
    sum[index[p]!] += sign[p]! * W[p]!;
    count[index[p]!]++;
  }
  for (let b = 0; b < buckets; b++) sum[b] = count[b]! > 0 ? sum[b]! / count[b]! : 0;
  return sum;
}

/** The virtual weight [N, K] = ξ ⊙ w[h] from buckets [B], int32 index [N·K] and sign [N·K] (differentiable in the buckets). */
export function hashedWeight(buckets: Tensor, index: Tensor, sign: Tensor, N: number, K: number): Tensor {
  return buckets.indexSelect(0, index).mul(sign).reshape([N, K]);
}

/** y = x·Vᵀ + b with V_ij = ξ(i, j)·buckets[h(i, j)] (see the file comment). */
export class HashedLinear extends Module {
  /** The real weights, float32 [B]; trainable. */
  buckets: Tensor;
  bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly seed: number;
  private _maps: { index: Tensor; sign: Tensor } | null = null;
  private _dense: { w: Tensor; key: Float32Array } | null = null;
  constructor(outFeatures: number, inFeatures: number, buckets: number, seed: number, opts: { bias?: boolean } = {}) {
    super();
    if (!(Number.isInteger(buckets) && buckets >= 1)) throw new Error(`HashedLinear: buckets must be an integer >= 1, got ${buckets}`);
    if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) throw new Error(`HashedLinear: seed must be an integer in [0, 2^32), got ${seed}`);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.seed = seed;
    this.buckets = Tensor.zeros([buckets], { requiresGrad: true });
    this.bias = opts.bias === false ? null : Tensor.zeros([outFeatures], { requiresGrad: true });
  }
  /** A layer fitted to W [N, K] (row-major, any float array) by least squares, with an optional bias (copied). */
  static fit(W: ArrayLike<number>, shape: [number, number], buckets: number, seed: number, bias: Tensor | null = null): HashedLinear {
    const [N, K] = shape;
    if (W.length !== N * K) throw new Error(`HashedLinear.fit: ${W.length} values for a [${N}, ${K}] weight`);
    const m = new HashedLinear(N, K, buckets, seed, { bias: bias !== null });
    const { index, sign } = m.maps();
    (m.buckets.data as Float32Array).set(Float32Array.from(fitBuckets(W, index.data as Int32Array, sign.data as Float32Array, buckets)));
    if (bias) noGrad(() => m.bias!.copy_(bias));
    return m;
  }
  get numBuckets(): number {
    return this.buckets.numel;
  }
  /** Virtual weights per real one: N·K / B. */
  get compression(): number {
    return (this.outFeatures * this.inFeatures) / this.numBuckets;
  }
  /** The index and sign maps as tensors (computed once from the seed, cached; never saved). */
  maps(): { index: Tensor; sign: Tensor } {
    if (!this._maps) {
      const { index, sign } = hashIndexSigns(this.outFeatures, this.inFeatures, this.numBuckets, this.seed);
      this._maps = { index: new Tensor(index, [index.length], 'int32'), sign: new Tensor(sign, [sign.length], 'float32') };
    }
    return this._maps;
  }
  /** The virtual weight as float32 [out, in] (a new tensor; no gradient). */
  weightOutIn(): Tensor {
    const { index, sign } = this.maps();
    return noGrad(() => hashedWeight(this.buckets.detach(), index, sign, this.outFeatures, this.inFeatures));
  }
  override loadStateDict(...a: Parameters<Module['loadStateDict']>): ReturnType<Module['loadStateDict']> {
    const r = super.loadStateDict(...a);
    this._dense = null;
    return r;
  }
  forward(x: Tensor): Tensor {
    if (this.training || (isGradEnabled() && this.buckets.requiresGrad)) {
      this._dense = null;
      const { index, sign } = this.maps();
      return linear(x, hashedWeight(this.buckets, index, sign, this.outFeatures, this.inFeatures), this.bias);
    }
    const w = this.buckets.data as Float32Array;
    const d = this._dense;
    if (!d || d.key.length !== w.length || d.key.some((v, i) => v !== w[i])) this._dense = { w: this.weightOutIn(), key: w.slice() };
    return linear(x, this._dense!.w, this.bias);
  }
}

registerModuleType<HashedLinear>({
  type: 'hashed_linear',
  cls: HashedLinear,
  // the seed is written as a decimal string: the loader bounds every integer field of an entry by the checkpoint's
  // element count (a sanity check on sizes), which a 32-bit seed is not
  describe: (m) => ({ in_features: m.inFeatures, out_features: m.outFeatures, buckets: m.numBuckets, seed: String(m.seed), hash: HASH_NAME, bias: m.bias !== null }),
  build: (e, where) => {
    const n = (k: string, min = 1) => {
      const v = e[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error(`${where}.${k}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
      return v;
    };
    if (e.hash !== HASH_NAME) throw new Error(`${where}.hash: expected '${HASH_NAME}', got ${JSON.stringify(e.hash)}`);
    const seed = typeof e.seed === 'string' && /^\d{1,10}$/.test(e.seed) ? Number(e.seed) : NaN;
    if (!(seed < 2 ** 32)) throw new Error(`${where}.seed: expected a decimal string of an integer in [0, 2^32), got ${JSON.stringify(e.seed)}`);
    return new HashedLinear(n('out_features'), n('in_features'), n('buckets'), seed, { bias: e.bias !== false });
  },
});

// ---------------------------------------------------------------- the method

export interface HashConfig {
  /** Buckets per layer as a fraction of its weights: B = round(ratio·N·K) (default 1/8 when `buckets` is not given). */
  ratio: number | null;
  /** A fixed bucket count for every layer (instead of `ratio`). */
  buckets: number | null;
  /** Seed of the hash functions (an integer in [0, 2^32)). */
  seed: number;
  /** Whether the buckets train in a later `finetune` stage. */
  train_buckets: boolean;
  targets: string[] | null;
  ignore: string[] | null;
}

const defaults: HashConfig = { ratio: null, buckets: null, seed: 0, train_buckets: true, targets: null, ignore: null };

export interface HashLayerReport {
  name: string;
  out_features: number;
  in_features: number;
  buckets: number;
  /** Virtual weights per bucket, N·K / B. */
  compression: number;
  bytes_before: number;
  bytes_after: number;
  /** ‖W − V‖_F / ‖W‖_F at the least-squares buckets. */
  weight_error: number;
}

/** Buckets of an [N, K] layer under a config (options checked by {@link hashOptions}). */
export function bucketCount(cfg: Pick<HashConfig, 'ratio' | 'buckets'>, N: number, K: number): number {
  if (cfg.buckets !== null) return cfg.buckets;
  return Math.max(1, Math.round((cfg.ratio ?? 1 / 8) * N * K));
}

/** Check the options; throws naming the option. */
export function hashOptions(cfg: HashConfig): void {
  if (cfg.ratio !== null && cfg.buckets !== null) throw new Error(`options 'ratio' and 'buckets' both set the bucket count: give one`);
  if (cfg.ratio !== null && !(typeof cfg.ratio === 'number' && cfg.ratio > 0 && cfg.ratio <= 1)) throw new Error(`option 'ratio' must be in (0, 1] (buckets per weight), got ${cfg.ratio}`);
  if (cfg.buckets !== null && !(Number.isInteger(cfg.buckets) && cfg.buckets >= 1)) throw new Error(`option 'buckets' must be an integer >= 1, got ${cfg.buckets}`);
  if (!(Number.isInteger(cfg.seed) && cfg.seed >= 0 && cfg.seed < 2 ** 32)) throw new Error(`option 'seed' must be an integer in [0, 2^32), got ${cfg.seed}`);
}

function plan(model: Module, cfg: HashConfig): [string, LinearLike][] {
  hashOptions(cfg);
  const layers = targetLinears(model, cfg.targets, cfg.ignore);
  if (layers.length === 0) throw new Error(`option 'targets': no Linear layer is selected`);
  for (const [name, m] of layers) {
    const nk = m.outFeatures * m.inFeatures;
    if (cfg.buckets !== null && cfg.buckets > nk) throw new Error(`option 'buckets' ${cfg.buckets}: layer '${name}' has only ${nk} weights`);
  }
  return layers;
}

/** Hash the chosen layers of `model` in place (what the method's apply does). */
export function hashModel(model: Module, cfg: Partial<HashConfig>, log?: (l: string) => void): HashLayerReport[] {
  const c: HashConfig = { ...defaults, ...cfg };
  const layers = plan(model, c);
  const out: HashLayerReport[] = [];
  for (const [name, m] of layers) {
    const N = m.outFeatures;
    const K = m.inFeatures;
    const W = weight64(m);
    const B = bucketCount(c, N, K);
    const h = HashedLinear.fit(W, [N, K], B, c.seed, m.bias ? noGrad(() => m.bias!.detach()) : null);
    h.buckets.requiresGrad_(c.train_buckets);
    h.training = m.training;
    const V = h.weightOutIn().toFloat32Array();
    let num = 0;
    let den = 0;
    for (let p = 0; p < W.length; p++) {
      num += (W[p]! - V[p]!) ** 2;
      den += W[p]! ** 2;
    }
    model.setSubmodule(name, h);
    const biasBytes = m.bias ? N * 4 : 0;
    const rep: HashLayerReport = { name, out_features: N, in_features: K, buckets: B, compression: (N * K) / B, bytes_before: N * K * 4 + biasBytes, bytes_after: B * 4 + biasBytes, weight_error: Math.sqrt(num / Math.max(den, 1e-300)) };
    out.push(rep);
    log?.(`share.hash ${name} [${N}×${K}]: ${B} buckets (${rep.compression.toFixed(2)}× fewer weights), ${rep.bytes_before} → ${rep.bytes_after} bytes, weight error ${rep.weight_error.toExponential(3)}`);
  }
  return out;
}

export function hashSummary(layers: HashLayerReport[], cfg: HashConfig): Record<string, number | string> {
  const before = layers.reduce((a, l) => a + l.bytes_before, 0);
  const after = layers.reduce((a, l) => a + l.bytes_after, 0);
  const virtual = layers.reduce((a, l) => a + l.out_features * l.in_features, 0);
  const buckets = layers.reduce((a, l) => a + l.buckets, 0);
  return {
    layers: layers.length,
    seed: cfg.seed,
    buckets: layers.map((l) => String(l.buckets)).join('/'),
    virtual_weights: virtual,
    real_weights: buckets,
    compression: buckets ? virtual / buckets : 1,
    ...sharingSummary(before, after, layers.map((l) => l.weight_error)),
  };
}

export const shareHash: Method<HashConfig> = {
  name: 'share.hash',
  kind: 'one-shot',
  description: 'HashedNets: each Linear weight becomes a hashed view of B trainable buckets (sign hash, least-squares fit); buckets train in a later finetune step',
  defaults,
  types: { ratio: 'number', buckets: 'integer', seed: 'integer', targets: 'string[]', ignore: 'string[]' },
  globs: ['targets', 'ignore'],
  check: (model, cfg) => void named('share.hash', () => plan(model, cfg)),
  apply: (model, cfg, ctx) => {
    const layers = named('share.hash', () => hashModel(model, cfg, ctx.log));
    return { report: () => hashSummary(layers, cfg) };
  },
};

registerMethod(shareHash);
