/**
 * The Backend interface: the kernels every op is built from.
 *
 * Kernels work on flat typed arrays. Float kernels accept Float32Array (the compute dtype) and, on the `ref`
 * backend, Float64Array (used by gradient checks). Outputs are always contiguous row-major arrays allocated by the
 * caller. Inputs that may be strided views take a {@link View} (data + offset + strides over the output shape;
 * a stride of 0 broadcasts). All arguments are validated in TypeScript before a kernel is called, so kernels may
 * assume shapes, lengths and indices are in range: nothing invalid ever reaches native code.
 *
 * `ref` (src/backend/ref) implements every kernel in plain TypeScript and is the spec. `native` (the Node-API addon)
 * implements the hot ones; dispatch falls back to `ref` for anything it leaves out (see registry.ts).
 */

export type FArray = Float32Array | Float64Array;

/** A strided read-only view over a flat array, indexed over some logical shape given alongside. */
export interface View {
  data: FArray;
  offset: number;
  /** One stride per dimension of the logical shape (elements, not bytes). 0 means broadcast. */
  strides: readonly number[];
}

/**
 * Unary elementwise ops. The numeric code (index in this list) is what the native addon receives, so the list is
 * append-only. `alpha`/`beta` are op parameters where noted.
 */
export const UNARY_OPS = [
  'copy', //      x
  'neg', //       -x
  'exp',
  'log',
  'sqrt',
  'rsqrt', //     1/sqrt(x)
  'abs',
  'tanh',
  'sigmoid',
  'relu',
  'silu', //      x * sigmoid(x)
  'gelu', //      x * Φ(x), erf form (BERT "gelu")
  'gelu_tanh', // 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) (GPT-2 "gelu_new")
  'erf',
  'affine', //    x * alpha + beta
  'pow_scalar', // x ** alpha
  'clamp', //     min(max(x, alpha), beta)
  'recip', //     1/x
  'square', //    x*x
  'sin',
  'cos',
  'sign',
  'leaky_relu', // x >= 0 ? x : alpha * x
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Binary elementwise ops with broadcasting. Comparisons return 1 or 0. Append-only (codes go to native). */
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

/** Reductions over the middle axis of an (outer, r, inner) contiguous block. Append-only. */
export const REDUCE_OPS = ['sum', 'max', 'min', 'prod'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

export interface MatmulArgs {
  a: FArray;
  b: FArray;
  out: FArray;
  /** Number of matrices. */
  batch: number;
  M: number;
  N: number;
  K: number;
  /** Element offset of each batch's A and B matrix (length `batch`). */
  aOffsets: Int32Array;
  bOffsets: Int32Array;
  /** Row stride ("leading dimension") of A and B as stored. */
  lda: number;
  ldb: number;
  /** A stored as K×M (so A[m,k] = a[off + k*lda + m]); otherwise M×K (A[m,k] = a[off + m*lda + k]). */
  transA: boolean;
  /** B stored as N×K (B[k,n] = b[off + n*ldb + k]); otherwise K×N (B[k,n] = b[off + k*ldb + n]). */
  transB: boolean;
  /** If true, out += A·B; else out = A·B. `out` is contiguous: batch × M × N. */
  accumulate: boolean;
}

export interface Backend {
  readonly name: string;

  /** out[i] = f(x[i]) over `shape` (out contiguous). */
  unary(op: UnaryOp, x: View, shape: readonly number[], out: FArray, alpha: number, beta: number): void;
  /**
   * Gradient of a unary op, all arrays contiguous and of length n: out = g * f'(x). `y` is f(x) (used by exp,
   * tanh, sigmoid, sqrt, rsqrt; may be the same as x for ops that do not need it).
   */
  unaryBackward(op: UnaryOp, x: FArray, y: FArray, g: FArray, out: FArray, alpha: number, beta: number): void;
  /** out = a op b over `shape`; a and b are already broadcast to `shape` through their strides. */
  binary(op: BinaryOp, a: View, b: View, shape: readonly number[], out: FArray): void;
  /** out = cond != 0 ? a : b over `shape`. */
  where(cond: View, a: View, b: View, shape: readonly number[], out: FArray): void;
  /**
   * Reduce the middle axis of x viewed as (outer, r, inner): out[o, i] = op_j x[o, j, i]. For max/min, `idx` (if
   * given) receives the index j of the first extreme element. Sums accumulate in float64 on `ref`.
   */
  reduce(op: ReduceOp, x: FArray, outer: number, r: number, inner: number, out: FArray, idx: Int32Array | null): void;
  /** Batched GEMM, see {@link MatmulArgs}. */
  matmul(args: MatmulArgs): void;

  /** Row-wise softmax (or log-softmax) of x viewed as rows × n. */
  softmax(x: FArray, rows: number, n: number, out: FArray, log: boolean): void;
  /** Backward of softmax/logSoftmax given its output y and upstream g. */
  softmaxBackward(y: FArray, g: FArray, rows: number, n: number, out: FArray, log: boolean): void;

  /**
   * LayerNorm over the last axis (rows × n). weight/bias may be null. Writes mean and rstd (length rows) for
   * the backward pass.
   */
  layerNorm(x: FArray, weight: FArray | null, bias: FArray | null, rows: number, n: number, eps: number, out: FArray, mean: FArray, rstd: FArray): void;
  /** dx (written), dWeight/dBias (accumulated into, may be null). */
  layerNormBackward(x: FArray, weight: FArray | null, mean: FArray, rstd: FArray, g: FArray, rows: number, n: number, dx: FArray, dWeight: FArray | null, dBias: FArray | null): void;
  /** RMSNorm over the last axis: out = x * rstd * weight, rstd = 1/sqrt(mean(x²) + eps). weight may be null. */
  rmsNorm(x: FArray, weight: FArray | null, rows: number, n: number, eps: number, out: FArray, rstd: FArray): void;
  rmsNormBackward(x: FArray, weight: FArray | null, rstd: FArray, g: FArray, rows: number, n: number, dx: FArray, dWeight: FArray | null): void;

  /** out[i, :] = weight[idx[i], :] (dim columns). */
  embedding(weight: FArray, idx: Int32Array, dim: number, out: FArray): void;
  /** dWeight[idx[i], :] += g[i, :] (accumulate; duplicates add up). */
  embeddingBackward(g: FArray, idx: Int32Array, dim: number, dWeight: FArray): void;

  /**
   * Cross-entropy per row of logits (rows × V) with integer targets. Rows whose target is `ignoreIndex` get loss 0.
   * With label smoothing ε: loss = (1-ε)·(lse - x[t]) + ε·(lse - mean(x)). Writes loss and logsumexp per row.
   */
  crossEntropy(logits: FArray, target: Int32Array, rows: number, V: number, ignoreIndex: number, labelSmoothing: number, loss: FArray, lse: FArray): void;
  /** dlogits = gRow[r] · (softmax(x) - ((1-ε)·onehot(t) + ε/V)); ignored rows get 0. */
  crossEntropyBackward(logits: FArray, target: Int32Array, lse: FArray, gRow: FArray, rows: number, V: number, ignoreIndex: number, labelSmoothing: number, out: FArray): void;

  /**
   * AdamW step in place over n elements (decoupled weight decay, as torch.optim.AdamW):
   *   p -= lr·wd·p;  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  p -= lr · (m/bc1) / (sqrt(v/bc2) + eps)
   * where bc1 = 1 - β1^t, bc2 = 1 - β2^t.
   */
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number): void;

  /**
   * Inverted dropout over out.length elements (x contiguous, at least as long): one xoshiro128** draw r per element
   * from `state` (4 words, the Generator's, advanced in place); out[i] = r ≥ threshold ? x[i]·scale : 0.
   * threshold is in [0, 2³²]. The stream is exactly Generator.nextU32's.
   */
  dropout(x: FArray, out: FArray, state: Int32Array, threshold: number, scale: number): void;
}
