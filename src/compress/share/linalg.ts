/**
 * Dense float64 linear algebra for the parameter-sharing methods (there is no LAPACK here): a thin SVD by one-sided
 * Jacobi (Hestenes), Cholesky, and triangular solves. Matrices are row-major Float64Arrays.
 *
 * One-sided Jacobi orthogonalizes the columns of A (m ≥ n; a wide matrix is transposed first) by plane rotations,
 * accumulating them in V, until every pair of columns is orthogonal to within m·ε relative to their norms; then
 * σ_j = ‖a_j‖, u_j = a_j / σ_j. It is accurate to roughly machine precision relative to σ_max (no squaring of the
 * condition number as with the eigenvectors of AᵀA), and costs O(m·n²) per sweep, ~6–12 sweeps: fast enough for
 * layers up to a few hundred features; a 768×3072 layer takes tens of seconds.
 */

export interface Svd {
  /** Rows and columns of the decomposed matrix; p = min(m, n). */
  m: number;
  n: number;
  p: number;
  /** Left singular vectors, [m, p] row-major (column j is u_j). */
  U: Float64Array;
  /** Singular values, descending, [p]. */
  S: Float64Array;
  /** Right singular vectors, [n, p] row-major (column j is v_j): A = U·diag(S)·Vᵀ. */
  V: Float64Array;
  /** Jacobi sweeps used. */
  sweeps: number;
}

/** Transpose of a row-major [m, n] matrix. */
export function transpose(a: Float64Array, m: number, n: number): Float64Array {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
}

/** Row-major product [m, k]·[k, n]. */
export function matmul64(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let l = 0; l < k; l++) {
      const x = a[i * k + l]!;
      if (x === 0) continue;
      const bl = l * n;
      for (let j = 0; j < n; j++) c[ci + j] += x * b[bl + j]!;
    }
  }
  return c;
}

/** Thin SVD of a row-major [m, n] matrix (see the file comment). */
export function svd(a: ArrayLike<number>, m: number, n: number, opts: { maxSweeps?: number } = {}): Svd {
  if (!(Number.isInteger(m) && Number.isInteger(n) && m >= 1 && n >= 1)) throw new Error(`svd: bad shape [${m}, ${n}]`);
  if (a.length !== m * n) throw new Error(`svd: expected ${m}×${n} = ${m * n} values, got ${a.length}`);
  if (m < n) {
    // A = U S Vᵀ ⇔ Aᵀ = V S Uᵀ
    const t = svd(transpose(Float64Array.from(a), m, n), n, m, opts);
    return { m, n, p: t.p, U: t.V, S: t.S, V: t.U, sweeps: t.sweeps };
  }
  const p = n;
  // columns of A (each contiguous) and of V
  const cols: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const c = new Float64Array(m);
    for (let i = 0; i < m; i++) c[i] = a[i * n + j]!;
    cols.push(c);
  }
  const vcols: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const v = new Float64Array(n);
    v[j] = 1;
    vcols.push(v);
  }
  const tol = Math.max(m, 8) * 2.220446049250313e-16;
  const maxSweeps = opts.maxSweeps ?? 80;
  let sweeps = 0;
  for (; sweeps < maxSweeps; ) {
    sweeps++;
    let rotated = false;
    for (let pI = 0; pI < n - 1; pI++) {
      const ap = cols[pI]!;
      for (let q = pI + 1; q < n; q++) {
        const aq = cols[q]!;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const x = ap[i]!;
          const y = aq[i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = ap[i]!;
          const y = aq[i]!;
          ap[i] = c * x - s * y;
          aq[i] = s * x + c * y;
        }
        const vp = vcols[pI]!;
        const vq = vcols[q]!;
        for (let i = 0; i < n; i++) {
          const x = vp[i]!;
          const y = vq[i]!;
          vp[i] = c * x - s * y;
          vq[i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = cols.map((c) => Math.sqrt(c.reduce((acc, x) => acc + x * x, 0)));
  const order = norms.map((_, j) => j).sort((x, y) => norms[y]! - norms[x]! || x - y);
  const S = new Float64Array(p);
  const U = new Float64Array(m * p);
  const V = new Float64Array(n * p);
  const smax = norms[order[0]!]!;
  const uCols: Float64Array[] = [];
  order.forEach((j, k) => {
    S[k] = norms[j]!;
    const u = new Float64Array(m);
    if (norms[j]! > smax * 1e-13 && norms[j]! > 0) for (let i = 0; i < m; i++) u[i] = cols[j]![i]! / norms[j]!;
    uCols.push(u);
    for (let i = 0; i < n; i++) V[i * p + k] = vcols[j]![i]!;
  });
  // a (numerically) zero singular value leaves its u undetermined: complete U to orthonormal columns
  for (let k = 0; k < p; k++) {
    if (S[k]! > smax * 1e-13 && S[k]! > 0) continue;
    S[k] = S[k]!; // kept as computed (tiny)
    completeColumn(uCols, k, m);
  }
  uCols.forEach((u, k) => {
    for (let i = 0; i < m; i++) U[i * p + k] = u[i]!;
  });
  return { m, n, p, U, S, V, sweeps };
}

/** Replace uCols[k] by a unit vector orthogonal to every other non-zero column (Gram–Schmidt on basis vectors). */
function completeColumn(uCols: Float64Array[], k: number, m: number): void {
  for (let e = 0; e < m; e++) {
    const v = new Float64Array(m);
    v[e] = 1;
    for (let pass = 0; pass < 2; pass++)
      for (let j = 0; j < uCols.length; j++) {
        if (j === k) continue;
        const u = uCols[j]!;
        let d = 0;
        for (let i = 0; i < m; i++) d += u[i]! * v[i]!;
        if (d !== 0) for (let i = 0; i < m; i++) v[i] -= d * u[i]!;
      }
    const nv = Math.sqrt(v.reduce((acc, x) => acc + x * x, 0));
    if (nv > 1e-8) {
      for (let i = 0; i < m; i++) v[i] /= nv;
      uCols[k] = v;
      return;
    }
  }
}

/** Lower Cholesky factor L of a symmetric positive-definite [n, n] matrix (A = L·Lᵀ), or null if it is not SPD. */
export function cholesky(A: Float64Array, n: number): Float64Array | null {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j]!;
    for (let k = 0; k < j; k++) d -= L[j * n + k]! ** 2;
    if (!(d > 0)) return null;
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j]!;
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      L[i * n + j] = s / ljj;
    }
  }
  return L;
}

/**
 * X·L⁻¹ for a row-major X [r, n] and lower-triangular L [n, n]: solves Y·L = X row by row (back substitution from
 * the last column, since (Y·L)_j = Σ_{i ≥ j} y_i L_ij).
 */
export function solveRightLower(X: Float64Array, r: number, L: Float64Array, n: number): Float64Array {
  const Y = new Float64Array(r * n);
  for (let row = 0; row < r; row++) {
    const x = row * n;
    for (let j = n - 1; j >= 0; j--) {
      let s = X[x + j]!;
      for (let i = j + 1; i < n; i++) s -= Y[x + i]! * L[i * n + j]!;
      Y[x + j] = s / L[j * n + j]!;
    }
  }
  return Y;
}
