/** Hugging Face `hidden_act` / `activation_function` names → functions (transformers' ACT2FN subset). */
import type { Tensor } from '../tensor/tensor.ts';

export const ACT2FN: Record<string, (x: Tensor) => Tensor> = {
  gelu: (x) => x.gelu(), // erf form
  gelu_new: (x) => x.gelu('tanh'),
  gelu_pytorch_tanh: (x) => x.gelu('tanh'),
  relu: (x) => x.relu(),
  silu: (x) => x.silu(),
  swish: (x) => x.silu(),
  tanh: (x) => x.tanh(),
};

export function activation(name: string, where: string): (x: Tensor) => Tensor {
  const f = ACT2FN[name];
  if (!f) throw new Error(`${where}: unsupported activation '${name}' (supported: ${Object.keys(ACT2FN).join(', ')})`);
  return f;
}
