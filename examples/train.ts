import { Trainer, BatchSampler, Linear, ops, tensor, randn, manualSeed, noGrad } from 'shrink-lm';
manualSeed(0);
const x = randn([512, 16]); // a toy task: is the first feature positive?
const y = tensor(Array.from({ length: 512 }, (_, i) => (x.data[i * 16]! > 0 ? 1 : 0)), { dtype: 'int32' });
const model = new Linear(16, 2);
const lossOf = (rows: number[]) => {
  const idx = tensor(rows, { dtype: 'int32' });
  return ops.crossEntropy(model.forward(ops.indexSelect(x, 0, idx)), ops.indexSelect(y, 0, idx));
};
const devAccuracy = () => noGrad(() => model.forward(x).argmax(-1).float().eq(y.float()).mean().item());
const sampler = new BatchSampler(512, 32, { seed: 0 });
const trainer = new Trainer(model, { totalSteps: 200, lr: 5e-2, warmupSteps: 20, maxGradNorm: 1, evalEvery: 50, outDir: 'runs/x', resume: true },
  { lossFn: () => lossOf(sampler.next()), evaluate: () => ({ metric: devAccuracy() }), stateful: { sampler } });
const result = trainer.train(); // checkpoints in runs/x; run it again and it resumes (here: already finished)
console.log(`step ${result.step}, best accuracy ${result.bestMetric}`);
