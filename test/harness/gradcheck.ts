/**
 * Float64 finite-difference gradient check (on the ref backend: float64 tensors always run there).
 * L = Σ f(inputs) · R with a fixed random R, so every output element's gradient is exercised. The analytic
 * gradient from backward() must match the central difference (L(x+h) − L(x−h)) / 2h for every input element.
 */
import { Generator, Tensor, noGrad } from '../../src/index.ts';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
}

export function gradcheck(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): void {
  const { eps = 1e-6, atol = 1e-6, rtol = 1e-4 } = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as GradcheckOptions;
  for (const x of inputs) if (x.requiresGrad && x.dtype !== 'float64') throw new Error(`gradcheck ${name}: differentiable inputs must be float64`);
  const out0 = fn(...inputs);
  const gen = new Generator(1234);
  const R = Tensor.randn(out0.shape, { dtype: 'float64', generator: gen });
  const loss = (): number => noGrad(() => fn(...inputs).mul(R).sum().item());
  for (const x of inputs) x.grad = null;
  const L = out0.mul(R).sum();
  L.backward();
  for (const [k, x] of inputs.entries()) {
    if (!x.requiresGrad) continue;
    if (!x.isContiguous() || x.offset !== 0) throw new Error(`gradcheck ${name}: input ${k} must be contiguous`);
    const analytic = x.grad ? (x.grad.toArray() as Float64Array) : new Float64Array(x.numel);
    const d = x.data as Float64Array;
    for (let i = 0; i < x.numel; i++) {
      const orig = d[i]!;
      d[i] = orig + eps;
      const lp = loss();
      d[i] = orig - eps;
      const lm = loss();
      d[i] = orig;
      const numeric = (lp - lm) / (2 * eps);
      const a = analytic[i]!;
      if (!(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric)))
        throw new Error(`gradcheck ${name}: input ${k} [${x.shape}] element ${i}: analytic ${a}, numeric ${numeric} (|d| ${Math.abs(a - numeric).toExponential(2)})`);
    }
  }
}

/** Random float64 leaf that requires grad; values uniform in [lo, hi). */
export function f64(shape: number[], gen: Generator, lo = -1, hi = 1): Tensor {
  const t = Tensor.rand(shape, { dtype: 'float64', generator: gen });
  const d = t.data as Float64Array;
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * d[i]!;
  return t.requiresGrad_();
}
