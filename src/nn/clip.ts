/** Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_). */
import type { Tensor } from '../tensor/tensor.ts';

/**
 * Scale every gradient in place by maxNorm / (total + 1e-6) when the global norm exceeds maxNorm. Returns the
 * total norm before clipping. Each leaf owns its grad tensor (the autograd engine copies on first accumulation),
 * so scaling in place touches no other tensor.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, normType = 2): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be positive, got ${maxNorm}`);
  const grads: Tensor[] = [];
  for (const p of params) if (p.grad) grads.push(p.grad);
  if (grads.length === 0) return 0;
  let total = 0;
  for (const g of grads) {
    const c = g.contiguous();
    const d = c.data;
    const lo = c.offset;
    const hi = lo + c.numel;
    if (normType === 2) for (let i = lo; i < hi; i++) total += d[i]! * d[i]!;
    else if (normType === Infinity) for (let i = lo; i < hi; i++) total = Math.max(total, Math.abs(d[i]!));
    else for (let i = lo; i < hi; i++) total += Math.abs(d[i]!) ** normType;
  }
  if (normType !== Infinity) total = total ** (1 / normType);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1)
    for (const g of grads) {
      if (!g.isContiguous()) throw new Error('clipGradNorm: gradients must be contiguous');
      const d = g.data;
      const hi = g.offset + g.numel;
      for (let i = g.offset; i < hi; i++) d[i]! *= coef;
    }
  return total;
}
