import { tensor, randn, manualSeed, ops, noGrad } from 'shrink-lm';

manualSeed(0);
const x = randn([32, 64]);
const w = randn([128, 64], { requiresGrad: true });
const b = randn([128], { requiresGrad: true });
const target = tensor(Array.from({ length: 32 }, (_, i) => i % 128), { dtype: 'int32' });

const logits = ops.linear(x, w, b).gelu();            // (32, 128)
const loss = ops.crossEntropy(logits, target, { labelSmoothing: 0.1 });
loss.backward();                                       // w.grad, b.grad
noGrad(() => console.log(loss.item(), w.grad!.norm().item()));
