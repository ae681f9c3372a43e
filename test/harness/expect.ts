/** Assertions on tensors: a failure names the tensor and the worst element (index, got, want, tolerances). */
import { Tensor } from '../../src/index.ts';

export interface Tol {
  atol?: number;
  rtol?: number;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return out;
}

function values(t: Tensor | ArrayLike<number>): { v: ArrayLike<number>; shape: readonly number[] } {
  if (t instanceof Tensor) return { v: t.dtype === 'float64' ? (t.toArray() as Float64Array) : t.toFloat32Array(), shape: t.shape };
  return { v: t, shape: [t.length] };
}

/** |got - want| <= atol + rtol·|want| elementwise (NaN matches NaN, inf matches inf of the same sign). */
export function expectClose(got: Tensor | ArrayLike<number>, want: Tensor | ArrayLike<number>, tol: Tol = {}, name = 'tensor'): void {
  const { atol = 1e-6, rtol = 1e-5 } = tol;
  const g = values(got);
  const w = values(want);
  if (got instanceof Tensor && want instanceof Tensor && got.shape.join(',') !== want.shape.join(','))
    throw new Error(`${name}: shape [${got.shape}] != expected [${want.shape}]`);
  if (g.v.length !== w.v.length) throw new Error(`${name}: ${g.v.length} elements != expected ${w.v.length}`);
  let worst = -1;
  let worstExcess = 0;
  let over = 0;
  for (let i = 0; i < g.v.length; i++) {
    const a = g.v[i]!;
    const b = w.v[i]!;
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    if (a === b) continue;
    const d = Math.abs(a - b);
    const lim = atol + rtol * Math.abs(b);
    if (!(d <= lim)) {
      over++;
      const excess = Number.isNaN(d) ? Infinity : d - lim;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (over > 0) {
    const a = g.v[worst]!;
    const b = w.v[worst]!;
    throw new Error(
      `${name} [${g.shape}]: max|d| ${Math.abs(a - b).toExponential(2)} at [${unravel(worst, g.shape)}] (got ${a}, want ${b}; atol ${atol} rtol ${rtol}), ${over}/${g.v.length} over`,
    );
  }
}

export function expectEqual(got: Tensor | ArrayLike<number>, want: Tensor | ArrayLike<number>, name = 'tensor'): void {
  expectClose(got, want, { atol: 0, rtol: 0 }, name);
}

/** Assert fn throws an Error whose message contains every given fragment. */
export function expectThrows(fn: () => unknown, ...fragments: (string | RegExp)[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof Error)) throw new Error(`expected an error containing ${fragments.map(String).join(', ')}, but nothing was thrown`);
  for (const f of fragments)
    if (typeof f === 'string' ? !err.message.includes(f) : !f.test(err.message))
      throw new Error(`error message "${err.message}" does not contain ${String(f)}`);
}
