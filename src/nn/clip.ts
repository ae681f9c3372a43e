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
    const d = g.contiguous().data;
    const lo = g.isContiguous() ? g.offset : 0;
    for (let i = lo; i < lo + g.numel; i++) {
      const a = Math.abs(d[i]!);
      total = normType === Infinity ? Math.max(total, a) : total + a ** normType;
    }
  }
  if (normType !== Infinity) total = total ** (1 / normType);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1)
    for (const g of grads) {
      if (!g.isContiguous()) throw new Error('clipGradNorm: gradients must be contiguous');
      const d = g.data;
      for (let i = g.offset; i < g.offset + g.numel; i++) d[i]! *= coef;
    }
  return total;
}
