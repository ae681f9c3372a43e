/**
 * The `native` backend: the Node-API addon (native/*.cc, built into build/Release/shrink_native.node during
 * `npm ci`) behind the Backend interface. Typed arrays are handed over without copying. Shapes and strides travel
 * in one reused Int32Array (each typed-array argument costs ~85 ns, ENGINE-NOTES §1.3). Any call with a
 * Float64Array (gradient checks) goes to `ref`. Everything is validated by the op layer before it gets here.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS, type Backend, type FArray, type View } from '../backend.ts';

type F32 = Float32Array;

/** Functions exported by the addon (see native/*.cc for each signature). */
export interface NativeAddon {
  info(): { avx2: boolean; threads: number };
  setThreads(n: number): number;
  sgemm(a: F32, b: F32, out: F32, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
  sgemmRef(a: F32, b: F32, out: F32, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
  unary(op: number, x: F32, xOffset: number, out: F32, n: number, alpha: number, beta: number): void;
  unaryStrided(op: number, x: F32, xOffset: number, meta: Int32Array, out: F32, alpha: number, beta: number): void;
  unaryBackward(op: number, x: F32, y: F32, g: F32, out: F32, alpha: number, beta: number): void;
  binary(op: number, a: F32, aOffset: number, b: F32, bOffset: number, meta: Int32Array, out: F32): void;
  where(c: F32, cOffset: number, a: F32, aOffset: number, b: F32, bOffset: number, meta: Int32Array, out: F32): void;
  reduce(op: number, x: F32, outer: number, r: number, inner: number, out: F32, idx: Int32Array | null): void;
  softmax(x: F32, rows: number, n: number, out: F32, log: boolean): void;
  softmaxBackward(y: F32, g: F32, rows: number, n: number, out: F32, log: boolean): void;
  layerNorm(x: F32, w: F32 | null, b: F32 | null, rows: number, n: number, eps: number, out: F32, mean: F32, rstd: F32): void;
  layerNormBackward(x: F32, w: F32 | null, mean: F32, rstd: F32, g: F32, rows: number, n: number, dx: F32, dw: F32 | null, db: F32 | null): void;
  rmsNorm(x: F32, w: F32 | null, rows: number, n: number, eps: number, out: F32, rstd: F32): void;
  rmsNormBackward(x: F32, w: F32 | null, rstd: F32, g: F32, rows: number, n: number, dx: F32, dw: F32 | null): void;
  embedding(w: F32, idx: Int32Array, dim: number, out: F32): void;
  embeddingBackward(g: F32, idx: Int32Array, dim: number, dw: F32): void;
  crossEntropy(x: F32, t: Int32Array, rows: number, V: number, ignoreIndex: number, eps: number, loss: F32, lse: F32): void;
  crossEntropyBackward(x: F32, t: Int32Array, lse: F32, gRow: F32, rows: number, V: number, ignoreIndex: number, eps: number, out: F32): void;
  adamw(p: F32, g: F32, m: F32, v: F32, lr: number, b1: number, b2: number, eps: number, wd: number, bc1: number, bc2: number): void;
  f32ToF16(s: F32, d: Uint16Array): void;
  f16ToF32(s: Uint16Array, d: F32): void;
  f32ToBf16(s: F32, d: Uint16Array): void;
  bf16ToF32(s: Uint16Array, d: F32): void;
}

export const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../build/Release/shrink_native.node');

let loadError: string | null = null;
/** Why the addon did not load (null if it did or was not tried). */
export function nativeLoadError(): string | null {
  return loadError;
}

/** Load the addon; null (never a throw) when it is not built or fails to load. */
export function loadNative(): NativeAddon | null {
  if (!existsSync(ADDON_PATH)) {
    loadError = `${ADDON_PATH} not found`;
    return null;
  }
  try {
    return createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (e) {
    loadError = e instanceof Error ? e.message : String(e);
    return null;
  }
}

const UNARY_CODE = new Map(UNARY_OPS.map((o, i) => [o, i]));
const BINARY_CODE = new Map(BINARY_OPS.map((o, i) => [o, i]));
const REDUCE_CODE = new Map(REDUCE_OPS.map((o, i) => [o, i]));
const MAX_DIMS = 16;

/** True when the view reads `shape` contiguously from its offset. */
function isContiguousView(shape: readonly number[], strides: readonly number[]): boolean {
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== expect) return false;
    expect *= shape[d]!;
  }
  return true;
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function createNativeBackend(addon: NativeAddon, ref: Backend): Backend {
  const meta = new Int32Array(1 + MAX_DIMS * 4);
  /** [nd, shape, strides of each view] into the shared scratch array. */
  const pack = (shape: readonly number[], views: View[]): Int32Array => {
    const nd = shape.length;
    meta[0] = nd;
    for (let d = 0; d < nd; d++) meta[1 + d] = shape[d]!;
    for (let v = 0; v < views.length; v++) {
      const st = views[v]!.strides;
      for (let d = 0; d < nd; d++) meta[1 + nd * (v + 1) + d] = st[d]!;
    }
    return meta;
  };
  const f64 = (...xs: (FArray | null)[]) => xs.some((x) => x instanceof Float64Array);

  return {
    name: 'native',

    unary(op, x, shape, out, alpha, beta) {
      if (f64(x.data, out) || shape.length > MAX_DIMS) return ref.unary(op, x, shape, out, alpha, beta);
      const n = numel(shape);
      if (n === 0) return;
      const code = UNARY_CODE.get(op)!;
      if (isContiguousView(shape, x.strides)) addon.unary(code, x.data as F32, x.offset, out as F32, n, alpha, beta);
      else addon.unaryStrided(code, x.data as F32, x.offset, pack(shape, [x]), out as F32, alpha, beta);
    },

    unaryBackward(op, x, y, g, out, alpha, beta) {
      if (f64(x, y, g, out)) return ref.unaryBackward(op, x, y, g, out, alpha, beta);
      if (out.length === 0) return;
      addon.unaryBackward(UNARY_CODE.get(op)!, x as F32, y as F32, g as F32, out as F32, alpha, beta);
    },

    binary(op, a, b, shape, out) {
      if (f64(a.data, b.data, out) || shape.length > MAX_DIMS) return ref.binary(op, a, b, shape, out);
      if (out.length === 0) return;
      addon.binary(BINARY_CODE.get(op)!, a.data as F32, a.offset, b.data as F32, b.offset, pack(shape, [a, b]), out as F32);
    },

    where(cond, a, b, shape, out) {
      if (f64(cond.data, a.data, b.data, out) || shape.length > MAX_DIMS) return ref.where(cond, a, b, shape, out);
      if (out.length === 0) return;
      addon.where(cond.data as F32, cond.offset, a.data as F32, a.offset, b.data as F32, b.offset, pack(shape, [cond, a, b]), out as F32);
    },

    reduce(op, x, outer, r, inner, out, idx) {
      if (f64(x, out)) return ref.reduce(op, x, outer, r, inner, out, idx);
      if (outer * inner === 0) return;
      addon.reduce(REDUCE_CODE.get(op)!, x as F32, outer, r, inner, out as F32, idx);
    },

    matmul(p) {
      if (f64(p.a, p.b, p.out)) return ref.matmul(p);
      addon.sgemm(p.a as F32, p.b as F32, p.out as F32, p.batch, p.M, p.N, p.K, p.aOffsets, p.bOffsets, p.lda, p.ldb, p.transA, p.transB, p.accumulate);
    },

    softmax(x, rows, n, out, log) {
      if (f64(x, out)) return ref.softmax(x, rows, n, out, log);
      addon.softmax(x as F32, rows, n, out as F32, log);
    },
    softmaxBackward(y, g, rows, n, out, log) {
      if (f64(y, g, out)) return ref.softmaxBackward(y, g, rows, n, out, log);
      addon.softmaxBackward(y as F32, g as F32, rows, n, out as F32, log);
    },

    layerNorm(x, w, b, rows, n, eps, out, mean, rstd) {
      if (f64(x, w, b, out, mean, rstd)) return ref.layerNorm(x, w, b, rows, n, eps, out, mean, rstd);
      addon.layerNorm(x as F32, w as F32 | null, b as F32 | null, rows, n, eps, out as F32, mean as F32, rstd as F32);
    },
    layerNormBackward(x, w, mean, rstd, g, rows, n, dx, dw, db) {
      if (f64(x, w, mean, rstd, g, dx, dw, db)) return ref.layerNormBackward(x, w, mean, rstd, g, rows, n, dx, dw, db);
      addon.layerNormBackward(x as F32, w as F32 | null, mean as F32, rstd as F32, g as F32, rows, n, dx as F32, dw as F32 | null, db as F32 | null);
    },
    rmsNorm(x, w, rows, n, eps, out, rstd) {
      if (f64(x, w, out, rstd)) return ref.rmsNorm(x, w, rows, n, eps, out, rstd);
      addon.rmsNorm(x as F32, w as F32 | null, rows, n, eps, out as F32, rstd as F32);
    },
    rmsNormBackward(x, w, rstd, g, rows, n, dx, dw) {
      if (f64(x, w, rstd, g, dx, dw)) return ref.rmsNormBackward(x, w, rstd, g, rows, n, dx, dw);
      addon.rmsNormBackward(x as F32, w as F32 | null, rstd as F32, g as F32, rows, n, dx as F32, dw as F32 | null);
    },

    embedding(w, idx, dim, out) {
      if (f64(w, out)) return ref.embedding(w, idx, dim, out);
      addon.embedding(w as F32, idx, dim, out as F32);
    },
    embeddingBackward(g, idx, dim, dw) {
      if (f64(g, dw)) return ref.embeddingBackward(g, idx, dim, dw);
      addon.embeddingBackward(g as F32, idx, dim, dw as F32);
    },

    crossEntropy(x, t, rows, V, ignoreIndex, eps, loss, lse) {
      if (f64(x, loss, lse)) return ref.crossEntropy(x, t, rows, V, ignoreIndex, eps, loss, lse);
      addon.crossEntropy(x as F32, t, rows, V, ignoreIndex, eps, loss as F32, lse as F32);
    },
    crossEntropyBackward(x, t, lse, gRow, rows, V, ignoreIndex, eps, out) {
      if (f64(x, lse, gRow, out)) return ref.crossEntropyBackward(x, t, lse, gRow, rows, V, ignoreIndex, eps, out);
      addon.crossEntropyBackward(x as F32, t, lse as F32, gRow as F32, rows, V, ignoreIndex, eps, out as F32);
    },

    adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2) {
      if (f64(p, g, m, v)) return ref.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
      addon.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
    },
  };
}
