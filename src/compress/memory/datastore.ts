/**
 * kNN-LM datastores on disk and evaluation with memory (kNN-LM, TRIME-style joint normalisation, continuous cache).
 *
 * A datastore folder holds
 * - `keys.f16`: count × dim float16 keys (little-endian), the model's last-FFN-input representation (after the
 *   block's norm) at each position of the corpus;
 * - `vals.i32`: count int32 values, the token that followed each key;
 * - `datastore.json`: format, version, dim, count, dtypes, the key module, the model's fingerprint (SHA-256 of its
 *   config.json and weight files), the corpus, block size and token count.
 * Keys are written window by window as the corpus is read (a streaming pass: memory holds one window).
 *
 * Search: exact (brute force in TypeScript) up to `hnswFrom` keys — small stores, where exact is fast and has recall
 * 1 — and an HNSW index from `usearch` (npm, prebuilt N-API binaries) above it. Both rank by L2 distance (as the
 * upstream faiss IndexFlatL2 / IVFPQ-L2), and the neighbours are then scored from the stored keys with the chosen
 * similarity (`l2` or `ip`), as upstream's dist_func does.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { Module } from '../../nn/module.ts';
import type { ModelInputs, ModelOutput } from '../../models/outputs.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../tensor/dtype.ts';
import { fromPretrained } from '../../models/registry.ts';
import { findWeights } from '../../io/hf.ts';
import { loadTokenizer } from '../../tokenizers/index.ts';
import { causalLabels, chunkTokens, type TokenBlock } from '../../data/text.ts';
import { captureActivations } from '../../nn/hooks.ts';
import { checkOutDir, writeDirAtomic } from '../../io/outdir.ts';
import { lastFfnInput } from './method.ts';
import { ContinuousCache, interpolate, knnLogProbFromScores, logSumExp, neighbourScores, type KnnMetric } from './knn.ts';

export const DATASTORE_FORMAT = 'shrink-knn-datastore';
export const DATASTORE_VERSION = 1;

export interface DatastoreMeta {
  format: string;
  version: number;
  dim: number;
  count: number;
  keyDtype: 'float16';
  valDtype: 'int32';
  /** The module whose output the keys are (the last block's FFN norm). */
  keyModule: string;
  keyType: 'last_ffn_input';
  modelFingerprint: string;
  model: string;
  corpus: string;
  blockSize: number;
  stride: number | null;
  keysBytes: number;
  valsBytes: number;
}

type LM = Module & { forward(i: ModelInputs): ModelOutput; config: Record<string, unknown> };

/** SHA-256 over a model folder's config.json and weight files (names and bytes). */
export function modelFingerprint(dir: string): string {
  const h = crypto.createHash('sha256');
  const files = ['config.json', ...findWeights(dir).map((f) => path.basename(f))];
  for (const f of files) {
    h.update(f + '\0');
    h.update(fs.readFileSync(path.join(dir, f)));
  }
  return h.digest('hex').slice(0, 32);
}

function loadLM(dir: string): LM {
  const model = fromPretrained(dir) as LM;
  if (!['gpt2', 'llama'].includes(String(model.config.model_type))) throw new Error(`${dir}: memory needs a causal LM (gpt2 or llama), got model_type '${String(model.config.model_type)}'`);
  return model.eval();
}

/** Token ids of a text file, encoded line by line (as evalPerplexity does). */
export function encodeText(dir: string, file: string, maxTokens?: number): number[] {
  const tok = loadTokenizer(dir);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let ids: number[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    ids.push(...tok.encode(line, { addSpecialTokens: false }));
    if (maxTokens && ids.length >= maxTokens) break;
  }
  if (maxTokens) ids = ids.slice(0, maxTokens);
  if (ids.length < 2) throw new Error(`${file}: fewer than 2 tokens`);
  return ids;
}

function windowsOf(ids: number[], block: number, stride?: number): TokenBlock[] {
  return chunkTokens(ids, block, { stride: stride ?? block });
}

/** One window through the model: per position the key [T, d] and the log-softmax logits [T, V]. */
function runWindow(model: LM, keyName: string, ids: number[]): { keys: Float32Array; logits: Float32Array; d: number; V: number } {
  let logits: Tensor | undefined;
  const x = Tensor.from(Int32Array.from(ids), { shape: [1, ids.length] });
  const cap = noGrad(() => captureActivations(model, [keyName], 'output', () => void (logits = model.forward({ inputIds: x }).logits)));
  const k = cap.get(keyName)![0]!;
  const d = k.shape[k.shape.length - 1]!;
  const V = logits!.shape[2]!;
  return { keys: k.contiguous().toFloat32Array(), logits: noGrad(() => logits!.logSoftmax(2)).toFloat32Array(), d, V };
}

export interface BuildOptions {
  blockSize?: number;
  stride?: number;
  maxTokens?: number;
  force?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** The model, its key module, the window length and the token windows over a text (what building and evaluating share). */
function prepareWindows(modelDir: string, textFile: string, o: { blockSize?: number; stride?: number; maxTokens?: number }) {
  const model = loadLM(modelDir);
  const keyName = lastFfnInput(model);
  const maxPos = Number(model.config.max_position_embeddings ?? model.config.n_positions ?? 512);
  const block = Math.min(o.blockSize ?? 256, maxPos);
  const windows = windowsOf(encodeText(modelDir, textFile, o.maxTokens), block, o.stride);
  return { model, keyName, block, windows };
}

/**
 * Build a datastore over `corpus` with the model in `modelDir` into `outDir` (see the file comment). The folder is
 * checked before any work and written whole or not at all (src/io/outdir.ts writeDirAtomic).
 */
export function buildDatastore(modelDir: string, corpus: string, outDir: string, o: BuildOptions = {}): DatastoreMeta & { ms: number; tokensPerS: number } {
  checkOutDir(outDir, { force: o.force });
  const { model, keyName, block, windows } = prepareWindows(modelDir, corpus, o);
  return writeDirAtomic(
    outDir,
    (tmp) => {
      const kf = fs.openSync(path.join(tmp, 'keys.f16'), 'w');
      const vf = fs.openSync(path.join(tmp, 'vals.i32'), 'w');
      let count = 0;
      let dim = 0;
      const t0 = performance.now();
      try {
        for (const [wi, w] of windows.entries()) {
          const labels = causalLabels(w);
          const r = runWindow(model, keyName, w.ids);
          dim = r.d;
          const kb = new Uint16Array(w.ids.length * dim);
          const vb = new Int32Array(w.ids.length);
          let n = 0;
          for (let i = 1; i < labels.length; i++) {
            if (labels[i] === -100) continue;
            for (let c = 0; c < dim; c++) kb[n * dim + c] = f32ToF16Bits(r.keys[(i - 1) * dim + c]!);
            vb[n] = labels[i]!;
            n++;
          }
          fs.writeSync(kf, new Uint8Array(kb.buffer, 0, n * dim * 2));
          fs.writeSync(vf, new Uint8Array(vb.buffer, 0, n * 4));
          count += n;
          o.onProgress?.(wi + 1, windows.length);
        }
      } finally {
        fs.closeSync(kf);
        fs.closeSync(vf);
      }
      const ms = performance.now() - t0;
      const meta: DatastoreMeta = {
        format: DATASTORE_FORMAT, version: DATASTORE_VERSION, dim, count, keyDtype: 'float16', valDtype: 'int32', keyModule: keyName, keyType: 'last_ffn_input',
        modelFingerprint: modelFingerprint(modelDir), model: modelDir, corpus, blockSize: block, stride: o.stride ?? null, keysBytes: count * dim * 2, valsBytes: count * 4,
      };
      fs.writeFileSync(path.join(tmp, 'datastore.json'), JSON.stringify(meta, null, 1) + '\n');
      return { ...meta, ms, tokensPerS: (count / ms) * 1000 };
    },
    { force: o.force },
  );
}

/** A loaded datastore: keys widened to float32, values, and a neighbour search. */
export class Datastore {
  readonly keys: Float32Array;
  readonly vals: Int32Array;
  private norms: Float64Array;
  private hnsw: { search(q: Float32Array, k: number, threads: number): { keys: BigUint64Array } } | null = null;
  constructor(
    readonly meta: DatastoreMeta,
    keys: Float32Array,
    vals: Int32Array,
    readonly dir = '',
  ) {
    this.keys = keys;
    this.vals = vals;
    this.norms = new Float64Array(meta.count);
    for (let e = 0; e < meta.count; e++) {
      let s = 0;
      for (let c = 0; c < meta.dim; c++) s += keys[e * meta.dim + c]! ** 2;
      this.norms[e] = s;
    }
  }

  /** How search runs: exact, or HNSW with its parameters. */
  searchKind = 'exact L2 (brute force, TypeScript)';

  get bytes(): number {
    return this.meta.keysBytes + this.meta.valsBytes;
  }

  /**
   * Build an HNSW index (usearch, L2², f32, connectivity M, expansion ef) for approximate search; without it search
   * is exact.
   */
  useHnsw(o: { connectivity?: number; expansionAdd?: number; expansionSearch?: number } = {}): void {
    const require = createRequire(import.meta.url);
    const usearch = require('usearch') as { Index: new (o: object) => { add(keys: BigUint64Array, v: Float32Array): void; search(q: Float32Array, k: number, threads: number): { keys: BigUint64Array } } };
    const idx = new usearch.Index({ dimensions: this.meta.dim, metric: 'l2sq', quantization: 'f32', connectivity: o.connectivity ?? 16, expansion_add: o.expansionAdd ?? 128, expansion_search: o.expansionSearch ?? 64 });
    idx.add(BigUint64Array.from({ length: this.meta.count }, (_, i) => BigInt(i)), this.keys);
    this.hnsw = idx;
    this.searchKind = `HNSW (usearch, L2², f32, M ${o.connectivity ?? 16}, ef_construction ${o.expansionAdd ?? 128}, ef_search ${o.expansionSearch ?? 64})`;
  }

  /** The k nearest keys in L2 (exact unless useHnsw was called), nearest first. */
  search(q: ArrayLike<number>, k: number): Int32Array {
    const n = this.meta.count;
    const d = this.meta.dim;
    const kk = Math.min(k, n);
    // one query on one thread (usearch would otherwise pick a thread count itself)
    if (this.hnsw) return Int32Array.from(this.hnsw.search(Float32Array.from(q), kk, 1).keys, Number);
    // ‖q − x‖² = ‖q‖² − 2⟨q, x⟩ + ‖x‖²; ‖q‖² is the same for every key
    const dist = new Float64Array(n);
    for (let e = 0; e < n; e++) {
      let dot = 0;
      const o = e * d;
      for (let c = 0; c < d; c++) dot += q[c]! * this.keys[o + c]!;
      dist[e] = this.norms[e]! - 2 * dot;
    }
    const idx = new Int32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    if (kk < n / 8) {
      // keep a sorted buffer of the kk best
      const best = new Int32Array(kk);
      let m = 0;
      for (let e = 0; e < n; e++) {
        if (m === kk && dist[e]! >= dist[best[kk - 1]!]!) continue;
        let p = m < kk ? m++ : kk - 1;
        while (p > 0 && dist[best[p - 1]!]! > dist[e]!) {
          best[p] = best[p - 1]!;
          p--;
        }
        best[p] = e;
      }
      return best;
    }
    return idx.sort((a, b) => dist[a]! - dist[b]! || a - b).subarray(0, kk);
  }

  /** log p_kNN(target | q) with upstream's scoring (see knn.ts). */
  logProb(q: ArrayLike<number>, target: number, o: { k: number; metric: KnnMetric; temperature: number }): number {
    const ids = this.search(q, o.k);
    const d = this.meta.dim;
    const scores = neighbourScores(q, ids, (id, buf) => buf.set(this.keys.subarray(id * d, id * d + d)), o.metric);
    return knnLogProbFromScores(scores, Array.from(ids, (id) => this.vals[id]!), target, o.temperature);
  }
}

function fail(dir: string, what: string): never {
  throw new Error(`datastore ${dir}: ${what}`);
}

/**
 * Load and validate a datastore folder: format, version, dtypes, dimension and count against the file sizes, and,
 * when given, the model's fingerprint and key dimension.
 */
export function loadDatastore(dir: string, expect: { modelDir?: string; dim?: number; keyModule?: string } = {}): Datastore {
  const metaFile = path.join(dir, 'datastore.json');
  if (!fs.existsSync(metaFile)) fail(dir, `no datastore.json (build one with 'shrink datastore build <model> --corpus <file> -o ${dir}')`);
  let meta: DatastoreMeta;
  try {
    meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as DatastoreMeta;
  } catch (e) {
    fail(dir, `datastore.json is not valid JSON (${(e as Error).message})`);
  }
  if (meta.format !== DATASTORE_FORMAT) fail(dir, `datastore.json format is '${String(meta.format)}', expected '${DATASTORE_FORMAT}'`);
  if (meta.version !== DATASTORE_VERSION) fail(dir, `datastore.json version ${String(meta.version)} is not supported (expected ${DATASTORE_VERSION})`);
  if (meta.keyDtype !== 'float16') fail(dir, `key dtype '${String(meta.keyDtype)}' is not supported (expected float16)`);
  if (meta.valDtype !== 'int32') fail(dir, `value dtype '${String(meta.valDtype)}' is not supported (expected int32)`);
  if (!(Number.isInteger(meta.dim) && meta.dim > 0)) fail(dir, `dimension ${String(meta.dim)} is not a positive integer`);
  if (!(Number.isInteger(meta.count) && meta.count > 0)) fail(dir, `count ${String(meta.count)} is not a positive integer`);
  const kPath = path.join(dir, 'keys.f16');
  const vPath = path.join(dir, 'vals.i32');
  for (const p of [kPath, vPath]) if (!fs.existsSync(p)) fail(dir, `${path.basename(p)} is missing`);
  const kSize = fs.statSync(kPath).size;
  const vSize = fs.statSync(vPath).size;
  if (kSize !== meta.count * meta.dim * 2) fail(dir, `keys.f16 has ${kSize} bytes, but ${meta.count} keys of dimension ${meta.dim} in float16 take ${meta.count * meta.dim * 2}`);
  if (vSize !== meta.count * 4) fail(dir, `vals.i32 has ${vSize} bytes, but ${meta.count} int32 values take ${meta.count * 4}`);
  if (expect.dim !== undefined && expect.dim !== meta.dim) fail(dir, `keys have dimension ${meta.dim}, but the model's ${meta.keyModule} is ${expect.dim} wide`);
  if (expect.keyModule !== undefined && expect.keyModule !== meta.keyModule) fail(dir, `keys were taken at ${meta.keyModule}, but this model's key module is ${expect.keyModule}`);
  if (expect.modelDir !== undefined) {
    const fp = modelFingerprint(expect.modelDir);
    if (fp !== meta.modelFingerprint) fail(dir, `built with another model (fingerprint ${meta.modelFingerprint} from ${meta.model}; ${expect.modelDir} is ${fp}): rebuild it with this model`);
  }
  const kb = fs.readFileSync(kPath);
  const bits = new Uint16Array(kb.buffer, kb.byteOffset, kb.byteLength / 2);
  const keys = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) keys[i] = f16BitsToF32(bits[i]!);
  const vb = fs.readFileSync(vPath);
  const vals = new Int32Array(vb.buffer.slice(vb.byteOffset, vb.byteOffset + vb.byteLength));
  return new Datastore(meta, keys, vals, dir);
}

export interface MemoryEvalOptions {
  blockSize?: number;
  stride?: number;
  maxTokens?: number;
  datastore?: Datastore;
  lambda?: number;
  knnTemp?: number;
  k?: number;
  metric?: KnnMetric;
  /** Continuous cache: size (entries kept across evaluation blocks), θ (flatness), λ. */
  cache?: { size: number; theta: number; lambda: number };
  onProgress?: (done: number, total: number) => void;
}

export interface MemoryEvalReport {
  tokens: number;
  perplexity: number;
  knnPerplexity?: number;
  cachePerplexity?: number;
  datastoreBytes?: number;
  datastoreKeys?: number;
  ms: number;
  tokensPerS: number;
  search: string;
}

/**
 * Perplexity of a causal LM on a text with and without memory: the plain model, kNN-LM with a datastore
 * (p = λ·p_kNN + (1 − λ)·p_LM), and the continuous cache over the text already read (carried across windows).
 * Windows as `shrink eval -t ppl` (disjoint blocks, or sliding with `stride`).
 */
export function evalWithMemory(modelDir: string, textFile: string, o: MemoryEvalOptions = {}): MemoryEvalReport {
  const { model, keyName, block, windows } = prepareWindows(modelDir, textFile, o);
  const lambda = o.lambda ?? 0.25;
  const knn = o.datastore ? { k: o.k ?? 64, metric: o.metric ?? 'l2', temperature: o.knnTemp ?? 1 } : null;
  let cache: ContinuousCache | null = null;
  let nll = 0;
  let nllKnn = 0;
  let nllCache = 0;
  let n = 0;
  const t0 = performance.now();
  for (const [wi, w] of windows.entries()) {
    const labels = causalLabels(w);
    const r = runWindow(model, keyName, w.ids);
    if (o.cache && !cache) cache = new ContinuousCache(r.d, o.cache.size, o.cache.theta);
    for (let i = 1; i < labels.length; i++) {
      if (labels[i] === -100) continue;
      const y = labels[i]!;
      const lm = r.logits[(i - 1) * r.V + y]!;
      const h = r.keys.subarray((i - 1) * r.d, i * r.d);
      nll -= lm;
      if (knn) nllKnn -= interpolate([o.datastore!.logProb(h, y, knn)], [lm], lambda)[0]!;
      if (cache) {
        nllCache -= interpolate([cache.logProb(h, y)], [lm], o.cache!.lambda)[0]!;
        cache.add(h, y);
      }
      n++;
    }
    o.onProgress?.(wi + 1, windows.length);
  }
  const ms = performance.now() - t0;
  const ppl = (x: number) => Math.exp(x / n);
  return {
    tokens: n,
    perplexity: ppl(nll),
    ...(knn ? { knnPerplexity: ppl(nllKnn), datastoreBytes: o.datastore!.bytes, datastoreKeys: o.datastore!.meta.count } : {}),
    ...(cache ? { cachePerplexity: ppl(nllCache) } : {}),
    ms,
    tokensPerS: (n / ms) * 1000,
    search: knn ? o.datastore!.searchKind : 'none',
  };
}

export { logSumExp };
