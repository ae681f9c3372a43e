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

/**
 * V8 keeps typed arrays of ≤ 64 bytes inside the JS heap and must move ("externalize") their storage the first
 * time native code asks for it, which costs more than the kernel. So tiny outputs run on `ref` (faster than any
 * native call at that size), and tiny inputs next to a large output are copied into persistent off-heap scratch.
 */
const TINY = 16;

export function createNativeBackend(addon: NativeAddon, ref: Backend): Backend {
  const meta = new Int32Array(1 + MAX_DIMS * 4);
  const fScratch = [0, 1, 2, 3].map(() => new Float32Array(new ArrayBuffer(TINY * 4)));
  const iScratch = [0, 1].map(() => new Int32Array(new ArrayBuffer(TINY * 4)));
  /** An off-heap array with the same contents (scratch slot k) when `a` is tiny. */
  const oh = <T extends Float32Array | Int32Array>(a: T, k: number): T => {
    if (a.length > TINY) return a;
    const s = (a instanceof Int32Array ? iScratch[k]! : fScratch[k]!) as T;
    s.set(a as never);
    return s.subarray(0, a.length) as T;
  };
  /** Run a native call whose small outputs (≤ TINY) go through scratch slots, then copy them back. */
  const withOut = (outs: (FArray | null)[], call: (o: (F32 | null)[]) => void): void => {
    let slot = 2;
    const mapped = outs.map((a) => (a && a.length <= TINY ? fScratch[slot++]!.subarray(0, a.length) : (a as F32 | null)));
    call(mapped);
    outs.forEach((a, i) => {
      if (a && mapped[i] !== a) a.set(mapped[i]!);
    });
  };
  const ohv = (v: View, k: number): View => (v.data.length > TINY ? v : { data: oh(v.data as F32, k), offset: v.offset, strides: v.strides });
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
      if (f64(x.data, out) || shape.length > MAX_DIMS || out.length <= TINY) return ref.unary(op, x, shape, out, alpha, beta);
      const n = numel(shape);
      if (n === 0) return;
      const code = UNARY_CODE.get(op)!;
      x = ohv(x, 0);
      if (isContiguousView(shape, x.strides)) addon.unary(code, x.data as F32, x.offset, out as F32, n, alpha, beta);
      else addon.unaryStrided(code, x.data as F32, x.offset, pack(shape, [x]), out as F32, alpha, beta);
    },

    unaryBackward(op, x, y, g, out, alpha, beta) {
      if (f64(x, y, g, out) || out.length <= TINY) return ref.unaryBackward(op, x, y, g, out, alpha, beta);
      addon.unaryBackward(UNARY_CODE.get(op)!, x as F32, y as F32, g as F32, out as F32, alpha, beta);
    },

    binary(op, a, b, shape, out) {
      if (f64(a.data, b.data, out) || shape.length > MAX_DIMS || out.length <= TINY) return ref.binary(op, a, b, shape, out);
      a = ohv(a, 0);
      b = ohv(b, 1);
      addon.binary(BINARY_CODE.get(op)!, a.data as F32, a.offset, b.data as F32, b.offset, pack(shape, [a, b]), out as F32);
    },

    where(cond, a, b, shape, out) {
      if (f64(cond.data, a.data, b.data, out) || shape.length > MAX_DIMS || out.length <= TINY) return ref.where(cond, a, b, shape, out);
      cond = ohv(cond, 0);
      a = ohv(a, 1);
      b = ohv(b, 2);
      addon.where(cond.data as F32, cond.offset, a.data as F32, a.offset, b.data as F32, b.offset, pack(shape, [cond, a, b]), out as F32);
    },

    reduce(op, x, outer, r, inner, out, idx) {
      if (f64(x, out) || x.length <= TINY || out.length <= TINY) return ref.reduce(op, x, outer, r, inner, out, idx);
      addon.reduce(REDUCE_CODE.get(op)!, x as F32, outer, r, inner, out as F32, idx);
    },

    matmul(p) {
      if (f64(p.a, p.b, p.out) || p.out.length <= TINY) return ref.matmul(p);
      addon.sgemm(oh(p.a as F32, 0), oh(p.b as F32, 1), p.out as F32, p.batch, p.M, p.N, p.K, oh(p.aOffsets, 0), oh(p.bOffsets, 1), p.lda, p.ldb, p.transA, p.transB, p.accumulate);
    },

    softmax(x, rows, n, out, log) {
      if (f64(x, out) || out.length <= TINY) return ref.softmax(x, rows, n, out, log);
      addon.softmax(x as F32, rows, n, out as F32, log);
    },
    softmaxBackward(y, g, rows, n, out, log) {
      if (f64(y, g, out) || out.length <= TINY) return ref.softmaxBackward(y, g, rows, n, out, log);
      addon.softmaxBackward(y as F32, g as F32, rows, n, out as F32, log);
    },

    layerNorm(x, w, b, rows, n, eps, out, mean, rstd) {
      if (f64(x, w, b, out, mean, rstd) || out.length <= TINY) return ref.layerNorm(x, w, b, rows, n, eps, out, mean, rstd);
      withOut([mean, rstd], ([m, r]) => addon.layerNorm(x as F32, w && oh(w as F32, 0), b && oh(b as F32, 1), rows, n, eps, out as F32, m!, r!));
    },
    layerNormBackward(x, w, mean, rstd, g, rows, n, dx, dw, db) {
      if (f64(x, w, mean, rstd, g, dx, dw, db) || dx.length <= TINY || n <= TINY) return ref.layerNormBackward(x, w, mean, rstd, g, rows, n, dx, dw, db);
      addon.layerNormBackward(x as F32, w as F32 | null, oh(mean as F32, 0), oh(rstd as F32, 1), g as F32, rows, n, dx as F32, dw as F32 | null, db as F32 | null);
    },
    rmsNorm(x, w, rows, n, eps, out, rstd) {
      if (f64(x, w, out, rstd) || out.length <= TINY) return ref.rmsNorm(x, w, rows, n, eps, out, rstd);
      withOut([rstd], ([r]) => addon.rmsNorm(x as F32, w && oh(w as F32, 0), rows, n, eps, out as F32, r!));
    },
    rmsNormBackward(x, w, rstd, g, rows, n, dx, dw) {
      if (f64(x, w, rstd, g, dx, dw) || dx.length <= TINY || n <= TINY) return ref.rmsNormBackward(x, w, rstd, g, rows, n, dx, dw);
      addon.rmsNormBackward(x as F32, w as F32 | null, oh(rstd as F32, 0), g as F32, rows, n, dx as F32, dw as F32 | null);
    },

    embedding(w, idx, dim, out) {
      if (f64(w, out) || out.length <= TINY) return ref.embedding(w, idx, dim, out);
      addon.embedding(oh(w as F32, 0), oh(idx, 0), dim, out as F32);
    },
    embeddingBackward(g, idx, dim, dw) {
      if (f64(g, dw) || dw.length <= TINY || g.length <= TINY) return ref.embeddingBackward(g, idx, dim, dw);
      addon.embeddingBackward(g as F32, oh(idx, 0), dim, dw as F32);
    },

    crossEntropy(x, t, rows, V, ignoreIndex, eps, loss, lse) {
      if (f64(x, loss, lse) || x.length <= TINY) return ref.crossEntropy(x, t, rows, V, ignoreIndex, eps, loss, lse);
      withOut([loss, lse], ([l, s]) => addon.crossEntropy(x as F32, oh(t, 0), rows, V, ignoreIndex, eps, l!, s!));
    },
    crossEntropyBackward(x, t, lse, gRow, rows, V, ignoreIndex, eps, out) {
      if (f64(x, lse, gRow, out) || out.length <= TINY) return ref.crossEntropyBackward(x, t, lse, gRow, rows, V, ignoreIndex, eps, out);
      addon.crossEntropyBackward(x as F32, oh(t, 0), oh(lse as F32, 0), oh(gRow as F32, 1), rows, V, ignoreIndex, eps, out as F32);
    },

    adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2) {
      if (f64(p, g, m, v) || p.length <= TINY) return ref.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
      addon.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
    },
  };
}
