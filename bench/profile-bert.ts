/**
 * node --import tsx bench/profile-bert.ts: where a BERT-base forward (batch 1 × 128, 1 thread, random weights) spends
 * its time, per op (profileOps: calls, self and total ms; best of 5 after 2 warm-ups), fp32 and int8-dynamic.
 * int8-dynamic Linear layers call the native int8 GEMM outside the op registry: their time shows as "outside ops".
 */
import { BertModel, Tensor, bertConfig, noGrad, setNumThreads } from '../src/index.ts';
import { profileOps } from '../src/tensor/autograd.ts';
import { quantizeModel } from '../src/compress/quant/apply.ts';
setNumThreads(1);
const cfg = bertConfig({ hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072 });
const ids = Tensor.randint(1000, 30000, [1, 128]);
const m = new BertModel(cfg).eval();
const q = new BertModel(cfg).eval(); q.loadStateDict(m.stateDict()); quantizeModel(q, { scheme: 'int8-dynamic', embeddings: false });
for (const [name, model] of [['fp32', m], ['int8', q]] as const) {
  for (let i = 0; i < 2; i++) noGrad(() => model.forward({ inputIds: ids }));
  let best: ReturnType<typeof profileOps> | null = null;
  for (let i = 0; i < 5; i++) { const p = profileOps(() => noGrad(() => model.forward({ inputIds: ids }))); if (!best || p.totalMs < best.totalMs) best = p; }
  console.log(`${name}: total ${best!.totalMs.toFixed(1)} ms, outside ops ${best!.outsideMs.toFixed(1)} ms`);
  for (const o of best!.ops.slice(0, 14)) console.log(`  ${o.op.padEnd(28)} ${String(o.calls).padStart(5)} calls  self ${o.selfMs.toFixed(1).padStart(7)} ms  total ${o.totalMs.toFixed(1).padStart(7)} ms`);
}
