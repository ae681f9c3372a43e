/**
 * Unstructured magnitude pruning with torch.nn.utils.prune's semantics, and its gradual form:
 *
 * - `prune.magnitude` (one-shot): `scope: "layer"` is `prune.l1_unstructured(module, 'weight', amount=sparsity)` on
 *   every targeted layer; `scope: "global"` is `prune.global_unstructured(params, L1Unstructured, amount=sparsity)`
 *   over all of them (one threshold for the concatenation of their weights, in module order). The pruned weights are
 *   set to exactly 0 and the layers become {@link SparseLinear} (`storage: "sparse"`, the default) or stay dense
 *   Linear / Conv1D with zeros (`storage: "dense"`, e.g. to quantize afterwards).
 * - `prune.gradual` (trained): Zhu & Gupta (2017), "To prune, or not to prune": during the training stage the
 *   sparsity follows s_t = s_f + (s_i − s_f)(1 − (t − t0)/(n·Δt))³ for t0 ≤ t ≤ t0 + n·Δt, the masks are recomputed
 *   (with the same L1 rule, from the current weights) every Δt = `frequency` steps, and the mask is re-applied
 *   after every optimizer step so pruned weights stay exactly 0. The masks are the method's checkpointed state (a
 *   resume is bit-exact). `finalize` converts to SparseLinear.
 *
 * torch's rule, exactly: n = the number of weights, k = round(sparsity · n) (Python's round: half to even, on the
 * float64 product), and the k weights pruned are the indices `torch.topk(|w|.view(-1), k, largest=False)` returns.
 * On CPU torch builds pairs (|w|, index) in index order and runs, from aten's topk_impl_loop, std::partial_sort to k
 * when 64·k ≤ n, else std::nth_element at k − 1 — comparing values only. Among weights whose |w| equals the k-th
 * smallest, *which* are pruned is therefore decided by libstdc++'s introselect / heap-select order, not by index:
 * e.g. |w| = [1, 1, 1, 1] at sparsity 0.5 prunes indices 2 and 3 (nth_element's median-of-three pivot swap moves
 * index 2 to the front). {@link torchSmallestK} is a port of exactly those libstdc++ algorithms (GCC's
 * bits/stl_algo.h and stl_heap.h, which torch's Linux wheels use), so ties resolve as torch's do; a C++ cross-check
 * against std::nth_element / std::partial_sort is in test/compress/prune-magnitude.test.ts' notes. Conv1D weights
 * are flattened in their own [in, out] layout, as torch would see GPT-2's parameter.
 *
 * Streaming (`shrink compress --stream`, one block at a time): `scope: "layer"` is the same per block; `scope:
 * "global"` first finds torch's threshold — the k-th smallest |w| over every targeted weight of the checkpoint — by
 * a two-pass radix select over the file ({@link globalThreshold}), then prunes each block against it. The pruned
 * set is torch's except, among weights of exactly the threshold's magnitude, which ones: the first in module order
 * here, nth_element's choice there (the weights come out identical when those ties are zeros).
 */
import type { Method, MethodRun, RecipeContext } from '../method.ts';
import { registerMethod } from '../method.ts';
import type { Module } from '../../nn/module.ts';
import { Embedding, asLinearLike, type LinearLike } from '../../nn/layers.ts';
import { bumpStorageVersion } from '../../tensor/tensor.ts';
import { anatomy } from '../../models/anatomy.ts';
import { matchesAny } from '../select.ts';
import { sparsify, sparseReport } from './sparse.ts';

// ---------------------------------------------------------------- torch's L1 rule

/** Python's round() of a float: to nearest, ties to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/** torch.nn.utils.prune._compute_nparams_toprune for a float amount: round(amount · n). */
export function nparamsToPrune(amount: number, n: number): number {
  return roundHalfEven(amount * n);
}

const less = (a: number, b: number) => a < b || (!Number.isNaN(a) && Number.isNaN(b)); // topk's comparator, largest=False

/**
 * The k indices torch.topk(scores, k, largest=False) returns on CPU (as a set; see the file comment), computed with
 * ports of libstdc++'s std::partial_sort (64·k ≤ n) / std::nth_element over (value, index) pairs.
 */
export function torchSmallestK(scores: Float32Array | Float64Array, k: number): Int32Array {
  const n = scores.length;
  if (!(Number.isInteger(k) && k >= 0 && k <= n)) throw new Error(`torchSmallestK: k must be an integer in [0, ${n}], got ${k}`);
  if (k === 0) return new Int32Array(0);
  const v = Float64Array.from(scores);
  const ix = new Int32Array(n);
  for (let i = 0; i < n; i++) ix[i] = i;
  const swap = (a: number, b: number) => {
    const t = v[a]!;
    v[a] = v[b]!;
    v[b] = t;
    const u = ix[a]!;
    ix[a] = ix[b]!;
    ix[b] = u;
  };
  const cmp = (a: number, b: number) => less(v[a]!, v[b]!);
  // stl_heap.h over [first, first + len) with the hole moved as libstdc++ does
  const pushHeap = (first: number, hole: number, top: number, val: number, vix: number) => {
    let parent = Math.floor((hole - 1) / 2);
    while (hole > top && less(v[first + parent]!, val)) {
      v[first + hole] = v[first + parent]!;
      ix[first + hole] = ix[first + parent]!;
      hole = parent;
      parent = Math.floor((hole - 1) / 2);
    }
    v[first + hole] = val;
    ix[first + hole] = vix;
  };
  const adjustHeap = (first: number, hole: number, len: number, val: number, vix: number) => {
    const top = hole;
    let child = hole;
    while (child < Math.floor((len - 1) / 2)) {
      child = 2 * (child + 1);
      if (cmp(first + child, first + child - 1)) child--;
      v[first + hole] = v[first + child]!;
      ix[first + hole] = ix[first + child]!;
      hole = child;
    }
    if ((len & 1) === 0 && child === Math.floor((len - 2) / 2)) {
      child = 2 * (child + 1);
      v[first + hole] = v[first + child - 1]!;
      ix[first + hole] = ix[first + child - 1]!;
      hole = child - 1;
    }
    pushHeap(first, hole, top, val, vix);
  };
  const makeHeap = (first: number, last: number) => {
    const len = last - first;
    if (len < 2) return;
    let parent = Math.floor((len - 2) / 2);
    for (;;) {
      adjustHeap(first, parent, len, v[first + parent]!, ix[first + parent]!);
      if (parent === 0) return;
      parent--;
    }
  };
  const heapSelect = (first: number, middle: number, last: number) => {
    makeHeap(first, middle);
    for (let i = middle; i < last; i++)
      if (cmp(i, first)) {
        // __pop_heap(first, middle, i): value = *i; *i = *first; adjust
        const val = v[i]!;
        const vix = ix[i]!;
        v[i] = v[first]!;
        ix[i] = ix[first]!;
        adjustHeap(first, 0, middle - first, val, vix);
      }
  };
  const insertionSort = (first: number, last: number) => {
    if (first === last) return;
    for (let i = first + 1; i < last; i++) {
      const val = v[i]!;
      const vix = ix[i]!;
      if (less(val, v[first]!)) {
        for (let j = i; j > first; j--) {
          v[j] = v[j - 1]!;
          ix[j] = ix[j - 1]!;
        }
        v[first] = val;
        ix[first] = vix;
      } else {
        let last2 = i;
        let next = i - 1;
        while (less(val, v[next]!)) {
          v[last2] = v[next]!;
          ix[last2] = ix[next]!;
          last2 = next;
          next--;
        }
        v[last2] = val;
        ix[last2] = vix;
      }
    }
  };
  const moveMedianToFirst = (result: number, a: number, b: number, c: number) => {
    if (cmp(a, b)) {
      if (cmp(b, c)) swap(result, b);
      else if (cmp(a, c)) swap(result, c);
      else swap(result, a);
    } else if (cmp(a, c)) swap(result, a);
    else if (cmp(b, c)) swap(result, c);
    else swap(result, b);
  };
  const unguardedPartition = (first: number, last: number, pivot: number) => {
    for (;;) {
      while (cmp(first, pivot)) first++;
      last--;
      while (cmp(pivot, last)) last--;
      if (!(first < last)) return first;
      swap(first, last);
      first++;
    }
  };
  if (64 * k <= n) heapSelect(0, k, n); // std::partial_sort: the set is fixed by __heap_select
  else {
    // std::nth_element(begin, begin + k − 1, end) → __introselect with depth limit 2·⌊log2 n⌋
    const nth = k - 1;
    let first = 0;
    let last = n;
    let depth = 2 * Math.floor(Math.log2(n));
    if (nth !== last) {
      let done = false;
      while (last - first > 3) {
        if (depth === 0) {
          heapSelect(first, nth + 1, last);
          swap(first, nth);
          done = true;
          break;
        }
        depth--;
        const mid = first + Math.floor((last - first) / 2);
        moveMedianToFirst(first, first + 1, mid, last - 1);
        const cut = unguardedPartition(first + 1, last, first);
        if (cut <= nth) first = cut;
        else last = cut;
      }
      if (!done) insertionSort(first, last);
    }
  }
  return ix.slice(0, k);
}

/**
 * torch's L1Unstructured mask of `weights` at `amount` (1 = kept, 0 = pruned): the round(amount·n) weights of
 * smallest |w| (ties as torch.topk resolves them).
 */
export function l1UnstructuredMask(weights: Float32Array, amount: number): Uint8Array {
  const n = weights.length;
  const k = nparamsToPrune(amount, n);
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) scores[i] = Math.abs(weights[i]!);
  const mask = new Uint8Array(n).fill(1);
  for (const i of torchSmallestK(scores, k)) mask[i] = 0;
  return mask;
}

// ---------------------------------------------------------------- targets and masks

export type PruneScope = 'layer' | 'global';

/**
 * A prunable layer: its name and module (a Linear or a Conv1D; masks follow the stored weight's layout), or an
 * Embedding named explicitly by a `targets` glob (the default targets never include one).
 */
export type PruneTarget = [name: string, module: LinearLike | Embedding];

/**
 * The layers a pruning config targets: `targets` globs (default: every Linear / Conv1D inside the transformer
 * blocks, so not the embeddings, the pooler or the task head) minus `ignore` globs. Throws naming the option when
 * nothing is selected.
 */
export function pruneTargets(model: Module, targets: readonly string[] | null, ignore: readonly string[] | null, who = 'prune', allowEmpty = false): PruneTarget[] {
  let inBlock: (name: string) => boolean = () => true;
  if (!targets) {
    let blocks: string[] = [];
    try {
      blocks = anatomy(model).blocks.map((b) => b.path + '.');
    } catch {
      blocks = [];
    }
    inBlock = (name) => blocks.some((p) => name.startsWith(p));
  }
  const out: PruneTarget[] = [];
  for (const [name, m] of model.namedModules()) {
    if (name === '') continue;
    if (targets ? !matchesAny(name, targets) : !inBlock(name)) continue;
    if (ignore && matchesAny(name, ignore)) continue;
    const l = asLinearLike(m) ?? (targets && m instanceof Embedding ? m : null);
    if (l) out.push([name, l]);
  }
  if (!out.length && !allowEmpty) throw new Error(`${who}: option '${targets ? 'targets' : 'ignore'}' leaves no Linear / Conv1D layer to prune`);
  return out;
}

/** The stored weight's data (Linear [out, in], Conv1D [in, out]), as torch's parameter. */
function storedData(m: LinearLike | Embedding): Float32Array {
  const w = m.weight;
  if (!w.isContiguous()) throw new Error('prune: weight is not contiguous');
  return w.contiguous().data as Float32Array;
}

/** Masks (1 kept, 0 pruned) over each target's stored weight, at `sparsity`, per layer or global. */
export function magnitudeMasks(targets: PruneTarget[], sparsity: number, scope: PruneScope): Uint8Array[] {
  if (scope === 'layer') return targets.map(([, m]) => l1UnstructuredMask(storedData(m), sparsity));
  const datas = targets.map(([, m]) => storedData(m));
  const total = datas.reduce((a, d) => a + d.length, 0);
  const all = new Float32Array(total);
  let o = 0;
  for (const d of datas) {
    all.set(d, o);
    o += d.length;
  }
  const mask = l1UnstructuredMask(all, sparsity);
  o = 0;
  return datas.map((d) => {
    const m = mask.slice(o, o + d.length);
    o += d.length;
    return m;
  });
}

/** w ← w ⊙ mask, in place (pruned weights become exactly +0). */
export function applyMask(m: LinearLike | Embedding, mask: Uint8Array): void {
  const d = m.weight.data as Float32Array;
  if (d.length !== mask.length) throw new Error(`applyMask: mask has ${mask.length} entries, the weight ${d.length}`);
  for (let i = 0; i < d.length; i++) if (mask[i] === 0) d[i] = 0;
  bumpStorageVersion(d);
}

function checkSparsity(name: string, v: unknown): void {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw new Error(`option '${name}' must be a fraction in [0, 1), got ${String(v)}`);
}

function countZeros(masks: Uint8Array[]): number {
  let z = 0;
  for (const m of masks) for (let i = 0; i < m.length; i++) z += m[i] === 0 ? 1 : 0;
  return z;
}

// ---------------------------------------------------------------- prune.magnitude

export interface MagnitudeConfig {
  /** Fraction of the targeted weights removed, in [0, 1). */
  sparsity: number;
  scope: PruneScope;
  targets: string[] | null;
  ignore: string[] | null;
  /** 'sparse': the layers become SparseLinear (bitmask or CSR, whichever is smaller); 'dense': zeros in place. */
  storage: 'sparse' | 'sparse_int8' | 'dense';
  /** Streaming with scope global: the threshold found over the whole checkpoint first (set by `stream.prepare`, not a recipe option). */
  threshold?: GlobalThreshold;
}

/**
 * torch's global threshold, found in a pass over every targeted weight: the k-th smallest |w| (`value`), and how
 * many weights of exactly that magnitude are still to prune (`ties`, counted down as blocks take them in order).
 */
export interface GlobalThreshold {
  value: number;
  ties: number;
}

/**
 * The k-th smallest |w| over weights seen one tensor at a time, k = round(sparsity · n) (torch's count), by two
 * passes of a radix select on the float32 bit patterns of |w| (for non-negative floats they order as the values;
 * NaN sorts last, as in torch.topk): the first pass counts the high 16 bits, the second the low 16 bits within the
 * bin that holds the k-th. Exact; memory is two 65,536-bin histograms.
 */
export function globalThreshold(weights: () => Iterable<[string, Float32Array]>, sparsity: number): GlobalThreshold {
  const hi = new Float64Array(65536);
  let n = 0;
  for (const [, w] of weights()) {
    const u = new Uint32Array(w.buffer, w.byteOffset, w.length);
    for (let i = 0; i < u.length; i++) hi[(u[i]! & 0x7fffffff) >>> 16]!++;
    n += w.length;
  }
  const k = nparamsToPrune(sparsity, n);
  if (k === 0) return { value: 0, ties: 0 }; // nothing is below 0, and no tie is taken
  let below = 0;
  let bin = 0;
  while (below + hi[bin]! < k) below += hi[bin++]!;
  const lo = new Float64Array(65536);
  for (const [, w] of weights()) {
    const u = new Uint32Array(w.buffer, w.byteOffset, w.length);
    for (let i = 0; i < u.length; i++) {
      const b = u[i]! & 0x7fffffff;
      if (b >>> 16 === bin) lo[b & 0xffff]!++;
    }
  }
  let low = 0;
  while (below + lo[low]! < k) below += lo[low++]!;
  const bits = new Uint32Array([((bin << 16) | low) >>> 0]);
  return { value: new Float32Array(bits.buffer)[0]!, ties: k - below };
}

/** Masks from a global threshold: |w| < value pruned, and the first `ties` weights of |w| = value (consumed). */
function thresholdMasks(targets: PruneTarget[], t: GlobalThreshold): Uint8Array[] {
  return targets.map(([, m]) => {
    const d = storedData(m);
    const mask = new Uint8Array(d.length).fill(1);
    const nan = Number.isNaN(t.value); // the k-th is NaN: every number is below it, and NaNs are its ties
    for (let i = 0; i < d.length; i++) {
      const a = Math.abs(d[i]!);
      if (nan ? !Number.isNaN(a) : a < t.value) mask[i] = 0;
      else if ((nan ? Number.isNaN(a) : a === t.value) && t.ties > 0) {
        mask[i] = 0;
        t.ties--;
      }
    }
    return mask;
  });
}

const STORAGE = ['sparse', 'sparse_int8', 'dense'] as const;

/** Store pruned layers as the `storage` option says: sparse (float32 or int8 values), or left dense with their zeros. */
function store(model: Module, names: string[], storage: (typeof STORAGE)[number]): void {
  if (storage !== 'dense') sparsify(model, names, undefined, storage === 'sparse_int8' ? 'int8' : 'float32');
}
const SCOPES = ['layer', 'global'] as const;

/** Prune a model in place (the library call behind prune.magnitude); returns the report. */
export function pruneMagnitude(model: Module, cfg: Partial<MagnitudeConfig> & { sparsity: number }): Record<string, number | string> {
  const c: MagnitudeConfig = { scope: 'global', targets: null, ignore: null, storage: 'sparse', ...cfg };
  checkSparsity('sparsity', c.sparsity);
  const targets = pruneTargets(model, c.targets, c.ignore, 'prune.magnitude');
  const masks = c.threshold ? thresholdMasks(targets, c.threshold) : magnitudeMasks(targets, c.sparsity, c.scope);
  targets.forEach(([, m], i) => applyMask(m, masks[i]!));
  const weights = masks.reduce((a, m) => a + m.length, 0);
  const pruned = countZeros(masks);
  store(model, targets.map(([n]) => n), c.storage);
  return { pruned_layers: targets.length, target_weights: weights, pruned_weights: pruned, sparsity: weights ? pruned / weights : 0, ...sparseReport(model) };
}

export const pruneMagnitudeMethod: Method<MagnitudeConfig> = {
  name: 'prune.magnitude',
  kind: 'one-shot',
  description: 'unstructured L1 magnitude pruning (torch l1_unstructured / global_unstructured), stored sparse',
  defaults: { sparsity: 0.5, scope: 'global', targets: null, ignore: null, storage: 'sparse' },
  types: { scope: SCOPES, targets: 'string[]', ignore: 'string[]', storage: STORAGE },
  globs: ['targets', 'ignore'],
  check: (model, cfg) => {
    checkSparsity('sparsity', cfg.sparsity);
    pruneTargets(model, cfg.targets, cfg.ignore, 'prune.magnitude');
  },
  apply: (model, cfg) => {
    const r = pruneMagnitude(model, cfg);
    return { report: () => r };
  },
  stream: {
    targets: (model, cfg) => {
      checkSparsity('sparsity', cfg.sparsity);
      return pruneTargets(model, cfg.targets, cfg.ignore, 'prune.magnitude', true).map(([n]) => n);
    },
    // scope global: torch's threshold over every targeted weight of the checkpoint, found before the first block
    prepare: (_model, cfg, weights) => (cfg.scope === 'global' ? { threshold: globalThreshold(weights, cfg.sparsity) } : {}),
    merge: (reports) => {
      const sum = (k: string) => reports.reduce((a, r) => a + Number(r[k] ?? 0), 0);
      const [weights, pruned] = [sum('target_weights'), sum('pruned_weights')];
      // the sparse_* fields count the whole model, so the last block's report has them all
      return { ...reports[reports.length - 1], pruned_layers: sum('pruned_layers'), target_weights: weights, pruned_weights: pruned, sparsity: weights ? pruned / weights : 0 };
    },
  },
};

// ---------------------------------------------------------------- prune.gradual

export interface GradualConfig {
  initial_sparsity: number;
  final_sparsity: number;
  /** t0: the first pruning step (0-based optimizer step). */
  start_step: number;
  /** Where the schedule reaches final_sparsity; null = from `n` (or, with neither, 75 % of the stage's steps). */
  end_step: number | null;
  /** Number of pruning steps after t0: end = t0 + n·Δt. */
  n: number | null;
  /** Δt: steps between mask updates. */
  frequency: number;
  scope: PruneScope;
  targets: string[] | null;
  ignore: string[] | null;
  storage: 'sparse' | 'sparse_int8' | 'dense';
}

export interface GradualSchedule {
  initial: number;
  final: number;
  start: number;
  end: number;
  frequency: number;
}

/** The schedule a config means for a stage of `totalSteps` steps; throws naming the option. */
export function gradualSchedule(cfg: GradualConfig, totalSteps: number): GradualSchedule {
  checkSparsity('initial_sparsity', cfg.initial_sparsity);
  checkSparsity('final_sparsity', cfg.final_sparsity);
  if (cfg.final_sparsity < cfg.initial_sparsity) throw new Error(`option 'final_sparsity' (${cfg.final_sparsity}) must be >= initial_sparsity (${cfg.initial_sparsity})`);
  if (!(Number.isInteger(cfg.frequency) && cfg.frequency >= 1)) throw new Error(`option 'frequency' must be an integer >= 1, got ${cfg.frequency}`);
  if (!(Number.isInteger(cfg.start_step) && cfg.start_step >= 0)) throw new Error(`option 'start_step' must be an integer >= 0, got ${cfg.start_step}`);
  if (cfg.end_step !== null && cfg.n !== null) throw new Error(`options 'end_step' and 'n' both set: give one (end = start_step + n·frequency)`);
  if (cfg.n !== null && !(Number.isInteger(cfg.n) && cfg.n >= 1)) throw new Error(`option 'n' must be an integer >= 1, got ${cfg.n}`);
  const end = cfg.end_step ?? (cfg.n !== null ? cfg.start_step + cfg.n * cfg.frequency : Math.max(cfg.start_step + 1, Math.floor(0.75 * totalSteps)));
  if (!(Number.isInteger(end) && end > cfg.start_step)) throw new Error(`option 'end_step' must be an integer > start_step (${cfg.start_step}), got ${end}`);
  if (end > totalSteps) throw new Error(`option '${cfg.n !== null ? 'n' : 'end_step'}': the schedule ends at step ${end}, past the stage's ${totalSteps} training steps`);
  return { initial: cfg.initial_sparsity, final: cfg.final_sparsity, start: cfg.start_step, end, frequency: cfg.frequency };
}

/** Zhu & Gupta's s_t (0 before t0, s_f after the end). */
export function sparsityAt(step: number, s: GradualSchedule): number {
  if (step < s.start) return 0;
  const f = Math.min(1, (step - s.start) / (s.end - s.start));
  return s.final + (s.initial - s.final) * (1 - f) ** 3;
}

/** Whether the masks are recomputed before optimizer step `step` (t0, t0 + Δt, …, up to the first ≥ end). */
export function isPruningStep(step: number, s: GradualSchedule): boolean {
  if (step < s.start || (step - s.start) % s.frequency !== 0) return false;
  return step - s.frequency < s.end; // the last update is the first one at or past the end
}

function packBits(m: Uint8Array): string {
  const b = new Uint8Array(Math.ceil(m.length / 8));
  for (let i = 0; i < m.length; i++) if (m[i]) b[i >> 3]! |= 1 << (i & 7);
  return Buffer.from(b).toString('base64');
}
function unpackBits(s: string, n: number): Uint8Array {
  const b = Buffer.from(s, 'base64');
  if (b.length !== Math.ceil(n / 8)) throw new Error(`prune.gradual: checkpointed mask has ${b.length} bytes, expected ${Math.ceil(n / 8)}`);
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = (b[i >> 3]! >> (i & 7)) & 1;
  return m;
}

export const pruneGradualMethod: Method<GradualConfig> = {
  name: 'prune.gradual',
  kind: 'trained',
  description: 'gradual magnitude pruning during training (Zhu & Gupta 2017 cubic schedule), stored sparse',
  defaults: { initial_sparsity: 0, final_sparsity: 0.5, start_step: 0, end_step: null, n: null, frequency: 10, scope: 'global', targets: null, ignore: null, storage: 'sparse' },
  types: { end_step: 'integer', n: 'integer', start_step: 'integer', frequency: 'integer', scope: SCOPES, targets: 'string[]', ignore: 'string[]', storage: STORAGE },
  globs: ['targets', 'ignore'],
  check: (model, cfg, ctx: RecipeContext) => {
    gradualSchedule(cfg, ctx.totalSteps || Number.MAX_SAFE_INTEGER);
    pruneTargets(model, cfg.targets, cfg.ignore, 'prune.gradual');
  },
  apply: (model, cfg, ctx): MethodRun => {
    const sched = gradualSchedule(cfg, ctx.totalSteps ?? 0);
    const targets = pruneTargets(model, cfg.targets, cfg.ignore, 'prune.gradual');
    let masks: Uint8Array[] | null = null;
    let current = 0;
    const reapply = () => masks && targets.forEach(([, m], i) => applyMask(m, masks![i]!));
    let finalReport: Record<string, number | string> = {};
    return {
      beforeStep: (step) => {
        if (!isPruningStep(step, sched)) return;
        current = sparsityAt(step, sched);
        masks = magnitudeMasks(targets, current, cfg.scope);
        reapply();
        ctx.log?.(`prune.gradual: step ${step}: sparsity ${(100 * current).toFixed(2)} %`);
      },
      afterOptimizerStep: () => reapply(),
      state: () => ({ sparsity: current, masks: masks ? masks.map(packBits) : null }),
      setState: (s) => {
        const st = s as { sparsity: number; masks: string[] | null };
        current = st.sparsity;
        masks = st.masks ? st.masks.map((b, i) => unpackBits(b, targets[i]![1].weight.numel)) : null;
        reapply();
      },
      finalize: () => {
        reapply();
        const weights = targets.reduce((a, [, m]) => a + m.weight.numel, 0);
        const pruned = masks ? countZeros(masks) : 0;
        store(model, targets.map(([n]) => n), cfg.storage);
        finalReport = { pruned_layers: targets.length, target_weights: weights, pruned_weights: pruned, sparsity: weights ? pruned / weights : 0, schedule_end: sched.end, ...sparseReport(model) };
      },
      report: () => finalReport,
    };
  },
};

registerMethod(pruneMagnitudeMethod);
registerMethod(pruneGradualMethod);
