/**
 * kNN-LM (Khandelwal et al. 2020) and the evaluation-time memory modes of TRIME, on plain arrays (no autograd:
 * evaluation only), in float64.
 *
 * - `knnLogProb`: upstream KNN_Dstore.get_knn_log_prob — the k nearest keys (L2, as the faiss index returns them),
 *   scored by `l2` (−‖q − key‖², recomputed from the stored keys) or `ip` (⟨q, key⟩), log-softmax(score / T) over the
 *   k, and the log of the summed probability of the neighbours whose value is the target (non-matching neighbours get
 *   −10000 added; a padded target gives −10000).
 * - `interpolate`: combine_knn_and_vocab_probs, log(λ·p_kNN + (1 − λ)·p_LM) = logsumexp(lm + log(1−λ), knn + log λ).
 * - `memoryLogProb`: SequenceScorer.trime_generate's combination of the vocabulary with retrieved memory logits:
 *   `gn` (joint normalisation, as TRIME is trained) or `li` (linear interpolation with the cache weight).
 * - `ContinuousCache`: Grave et al. (2017) — previous hidden states of the evaluated text as memory, scored by
 *   θ·⟨h_t, h_i⟩, the probability of the targets that followed them interpolated with the LM.
 */
export type KnnMetric = 'l2' | 'ip';
export const KNN_METRICS = ['l2', 'ip'] as const;

/** log Σ exp(a_i), stable; −Infinity for an empty list. */
export function logSumExp(a: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.exp(a[i]! - m);
  return m + Math.log(s);
}

/** log(λ·exp(knn) + (1 − λ)·exp(lm)), elementwise (upstream combine_knn_and_vocab_probs). */
export function interpolate(knn: ArrayLike<number>, lm: ArrayLike<number>, lambda: number): Float64Array {
  if (knn.length !== lm.length) throw new Error(`interpolate: ${knn.length} kNN log-probs but ${lm.length} LM log-probs`);
  if (!(lambda >= 0 && lambda <= 1)) throw new Error(`interpolate: lambda must be in [0, 1], got ${lambda}`);
  const a = Math.log(1 - lambda);
  const b = Math.log(lambda);
  const out = new Float64Array(knn.length);
  for (let i = 0; i < knn.length; i++) out[i] = logSumExp([lm[i]! + a, knn[i]! + b]);
  return out;
}

/** What a neighbour search returns for one query: entry ids and their scores (higher = nearer). */
export interface Neighbours {
  ids: Int32Array;
  scores: Float64Array;
}

/**
 * Score the k neighbours of one query from the stored keys: `l2` → −‖q − key‖², `ip` → ⟨q, key⟩ (upstream dist_func
 * with the keys read back, fp16 keys widened).
 */
export function neighbourScores(q: ArrayLike<number>, ids: ArrayLike<number>, key: (id: number, out: Float32Array) => void, metric: KnnMetric): Float64Array {
  const d = q.length;
  const buf = new Float32Array(d);
  const out = new Float64Array(ids.length);
  for (let n = 0; n < ids.length; n++) {
    key(ids[n]!, buf);
    let s = 0;
    if (metric === 'l2')
      for (let c = 0; c < d; c++) {
        const x = q[c]! - buf[c]!;
        s -= x * x;
      }
    else for (let c = 0; c < d; c++) s += q[c]! * buf[c]!;
    out[n] = s;
  }
  return out;
}

/** log p_kNN(target) from the neighbours' scores and values (upstream's −10000 convention for misses). */
export function knnLogProbFromScores(scores: ArrayLike<number>, values: ArrayLike<number>, target: number, temperature: number): number {
  const k = scores.length;
  const z = new Float64Array(k);
  for (let n = 0; n < k; n++) z[n] = scores[n]! / temperature;
  const lz = logSumExp(z);
  const terms = new Float64Array(k);
  for (let n = 0; n < k; n++) terms[n] = z[n]! - lz + (values[n] === target ? 0 : -10000);
  return logSumExp(terms);
}

/** Exact k nearest in squared L2 (ties by lower id) among `count` keys of dimension d. */
export function exactL2Knn(q: ArrayLike<number>, keys: Float32Array, count: number, k: number): Int32Array {
  const d = q.length;
  const kk = Math.min(k, count);
  const best = new Float64Array(kk).fill(Infinity);
  const ids = new Int32Array(kk).fill(-1);
  for (let e = 0; e < count; e++) {
    let s = 0;
    const o = e * d;
    for (let c = 0; c < d; c++) {
      const x = q[c]! - keys[o + c]!;
      s += x * x;
    }
    if (s < best[kk - 1]!) {
      let p = kk - 1;
      while (p > 0 && best[p - 1]! > s) {
        best[p] = best[p - 1]!;
        ids[p] = ids[p - 1]!;
        p--;
      }
      best[p] = s;
      ids[p] = e;
    }
  }
  return ids;
}

/**
 * Upstream get_knn_log_prob on arrays: queries [N, d] (flattened in any order), targets [N], keys [n, d], values
 * [n]; neighbours are the k nearest in L2 (exact search here, where upstream asks faiss). Returns [N].
 */
export function knnLogProb(queries: Float32Array, targets: ArrayLike<number>, keys: Float32Array, values: ArrayLike<number>, o: { k: number; metric: KnnMetric; temperature: number; padId?: number }): Float64Array {
  const N = targets.length;
  const d = queries.length / N;
  const count = values.length;
  if (keys.length !== count * d) throw new Error(`knnLogProb: ${keys.length} key floats are not ${count} keys of dimension ${d}`);
  const out = new Float64Array(N);
  const key = (id: number, buf: Float32Array) => buf.set(keys.subarray(id * d, id * d + d));
  for (let i = 0; i < N; i++) {
    if (o.padId !== undefined && targets[i] === o.padId) {
      out[i] = -10000;
      continue;
    }
    const q = queries.subarray(i * d, i * d + d);
    const ids = exactL2Knn(q, keys, count, o.k);
    const scores = neighbourScores(q, ids, key, o.metric);
    out[i] = knnLogProbFromScores(scores, Array.from(ids, (id) => values[id]!), targets[i]!, o.temperature);
  }
  return out;
}

export type MemoryMode = 'gn' | 'li';
export const MEMORY_MODES = ['gn', 'li'] as const;

/**
 * One token's log-probability with retrieved memory (TRIME evaluation, trime_generate): `lmLogits` the vocabulary
 * logits, `memLogits` the retrieved entries' logits (similarity/√d/T, masked ones at −10000 or left out),
 * `memLabels` their values. `gn`: joint normalisation over vocabulary and memory; `li`: λ·p_mem + (1 − λ)·p_LM.
 */
export function memoryLogProb(lmLogits: ArrayLike<number>, target: number, memLogits: ArrayLike<number>, memLabels: ArrayLike<number>, mode: MemoryMode, lambda = 0.25): number {
  const normT = logSumExp(lmLogits);
  const lmLp = lmLogits[target]! - normT;
  if (memLogits.length === 0) return lmLp;
  const normC = logSumExp(memLogits);
  const t = new Float64Array(memLogits.length);
  for (let j = 0; j < t.length; j++) t[j] = memLogits[j]! - normC + (memLabels[j] === target ? 0 : -10000);
  const ctx = logSumExp(t);
  if (mode === 'li') return interpolate([ctx], [lmLp], lambda)[0]!;
  const normTpc = logSumExp([normT, normC]);
  return logSumExp([lmLp + normT - normTpc, ctx + normC - normTpc]);
}

/**
 * Continuous cache (Grave, Joulin & Usunier 2017): the last `size` (hidden state, next token) pairs of the text being
 * evaluated. p_cache(w) ∝ Σ_{i: x_{i+1} = w} exp(θ·⟨h_t, h_i⟩); p = λ·p_cache + (1 − λ)·p_LM.
 */
export class ContinuousCache {
  private keys: Float32Array;
  private vals: Int32Array;
  private n = 0;
  private head = 0;
  constructor(
    readonly dim: number,
    readonly size: number,
    readonly theta: number,
  ) {
    this.keys = new Float32Array(dim * size);
    this.vals = new Int32Array(size);
  }
  get length(): number {
    return this.n;
  }
  /** log p_cache(target | h); −10000 when the cache holds no entry with that value (or is empty). */
  logProb(h: ArrayLike<number>, target: number): number {
    if (this.n === 0) return -10000;
    const s = new Float64Array(this.n);
    const m = new Float64Array(this.n);
    for (let e = 0; e < this.n; e++) {
      let dot = 0;
      const o = e * this.dim;
      for (let c = 0; c < this.dim; c++) dot += h[c]! * this.keys[o + c]!;
      s[e] = this.theta * dot;
      m[e] = s[e]! + (this.vals[e] === target ? 0 : -10000);
    }
    return logSumExp(m) - logSumExp(s);
  }
  add(h: ArrayLike<number>, next: number): void {
    this.keys.set(h as ArrayLike<number>, this.head * this.dim);
    this.vals[this.head] = next;
    this.head = (this.head + 1) % this.size;
    this.n = Math.min(this.n + 1, this.size);
  }
  clear(): void {
    this.n = 0;
    this.head = 0;
  }
}
