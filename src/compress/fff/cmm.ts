/**
 * Conditional matrix multiplication (CMM), UltraFastBERT's inference form of a fast feedforward layer: per token
 * and tree, D + 1 dot products down a balanced binary tree of 2^(D+1) − 1 neurons (choose a child by the sign of
 * the node's logit), then the GELU of those D + 1 logits times the matching columns of linear_out.
 *
 * {@link cmmReference} is the spec (plain TypeScript, float64 accumulation, one rounding per stored value), and
 * native/fff.cc (`fffCmm`, AVX-512 / AVX2 / portable, chosen at run time) is tested against it
 * (test/compress/fff-cmm.test.ts). {@link cmmForward} runs the native kernel when the native backend is active.
 *
 * Shapes: M tokens, K input width, O output width, P parallel trees, D depth, N = 2^(D+1) − 1 nodes per tree.
 * Node ids are heap order within a tree (root 0, children 2n + 1 left, 2n + 2 right); rows of the weights for
 * tree p are p·N … p·N + N − 1 (UltraFastBERT's `linear_in` [P·N, K] layout).
 *
 * Decision: `strict` goes right iff logit > 0 (the training FFF, training/cramming/architectures/fff.py);
 * not strict iff logit ≥ 0 (benchmark_pytorch/fff/fff_bmm.py). They differ only on exact zeros, e.g. an
 * all-zero token at a root whose bias is 0 (fixture fff, row 5 of `x`). NaN goes left in both.
 */
import { erf } from '../../backend/ref/math.ts';
import { backend, nativeAddon } from '../../backend/registry.ts';

/** Nodes in one tree of depth D: 2^(D+1) − 1. */
export function fffNodes(depth: number): number {
  return 2 ** (depth + 1) - 1;
}

/** GELU, erf form, in float64 (what the ref backend computes), rounded to float32. */
export function geluRef(v: number): number {
  return Math.fround(0.5 * v * (1 + erf(v * Math.SQRT1_2)));
}

/** What one CMM call needs: the tree weights, in the layouts the kernel reads. */
export interface CmmWeights {
  /** Input width K. */
  K: number;
  /** Output width O. */
  O: number;
  depth: number;
  /** Parallel trees P. */
  P: number;
  /** linear_in.weight [P·N, K]. */
  w1: Float32Array;
  /** linear_in.bias [P·N], or null (fff_bmm has none). */
  b1: Float32Array | null;
  /** linear_out.weight transposed: [P·N, O] (a node's output column is a contiguous row). */
  w2t: Float32Array;
  /** Decision > 0 (true) or ≥ 0 (false). */
  strict: boolean;
}

/**
 * The visited nodes [M, P, D + 1] from all node logits [M, P·N] (the dense form computes every logit, then keeps
 * the D + 1 on each path): node 0, then child 2n + 1 + (go right ? 1 : 0).
 */
export function fffDescend(logits: ArrayLike<number>, M: number, P: number, depth: number, strict: boolean): Int32Array {
  const N = fffNodes(depth);
  const L = depth + 1;
  const out = new Int32Array(M * P * L);
  for (let m = 0; m < M; m++)
    for (let p = 0; p < P; p++) {
      let node = 0;
      const base = m * P * N + p * N;
      for (let d = 0; d < L; d++) {
        out[(m * P + p) * L + d] = node;
        const s = logits[base + node]!;
        node = 2 * node + 1 + ((strict ? s > 0 : s >= 0) ? 1 : 0);
      }
    }
  return out;
}

/** 1 on the visited nodes, 0 elsewhere: [M, P·N] (UltraFastBERT's decision_map, flattened over trees). */
export function fffVisitedMask(nodes: Int32Array, M: number, P: number, depth: number): Float32Array {
  const N = fffNodes(depth);
  const L = depth + 1;
  const mask = new Float32Array(M * P * N);
  for (let m = 0; m < M; m++) for (let p = 0; p < P; p++) for (let d = 0; d < L; d++) mask[m * P * N + p * N + nodes[(m * P + p) * L + d]!] = 1;
  return mask;
}

/**
 * The CMM spec: out[M, O] (overwritten) and, when given, the visited nodes [M, P, D + 1]. Each logit is the
 * float64 sum x·w1[row] + b1[row] rounded once to float32; its GELU is {@link geluRef}; each output is the float64
 * sum over the P·(D + 1) visited rows of GELU·w2t[row], rounded once.
 */
export function cmmReference(w: CmmWeights, x: Float32Array, M: number, out: Float32Array, nodes?: Int32Array): void {
  const { K, O, depth, P, w1, b1, w2t, strict } = w;
  const N = fffNodes(depth);
  const L = depth + 1;
  const rows = new Int32Array(P * L);
  const coef = new Float64Array(P * L);
  const acc = new Float64Array(O);
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    for (let p = 0; p < P; p++) {
      let node = 0;
      for (let d = 0; d < L; d++) {
        const row = p * N + node;
        let s = 0;
        const wo = row * K;
        for (let k = 0; k < K; k++) s += x[xo + k]! * w1[wo + k]!;
        if (b1) s += b1[row]!;
        const logit = Math.fround(s);
        rows[p * L + d] = row;
        coef[p * L + d] = geluRef(logit);
        if (nodes) nodes[(m * P + p) * L + d] = node;
        node = 2 * node + 1 + ((strict ? logit > 0 : logit >= 0) ? 1 : 0);
      }
    }
    acc.fill(0);
    for (let r = 0; r < P * L; r++) {
      const a = coef[r]!;
      const wo = rows[r]! * O;
      for (let o = 0; o < O; o++) acc[o] += a * w2t[wo + o]!;
    }
    for (let o = 0; o < O; o++) out[m * O + o] = Math.fround(acc[o]!);
  }
}

/** Kernel paths of native/fff.cc: -1 picks the best the CPU (and SHRINK_ISA) allow. */
export type CmmPath = 'auto' | 'portable' | 'avx2' | 'avx512';
const PATH_ID: Record<CmmPath, number> = { auto: -1, portable: 0, avx2: 1, avx512: 2 };

interface FffAddon {
  fffCmm(
    x: Float32Array, M: number, K: number, w1: Float32Array, b1: Float32Array | null, w2t: Float32Array, O: number,
    depth: number, P: number, strict: boolean, out: Float32Array, path: number, nodes: Int32Array | null,
  ): void;
  fffCmmPaths(): string[];
}

/** The addon's CMM kernel when the native backend is active (and built with it), else null. */
export function fffAddon(): FffAddon | null {
  if (backend().name !== 'native') return null;
  const a = nativeAddon() as unknown as Partial<FffAddon> | null;
  return a && typeof a.fffCmm === 'function' ? (a as FffAddon) : null;
}

/** The native CMM paths this CPU can run ([] without the addon). */
export function cmmPaths(): string[] {
  return fffAddon()?.fffCmmPaths() ?? [];
}

/**
 * out[M, O] = CMM(x) natively when possible (`path` picks a kernel path; 'auto' the best), else
 * {@link cmmReference}. `nodes` [M, P, D + 1] receives the visited nodes when given.
 */
export function cmmForward(w: CmmWeights, x: Float32Array, M: number, out: Float32Array, opts: { path?: CmmPath; nodes?: Int32Array; ref?: boolean } = {}): void {
  const a = opts.ref ? null : fffAddon();
  if (!a) return cmmReference(w, x, M, out, opts.nodes);
  a.fffCmm(x, M, w.K, w.w1, w.b1, w.w2t, w.O, w.depth, w.P, w.strict, out, PATH_ID[opts.path ?? 'auto'], opts.nodes ?? null);
}

/** [rows, cols] row-major → [cols, rows] row-major. */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}
