/** Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_). */
import type { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';

/**
 * The norm of all gradients taken together (as one vector), accumulated in float64. Parameters without a grad
 * are skipped. normType: any p > 0, or Infinity (max |g|).
 */
export function gradNorm(params: Iterable<Tensor>, normType = 2): number {
  return normOf(uniqueGrads(params), normType);
}

/** The distinct gradient tensors of params (a parameter listed twice, or a shared grad, counts once). */
function uniqueGrads(params: Iterable<Tensor>): Tensor[] {
  const out = new Set<Tensor>();
  for (const p of params) if (p.grad) out.add(p.grad);
  return [...out];
}

function normOf(grads: Tensor[], normType: number): number {
  if (!(normType > 0)) throw new Error(`clipGradNorm: normType must be > 0 or Infinity, got ${normType}`);
  let total = 0;
  for (const g of grads) {
    if (g.dtype !== 'float32' && g.dtype !== 'float64') throw new Error(`clipGradNorm: gradients must be float32 or float64, got ${g.dtype}`);
    const c = g.contiguous();
    const d = c.data;
    const lo = c.offset;
    const hi = lo + c.numel;
    if (normType === 2) for (let i = lo; i < hi; i++) total += d[i]! * d[i]!;
    else if (normType === 1) for (let i = lo; i < hi; i++) total += Math.abs(d[i]!);
    else if (normType === Infinity) for (let i = lo; i < hi; i++) total = Math.max(total, Math.abs(d[i]!));
    else for (let i = lo; i < hi; i++) total += Math.abs(d[i]!) ** normType;
  }
  return normType === Infinity || normType === 1 ? total : total ** (1 / normType);
}

/**
 * Scale every gradient in place by maxNorm / (total + 1e-6) when the global norm `total` exceeds maxNorm, and
 * return `total` (the norm before clipping), as torch.nn.utils.clip_grad_norm_. Parameters without a grad are
 * skipped, and a gradient is counted and scaled once even if listed twice. The autograd engine gives every leaf
 * a gradient tensor of its own (it copies on first accumulation), so scaling in place touches no other tensor.
 * A NaN total leaves the gradients as they are (torch would multiply them by NaN); check the returned norm.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, normType = 2): number {
  if (!(maxNorm >= 0)) throw new Error(`clipGradNorm: maxNorm must be non-negative, got ${maxNorm}`);
  const grads = uniqueGrads(params);
  const total = normOf(grads, normType);
  const coef = maxNorm / (total + 1e-6);
  if (!(coef < 1)) return total;
  for (const g of grads) {
    if (g.isContiguous()) {
      const d = g.data;
      const hi = g.offset + g.numel;
      for (let i = g.offset; i < hi; i++) d[i]! *= coef;
    } else noGrad(() => g.copy_(g.mul(coef)));
  }
  return total;
}
