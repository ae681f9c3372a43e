/**
 * The `ref` backend: every kernel in plain TypeScript. It is the spec the native kernels are tested against, the
 * fallback when the addon is missing, and the float64 engine of gradient checks. Written to be obviously right
 * first; sums and dot products accumulate in float64.
 */
import type { Backend, BinaryOp, FArray, MatmulArgs, ReduceOp, UnaryOp, View } from '../backend.ts';
import { binaryFn, unaryDeriv, unaryFn } from './math.ts';

/** Offsets of every element of `shape` (row-major order) inside a strided view. */
export function stridedOffsets(shape: readonly number[], strides: readonly number[], offset: number): Int32Array | null {
  let n = 1;
  for (const s of shape) n *= s;
  // contiguous row-major view: no table needed
  let expect = 1;
  let contiguous = true;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d]! !== 1 && strides[d] !== expect) {
      contiguous = false;
      break;
    }
    expect *= shape[d]!;
  }
  if (contiguous) return null;
  const out = new Int32Array(n);
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let off = offset;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      off += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      off -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export const refBackend: Backend = {
  name: 'ref',

  unary(op: UnaryOp, x: View, shape: readonly number[], out: FArray, alpha: number, beta: number) {
    const f = unaryFn(op, alpha, beta);
    const n = numel(shape);
    const offs = stridedOffsets(shape, x.strides, x.offset);
    const d = x.data;
    if (offs === null) for (let i = 0, o = x.offset; i < n; i++) out[i] = f(d[o + i]!);
    else for (let i = 0; i < n; i++) out[i] = f(d[offs[i]!]!);
  },

  unaryBackward(op: UnaryOp, x: FArray, y: FArray, g: FArray, out: FArray, alpha: number, beta: number) {
    const df = unaryDeriv(op, alpha, beta);
    for (let i = 0; i < out.length; i++) out[i] = g[i]! * df(x[i]!, y[i]!);
  },

  binary(op: BinaryOp, a: View, b: View, shape: readonly number[], out: FArray) {
    const f = binaryFn(op);
    const n = numel(shape);
    const oa = stridedOffsets(shape, a.strides, a.offset);
    const ob = stridedOffsets(shape, b.strides, b.offset);
    const A = a.data;
    const B = b.data;
    for (let i = 0; i < n; i++) out[i] = f(A[oa ? oa[i]! : a.offset + i]!, B[ob ? ob[i]! : b.offset + i]!);
  },

  where(cond: View, a: View, b: View, shape: readonly number[], out: FArray) {
    const n = numel(shape);
    const oc = stridedOffsets(shape, cond.strides, cond.offset);
    const oa = stridedOffsets(shape, a.strides, a.offset);
    const ob = stridedOffsets(shape, b.strides, b.offset);
    for (let i = 0; i < n; i++) {
      const c = cond.data[oc ? oc[i]! : cond.offset + i]!;
      out[i] = c !== 0 ? a.data[oa ? oa[i]! : a.offset + i]! : b.data[ob ? ob[i]! : b.offset + i]!;
    }
  },

  reduce(op: ReduceOp, x: FArray, outer: number, r: number, inner: number, out: FArray, idx: Int32Array | null) {
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * r * inner + i;
        let k = 0;
        if (op === 'sum' || op === 'prod') {
          let acc = op === 'sum' ? 0 : 1;
          for (let j = 0; j < r; j++) acc = op === 'sum' ? acc + x[base + j * inner]! : acc * x[base + j * inner]!;
          out[o * inner + i] = acc;
          continue;
        }
        let best = r > 0 ? x[base]! : op === 'max' ? -Infinity : Infinity;
        for (let j = 1; j < r; j++) {
          const v = x[base + j * inner]!;
          if (best !== best) break; // NaN propagates, first NaN wins
          if (v !== v || (op === 'max' ? v > best : v < best)) {
            best = v;
            k = j;
          }
        }
        out[o * inner + i] = best;
        if (idx) idx[o * inner + i] = k;
      }
    }
  },

  matmul(p: MatmulArgs) {
    const { a, b, out, batch, M, N, K, lda, ldb, transA, transB } = p;
    const acc = new Float64Array(N);
    for (let t = 0; t < batch; t++) {
      const ao = p.aOffsets[t]!;
      const bo = p.bOffsets[t]!;
      const co = t * M * N;
      for (let m = 0; m < M; m++) {
        acc.fill(0);
        for (let k = 0; k < K; k++) {
          const av = transA ? a[ao + k * lda + m]! : a[ao + m * lda + k]!;
          if (av === 0) continue;
          if (transB) for (let n = 0; n < N; n++) acc[n]! += av * b[bo + n * ldb + k]!;
          else {
            const row = bo + k * ldb;
            for (let n = 0; n < N; n++) acc[n]! += av * b[row + n]!;
          }
        }
        const c = co + m * N;
        if (p.accumulate) for (let n = 0; n < N; n++) out[c + n]! += acc[n]!;
        else for (let n = 0; n < N; n++) out[c + n] = acc[n]!;
      }
    }
  },

  softmax(x: FArray, rows: number, n: number, out: FArray, log: boolean) {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let mx = -Infinity;
      for (let i = 0; i < n; i++) if (x[o + i]! > mx) mx = x[o + i]!;
      if (mx === -Infinity) mx = 0; // an all -inf row then gives 0/0 = NaN, as torch does
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(x[o + i]! - mx);
      if (log) {
        const ls = Math.log(s) + mx;
        for (let i = 0; i < n; i++) out[o + i] = x[o + i]! - ls;
      } else for (let i = 0; i < n; i++) out[o + i] = Math.exp(x[o + i]! - mx) / s;
    }
  },

  softmaxBackward(y: FArray, g: FArray, rows: number, n: number, out: FArray, log: boolean) {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let s = 0;
      if (log) {
        // d logsoftmax: g - softmax * sum(g)
        for (let i = 0; i < n; i++) s += g[o + i]!;
        for (let i = 0; i < n; i++) out[o + i] = g[o + i]! - Math.exp(y[o + i]!) * s;
      } else {
        // d softmax: y * (g - sum(g*y))
        for (let i = 0; i < n; i++) s += g[o + i]! * y[o + i]!;
        for (let i = 0; i < n; i++) out[o + i] = y[o + i]! * (g[o + i]! - s);
      }
    }
  },

  layerNorm(x, weight, bias, rows, n, eps, out, mean, rstd) {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let s = 0;
      for (let i = 0; i < n; i++) s += x[o + i]!;
      const mu = s / n;
      let v = 0;
      for (let i = 0; i < n; i++) v += (x[o + i]! - mu) ** 2;
      const rs = 1 / Math.sqrt(v / n + eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (let i = 0; i < n; i++) {
        let y = (x[o + i]! - mu) * rs;
        if (weight) y *= weight[i]!;
        if (bias) y += bias[i]!;
        out[o + i] = y;
      }
    }
  },

  layerNormBackward(x, weight, mean, rstd, g, rows, n, dx, dWeight, dBias) {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      const mu = mean[r]!;
      const rs = rstd[r]!;
      let sumD = 0;
      let sumDX = 0;
      for (let i = 0; i < n; i++) {
        const xh = (x[o + i]! - mu) * rs;
        const d = g[o + i]! * (weight ? weight[i]! : 1);
        sumD += d;
        sumDX += d * xh;
        if (dWeight) dWeight[i]! += g[o + i]! * xh;
        if (dBias) dBias[i]! += g[o + i]!;
      }
      const mD = sumD / n;
      const mDX = sumDX / n;
      for (let i = 0; i < n; i++) {
        const xh = (x[o + i]! - mu) * rs;
        const d = g[o + i]! * (weight ? weight[i]! : 1);
        dx[o + i] = rs * (d - mD - xh * mDX);
      }
    }
  },

  rmsNorm(x, weight, rows, n, eps, out, rstd) {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let s = 0;
      for (let i = 0; i < n; i++) s += x[o + i]! * x[o + i]!;
      const rs = 1 / Math.sqrt(s / n + eps);
      rstd[r] = rs;
      for (let i = 0; i < n; i++) out[o + i] = x[o + i]! * rs * (weight ? weight[i]! : 1);
    }
  },

  rmsNormBackward(x, weight, rstd, g, rows, n, dx, dWeight) {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      const rs = rstd[r]!;
      let dot = 0;
      for (let i = 0; i < n; i++) {
        dot += g[o + i]! * (weight ? weight[i]! : 1) * x[o + i]!;
        if (dWeight) dWeight[i]! += g[o + i]! * x[o + i]! * rs;
      }
      const c = (rs * rs * dot) / n;
      for (let i = 0; i < n; i++) dx[o + i] = rs * (g[o + i]! * (weight ? weight[i]! : 1) - x[o + i]! * c);
    }
  },

  embedding(weight, idx, dim, out) {
    for (let i = 0; i < idx.length; i++) {
      const src = idx[i]! * dim;
      for (let j = 0; j < dim; j++) out[i * dim + j] = weight[src + j]!;
    }
  },

  embeddingBackward(g, idx, dim, dWeight) {
    for (let i = 0; i < idx.length; i++) {
      const dst = idx[i]! * dim;
      for (let j = 0; j < dim; j++) dWeight[dst + j]! += g[i * dim + j]!;
    }
  },

  crossEntropy(logits, target, rows, V, ignoreIndex, eps, loss, lse) {
    for (let r = 0; r < rows; r++) {
      const o = r * V;
      let mx = -Infinity;
      for (let i = 0; i < V; i++) if (logits[o + i]! > mx) mx = logits[o + i]!;
      let s = 0;
      let sx = 0;
      for (let i = 0; i < V; i++) {
        s += Math.exp(logits[o + i]! - mx);
        sx += logits[o + i]!;
      }
      const l = Math.log(s) + mx;
      lse[r] = l;
      const t = target[r]!;
      if (t === ignoreIndex) loss[r] = 0;
      else loss[r] = (1 - eps) * (l - logits[o + t]!) + (eps > 0 ? eps * (l - sx / V) : 0);
    }
  },

  crossEntropyBackward(logits, target, lse, gRow, rows, V, ignoreIndex, eps, out) {
    for (let r = 0; r < rows; r++) {
      const o = r * V;
      const t = target[r]!;
      if (t === ignoreIndex) {
        for (let i = 0; i < V; i++) out[o + i] = 0;
        continue;
      }
      const gr = gRow[r]!;
      const l = lse[r]!;
      for (let i = 0; i < V; i++) out[o + i] = gr * (Math.exp(logits[o + i]! - l) - eps / V - (i === t ? 1 - eps : 0));
    }
  },

  adamw(p, g, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2) {
    const decay = 1 - lr * weightDecay;
    const sbc2 = Math.sqrt(bc2);
    const step = lr / bc1;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]!;
      const mi = beta1 * m[i]! + (1 - beta1) * gi;
      const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i]! * decay - (step * mi) / (Math.sqrt(vi) / sbc2 + eps);
    }
  },

  dropout(x, out, state, threshold, scale) {
    // xoshiro128** exactly as Generator.nextU32 (src/tensor/random.ts)
    let s0 = state[0]! >>> 0, s1 = state[1]! >>> 0, s2 = state[2]! >>> 0, s3 = state[3]! >>> 0;
    const sc = out instanceof Float32Array ? Math.fround(scale) : scale;
    for (let i = 0; i < out.length; i++) {
      const a = Math.imul(s1, 5);
      const r = Math.imul((a << 7) | (a >>> 25), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      out[i] = r >= threshold ? x[i]! * sc : 0;
    }
    state[0] = s0;
    state[1] = s1;
    state[2] = s2;
    state[3] = s3;
  },
};
