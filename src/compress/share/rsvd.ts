/**
 * Truncated SVD for large layers: the randomized range finder with power iterations (Halko, Martinsson & Tropp
 * 2011, Algorithms 4.4 and 5.1 — what sklearn's `randomized_svd` and torch's `svd_lowrank` do), for layers where the
 * exact one-sided Jacobi SVD (linalg.ts) would take minutes to hours.
 *
 * For W [m, n] and target rank r, with ℓ = r + oversample columns:
 * 1. Y = W·Ω for a Gaussian Ω [n, ℓ]; Q = orth(Y);
 * 2. q power iterations, re-orthonormalized each half step: Q ← orth(W·orth(Wᵀ·Q)) (sharpens the spectrum, so the
 *    range of Q holds the top-r singular directions even when the singular values decay slowly);
 * 3. B = Qᵀ·W [ℓ, n]; the top r eigenpairs (λ_j, u_j) of B·Bᵀ [ℓ, ℓ] give σ_j = √λ_j, U_r = Q·[u_1 … u_r] and
 *    V_rᵀ = Σ_r⁻¹·[u_1 … u_r]ᵀ·B.
 *
 * The large products run as float32 tensor matmuls (the native GEMM); the ℓ×ℓ work (Gram matrices, Cholesky, the
 * symmetric eigensolver) in float64 here. orth() is CholeskyQR2: R from the Cholesky factor of YᵀY, Q = Y·R⁻¹, done
 * twice so Q is orthonormal to float32 precision. Because W_r = Q·U_B·U_Bᵀ·Qᵀ·W is an orthogonal projection of W,
 * ‖W − W_r‖²_F = ‖W‖²_F − Σ_{j≤r} σ_j² exactly, which gives the weight error without forming the residual.
 */
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { Generator } from '../../tensor/random.ts';
import { cholesky } from './linalg.ts';

export interface RandomizedSvdOptions {
  /** Extra columns beyond the rank (default 10, as sklearn). */
  oversample?: number;
  /** Power iterations (default 4, sklearn's n_iter='auto' for ranks ≥ 10 % of the smaller side). */
  powerIters?: number;
  seed?: number;
}

export interface TruncatedSvd {
  rank: number;
  /** [m, r] row-major: U_r·Σ_r. */
  second: Float64Array;
  /** [r, n] row-major: V_rᵀ. */
  first: Float64Array;
  /** The top r singular values (descending). */
  S: Float64Array;
  /** ‖W − second·first‖_F / ‖W‖_F (from the projection identity). */
  relError: number;
}

const f64 = (t: Tensor) => Float64Array.from(t.contiguous().toFloat32Array());
const f32t = (a: Float64Array, shape: number[]) => new Tensor(Float32Array.from(a), shape, 'float32');

/** Inverse of an upper-triangular [n, n] matrix R (row-major). */
function invUpper(R: Float64Array, n: number): Float64Array {
  const X = new Float64Array(n * n);
  for (let j = n - 1; j >= 0; j--) {
    X[j * n + j] = 1 / R[j * n + j]!;
    for (let i = j - 1; i >= 0; i--) {
      let s = 0;
      for (let k = i + 1; k <= j; k++) s += R[i * n + k]! * X[k * n + j]!;
      X[i * n + j] = -s / R[i * n + i]!;
    }
  }
  return X;
}

/** Gram matrix YᵀY [ℓ, ℓ] in float64 from the native float32 product, symmetrized. */
function gram(Y: Tensor): Float64Array {
  const l = Y.shape[1]!;
  const G = f64(Y.t().matmul(Y));
  for (let i = 0; i < l; i++) for (let j = 0; j < i; j++) G[i * l + j] = G[j * l + i] = 0.5 * (G[i * l + j]! + G[j * l + i]!);
  return G;
}

/** One CholeskyQR step: Q = Y·R⁻¹ with RᵀR = YᵀY (shifted when YᵀY is numerically singular). */
function cholQr(Y: Tensor): Tensor {
  const l = Y.shape[1]!;
  const G = gram(Y);
  let tr = 0;
  for (let i = 0; i < l; i++) tr += G[i * l + i]!;
  let L = cholesky(G, l);
  // rank-deficient or badly conditioned Y: a shift of the size of float32 rounding makes G definite
  for (let shift = 1e-6 * (tr / l || 1); !L; shift *= 10) {
    const H = Float64Array.from(G);
    for (let i = 0; i < l; i++) H[i * l + i] += shift;
    L = cholesky(H, l);
  }
  const R = new Float64Array(l * l);
  for (let i = 0; i < l; i++) for (let j = 0; j <= i; j++) R[j * l + i] = L[i * l + j]!;
  return Y.matmul(f32t(invUpper(R, l), [l, l]));
}

/** An orthonormal basis of Y's columns (CholeskyQR2). */
function orth(Y: Tensor): Tensor {
  return cholQr(cholQr(Y));
}

/**
 * Eigen-decomposition of a symmetric [n, n] matrix (row-major): Householder reduction to tridiagonal form and the
 * implicit QL algorithm (the EISPACK tred2 / tql2 pair). Returns eigenvalues descending and eigenvectors as the
 * columns of V [n, n].
 */
export function symEig(A: Float64Array, n: number): { values: Float64Array; V: Float64Array } {
  const V = Float64Array.from(A);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const at = (i: number, j: number) => V[i * n + j]!;
  const set = (i: number, j: number, x: number) => {
    V[i * n + j] = x;
  };
  // tred2
  for (let j = 0; j < n; j++) d[j] = at(n - 1, j);
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = at(i - 1, j);
        set(i, j, 0);
        set(j, i, 0);
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        set(j, i, f);
        g = e[j]! + at(j, j) * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += at(k, j) * d[k]!;
          e[k] += at(k, j) * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) V[k * n + j] -= f * e[k]! + g * d[k]!;
        d[j] = at(i - 1, j);
        set(i, j, 0);
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    set(n - 1, i, at(i, i));
    set(i, i, 1);
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = at(k, i + 1) / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += at(k, i + 1) * at(k, j);
        for (let k = 0; k <= i; k++) V[k * n + j] -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) set(k, i + 1, 0);
  }
  for (let j = 0; j < n; j++) {
    d[j] = at(n - 1, j);
    set(n - 1, j, 0);
  }
  set(n - 1, n - 1, 1);
  e[0] = 0;
  // tql2, on the transpose (eigenvector k is row k of T: the rotations below touch two contiguous rows)
  const T = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) T[c * n + r] = V[r * n + c]!;
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      for (let iter = 0; ; iter++) {
        if (iter > 60) throw new Error('symEig: the QL iteration did not converge');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          const a = i * n;
          const b = a + n;
          for (let k = 0; k < n; k++) {
            h = T[b + k]!;
            T[b + k] = s * T[a + k]! + c * h;
            T[a + k] = c * T[a + k]! - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
        if (!(Math.abs(e[l]!) > eps * tst1)) break;
      }
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  // sort descending
  const order = [...d.keys()].sort((a, b) => d[b]! - d[a]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  const out = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) out[r * n + c] = T[order[c]! * n + r]!;
  return { values, V: out };
}

/** The rank-r truncated SVD of W [m, n] (float32, row-major) by the randomized range finder (see the file comment). */
export function randomizedSvd(W: Float32Array, m: number, n: number, rank: number, o: RandomizedSvdOptions = {}): TruncatedSvd {
  const p = Math.min(m, n);
  if (!(Number.isInteger(rank) && rank >= 1 && rank <= p)) throw new Error(`randomizedSvd: rank must be an integer in [1, ${p}], got ${rank}`);
  const l = Math.min(p, rank + (o.oversample ?? 10));
  const q = o.powerIters ?? 4;
  return noGrad(() => {
    const Wt = new Tensor(W, [m, n], 'float32');
    const WT = Wt.t().contiguous();
    const g = new Generator(o.seed ?? 0);
    const omega = new Float32Array(n * l);
    for (let i = 0; i < omega.length; i++) omega[i] = g.normal();
    let Q = orth(Wt.matmul(new Tensor(omega, [n, l], 'float32')));
    for (let i = 0; i < q; i++) Q = orth(Wt.matmul(orth(WT.matmul(Q))));
    const Bt = WT.matmul(Q); // [n, ℓ] = (QᵀW)ᵀ
    const { values, V: UB } = symEig(gram(Bt), l);
    const S = new Float64Array(rank);
    for (let j = 0; j < rank; j++) S[j] = Math.sqrt(Math.max(values[j]!, 0));
    const Ur = new Float64Array(l * rank);
    for (let i = 0; i < l; i++) for (let j = 0; j < rank; j++) Ur[i * rank + j] = UB[i * l + j]!;
    const Urt = f32t(Ur, [l, rank]);
    const U = f64(Q.matmul(Urt)); // [m, r]
    const VS = f64(Bt.matmul(Urt)); // [n, r] = Bᵀ·U_r = V_r·Σ_r
    const second = new Float64Array(m * rank);
    for (let i = 0; i < m; i++) for (let j = 0; j < rank; j++) second[i * rank + j] = U[i * rank + j]! * S[j]!;
    const first = new Float64Array(rank * n);
    for (let j = 0; j < rank; j++) {
      const inv = S[j]! > 0 ? 1 / S[j]! : 0;
      for (let k = 0; k < n; k++) first[j * n + k] = VS[k * rank + j]! * inv;
    }
    let total = 0;
    for (let i = 0; i < W.length; i++) total += W[i]! * W[i]!;
    let kept = 0;
    for (let j = 0; j < rank; j++) kept += S[j]! ** 2;
    return { rank, second, first, S, relError: total > 0 ? Math.sqrt(Math.max(total - kept, 0) / total) : 0 };
  });
}
