/**
 * npm run bench:models [-- --json] [-- --quick]
 *
 * Whole-model timings on 1 thread against PyTorch 1.13 CPU measured on this machine kind (issue targets):
 * - bert-mini-train-step: BertForMaskedLM 4 layers, hidden 256, 4 heads, FFN 1024, vocab 30522, batch 32 × 64,
 *   15 % of positions labelled (the prediction head runs on those only), forward + backward + AdamW (PyTorch: 542 ms).
 * - bert-base-infer-b1-s128: BertModel 12 layers, 768, 12 heads, batch 1 × 128, no grad (PyTorch: 240 ms).
 * - bert-base-infer-b1-s128-int8: the same weights after `quantizeModel(…, { scheme: 'int8-dynamic' })` (target ≥ 1.5× fp32);
 *   -int8-weight-only and -int4-g64: weight-only int8 / int4 (groups of 64), dequantized inside the float GEMM.
 * - stories260K-generate: greedy decoding of 64 tokens with the KV cache (tokens/s).
 * `--json` prints one {"name","ms","tokens_per_s"} object per line.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quantizeModel } from '../src/compress/quant/apply.ts';
import { AdamW, BertForMaskedLM, BertForSequenceClassification, BertModel, Generator, Tensor, bertConfig, fromPretrained, generate, manualSeed, noGrad, setNumThreads } from '../src/index.ts';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
setNumThreads(1);
manualSeed(0);
const g = new Generator(0);

function best(fn: () => void, rounds: number): number {
  fn(); // warm-up
  let b = Infinity;
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

const rows: { name: string; ms: number; tokens_per_s: number; reference?: string }[] = [];

{
  const cfg = bertConfig({ vocab_size: 30522, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 });
  const model = new BertForMaskedLM(cfg);
  model.train();
  const opt = new AdamW(model.parameters(), { lr: 1e-4 });
  const [B, T] = [32, 64];
  const ids = Tensor.randint(1000, 30000, [B, T], { generator: g });
  const labels = Tensor.full([B, T], -100, { dtype: 'int32' });
  for (let i = 0; i < B * T; i++) if (g.random() < 0.15) labels.data[i] = ids.data[i]!;
  const mask = Tensor.ones([B, T], { dtype: 'int32' });
  const step = () => {
    const out = model.forward({ inputIds: ids, attentionMask: mask, labels }, { predictOnlyLabelled: true });
    opt.zeroGrad();
    out.loss!.backward();
    opt.step();
  };
  const ms = best(step, quick ? 1 : 3);
  rows.push({ name: 'bert-mini-train-step', ms, tokens_per_s: (B * T * 1000) / ms, reference: 'PyTorch 542 ms' });
}

{
  // The same encoder with a sequence-classification head (no vocabulary projection): the workload PyTorch's
  // 542 ms most plausibly measured — the MLM step above needs ≈ 53 GFLOP, which one core cannot do in 542 ms
  // even at its 102 GFLOPS FMA peak; this one needs ≈ 39.
  const cfg = bertConfig({ vocab_size: 30522, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 1024, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 });
  const model = new BertForSequenceClassification(cfg);
  model.train();
  const opt = new AdamW(model.parameters(), { lr: 1e-4 });
  const [B, T] = [32, 64];
  const ids = Tensor.randint(1000, 30000, [B, T], { generator: g });
  const labels = Tensor.randint(0, 2, [B], { generator: g });
  const mask = Tensor.ones([B, T], { dtype: 'int32' });
  const step = () => {
    const out = model.forward({ inputIds: ids, attentionMask: mask, labels });
    opt.zeroGrad();
    out.loss!.backward();
    opt.step();
  };
  const ms = best(step, quick ? 1 : 3);
  rows.push({ name: 'bert-mini-train-step-cls', ms, tokens_per_s: (B * T * 1000) / ms, reference: 'PyTorch 542 ms (if it measured this head)' });
}

if (!quick) {
  const cfg = bertConfig({ hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072 });
  const ids = Tensor.randint(1000, 30000, [1, 128], { generator: g });
  const fp32 = new BertModel(cfg).eval();
  const ms = best(() => noGrad(() => fp32.forward({ inputIds: ids })), 3);
  rows.push({ name: 'bert-base-infer-b1-s128', ms, tokens_per_s: (128 * 1000) / ms, reference: 'PyTorch 240 ms' });
  // the same weights quantized: int8 dynamic (int8 activations per token on the integer GEMM), and weight-only
  // int8 / int4-g64 (float activations; B panels dequantized inside the float GEMM)
  const variants = [
    ['bert-base-infer-b1-s128-int8', { scheme: 'int8-dynamic' }],
    ['bert-base-infer-b1-s128-int8-weight-only', { scheme: 'int8' }],
    ['bert-base-infer-b1-s128-int4-g64', { scheme: 'int4', groupSize: 64 }],
  ] as const;
  for (const [name, opts] of variants) {
    const model = new BertModel(cfg).eval();
    model.loadStateDict(fp32.stateDict());
    quantizeModel(model, { ...opts, embeddings: false });
    const msq = best(() => noGrad(() => model.forward({ inputIds: ids })), 3);
    rows.push({ name, ms: msq, tokens_per_s: (128 * 1000) / msq, reference: `fp32 ${ms.toFixed(0)} ms: ${(ms / msq).toFixed(2)}× ${ms >= msq ? 'faster' : 'slower'}` });
  }
}

{
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../data/models/stories260K');
  const model = fromPretrained(dir);
  const n = 64;
  const ms = best(() => generate(model, [1], { maxNewTokens: n }), quick ? 1 : 3);
  rows.push({ name: 'stories260K-generate-64', ms, tokens_per_s: (n * 1000) / ms });
}

if (json) for (const r of rows) console.log(JSON.stringify({ name: r.name, ms: +r.ms.toFixed(1), tokens_per_s: +r.tokens_per_s.toFixed(1) }));
else {
  console.log('Whole-model timings, 1 thread (best of rounds)');
  console.log('| name | ms | tokens/s | reference |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.name} | ${r.ms.toFixed(1)} | ${r.tokens_per_s.toFixed(0)} | ${r.reference ?? ''} |`);
}
