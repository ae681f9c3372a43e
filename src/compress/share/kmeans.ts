/**
 * One-dimensional k-means of weight values (Deep Compression, Han et al. 2016, §3 "Trained quantization and weight
 * sharing"), and the 4-/8-bit code packing of ClusteredLinear.
 *
 * Initialisation: `linear` (k values evenly spaced over [min, max] — Deep Compression found it best, since it keeps
 * the few large weights that matter most), `random` (Forgy: k distinct weights drawn with the seed), `kmeans++`
 * (Arthur & Vassilvitskii: the first at random, each next one drawn with probability ∝ squared distance to the
 * nearest chosen one). Lloyd iterations follow until no assignment changes or `iters` is reached; an empty cluster
 * keeps its centroid. Centroids are kept sorted ascending, so the nearest one is found by binary search over the
 * midpoints (a value exactly at a midpoint goes to the lower centroid). Sums in float64.
 */
import { Generator } from '../../tensor/random.ts';

export type KmeansInit = 'linear' | 'random' | 'kmeans++';
export const KMEANS_INITS: readonly KmeansInit[] = ['linear', 'random', 'kmeans++'];

export interface KmeansResult {
  /** k centroids, ascending. */
  centroids: Float64Array;
  /** Cluster of each value. */
  assign: Uint8Array | Uint16Array;
  /** Lloyd iterations run. */
  iterations: number;
  /** Whether the last iteration changed no assignment. */
  converged: boolean;
}

/** Initial centroids (ascending) for values by the given rule. */
export function initCentroids(values: ArrayLike<number>, k: number, init: KmeansInit, seed = 0): Float64Array {
  const n = values.length;
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`k-means: k must be an integer >= 1, got ${k}`);
  if (n < k) throw new Error(`k-means: ${n} values cannot make ${k} clusters`);
  const c = new Float64Array(k);
  if (init === 'linear') {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    for (let j = 0; j < k; j++) c[j] = k === 1 ? (lo + hi) / 2 : lo + ((hi - lo) * j) / (k - 1);
    return c;
  }
  const g = new Generator(seed);
  const pick = () => Math.min(n - 1, Math.floor(g.random() * n));
  if (init === 'random') {
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(pick());
    [...chosen].forEach((i, j) => (c[j] = values[i]!));
  } else if (init === 'kmeans++') {
    const d2 = new Float64Array(n).fill(Infinity);
    c[0] = values[pick()]!;
    for (let j = 1; j < k; j++) {
      let total = 0;
      const last = c[j - 1]!;
      for (let i = 0; i < n; i++) {
        const d = (values[i]! - last) ** 2;
        if (d < d2[i]!) d2[i] = d;
        total += d2[i]!;
      }
      if (total === 0) {
        c[j] = values[pick()]!;
        continue;
      }
      let u = g.random() * total;
      let idx = n - 1;
      for (let i = 0; i < n; i++) {
        u -= d2[i]!;
        if (u < 0) {
          idx = i;
          break;
        }
      }
      c[j] = values[idx]!;
    }
  } else throw new Error(`k-means: unknown init '${init as string}' (known: ${KMEANS_INITS.join(', ')})`);
  return c.sort();
}

/** Index of the nearest of ascending centroids for each value (ties to the lower one), into out. */
export function assignNearest(values: ArrayLike<number>, centroids: Float64Array, out: Uint8Array | Uint16Array): number {
  const k = centroids.length;
  const mid = new Float64Array(Math.max(k - 1, 0));
  for (let j = 0; j < k - 1; j++) mid[j] = (centroids[j]! + centroids[j + 1]!) / 2;
  let changed = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // first j with v <= mid[j]; k − 1 when none
    let lo = 0;
    let hi = k - 1;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (v <= mid[m]!) hi = m;
      else lo = m + 1;
    }
    if (out[i] !== lo) {
      out[i] = lo;
      changed++;
    }
  }
  return changed;
}

/** k-means of the values (see the file comment). */
export function kmeans1d(values: ArrayLike<number>, k: number, opts: { init?: KmeansInit; iters?: number; seed?: number } = {}): KmeansResult {
  const n = values.length;
  const iters = opts.iters ?? 100;
  const c = initCentroids(values, k, opts.init ?? 'linear', opts.seed ?? 0);
  const assign = k <= 256 ? new Uint8Array(n) : new Uint16Array(n);
  assignNearest(values, c, assign);
  const sums = new Float64Array(k);
  const counts = new Float64Array(k);
  let it = 0;
  let converged = false;
  /** Each centroid to the mean of its members (an empty cluster keeps its value). */
  const recenter = () => {
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      sums[assign[i]!] += values[i]!;
      counts[assign[i]!]++;
    }
    for (let j = 0; j < k; j++) if (counts[j]! > 0) c[j] = sums[j]! / counts[j]!;
  };
  while (it < iters) {
    it++;
    recenter();
    c.sort();
    if (assignNearest(values, c, assign) === 0) {
      converged = true;
      break;
    }
  }
  // the centroids are the means of their final members (unchanged when converged)
  if (!converged) recenter();
  return { centroids: c, assign, iterations: it, converged };
}

/** Codes (each < 2^bits) packed: 8-bit as is, 4-bit two per byte, low nibble = even index (as int4 weights). */
export function packCodes(codes: ArrayLike<number>, bits: 4 | 8): Uint8Array {
  if (bits === 8) return Uint8Array.from(codes);
  if (bits !== 4) throw new Error(`packCodes: bits must be 4 or 8, got ${bits as number}`);
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) {
    const q = codes[i]!;
    if (q > 15 || q < 0) throw new Error(`packCodes: code ${q} does not fit 4 bits`);
    out[i >> 1] |= q << ((i & 1) * 4);
  }
  return out;
}

/** The first n codes of a packed array, as int32 (ready to index with). */
export function unpackCodes(packed: Uint8Array, n: number, bits: 4 | 8): Int32Array {
  const out = new Int32Array(n);
  if (bits === 8) for (let i = 0; i < n; i++) out[i] = packed[i]!;
  else for (let i = 0; i < n; i++) out[i] = (packed[i >> 1]! >> ((i & 1) * 4)) & 15;
  return out;
}
