/**
 * npm run bench:models [-- --json] [-- --quick] [-- --rounds N] [-- --only REGEX] [-- --no-ort]
 *
 * Whole-model timings on 1 thread against PyTorch 1.13 CPU measured on this machine kind (issue targets):
 * - bert-mini-train-step: BertForMaskedLM 4 layers, hidden 256, 4 heads, FFN 1024, vocab 30522, batch 32 × 64,
 *   15 % of positions labelled (the prediction head runs on those only), forward + backward + AdamW (PyTorch: 542 ms).
 * - bert-base-infer-b1-s128: BertModel 12 layers, 768, 12 heads, batch 1 × 128, no grad (PyTorch: 240 ms).
 * - bert-base-infer-b1-s128-int8: the same weights after `quantizeModel(…, { scheme: 'int8-dynamic' })` (target ≥ 1.5× fp32);
 *   -int8-weight-only and -int4-g64: weight-only int8 / int4 (groups of 64), dequantized inside the float GEMM.
 * - bert-base-infer-b1-s128-ort / -int8-ort / -int8-qdq-ort: onnxruntime-node (CPU execution provider) running the
 *   same models exported with exportOnnx (fp32; the int8-dynamic model as DynamicQuantizeLinear + MatMulInteger, and
 *   as QDQ), sessions with intraOpNumThreads = Shrink's thread count, interOpNumThreads 1, graphOptimizationLevel
 *   'all', executionMode 'sequential'. Timed in the same interleaved rounds as the Shrink rows (compareLatencyAsync:
 *   session.run returns a promise); each reports Shrink speed / ORT speed = ORT ms / Shrink ms per round (fp32 rows
 *   against the Shrink fp32 row, int8 rows against the Shrink int8 row) with its 95 % interval and verdict, and
 *   max |ORT − Shrink| over last_hidden_state and pooler_output, checked before timing (fp32: ≤ 1e-4, a mismatch is
 *   printed in the row; int8: printed only, ONNX quantizes activations per tensor where Shrink does per token).
 *   `--no-ort` skips them; when onnxruntime-node cannot be loaded they are skipped with a message.
 * - stories260K-generate: greedy decoding of 64 tokens with the KV cache (tokens/s).
 * `--only REGEX` runs only the blocks with a row whose name matches (the BERT-base block always times its fp32 row,
 * the reference; its quantized and ORT rows run when they match, the Shrink int8 row also for the int8 ORT rows).
 * Every row: 1 untimed warm-up, then the best (and median) of 3 timed runs (1 with --quick). The four BERT-base
 * rows are timed interleaved, round by round (fp32, int8, int8 weight-only, int4; 7 rounds, --rounds N), so load from elsewhere
 * on this shared VM hits them alike; each quantized row's speed-up is fp32 ms / its ms within the same round, reported
 * as the median and range over the rounds.
 * `--json` prints one {"name","ms","median_ms","tokens_per_s","kernel"} object per line (ms = best), plus
 * {"ratio_vs","speedup","speedup_min","speedup_max"} on the quantized BERT-base rows, and {"ort_version","provider",
 * "vs","shrink_over_ort","shrink_over_ort_min","shrink_over_ort_max","shrink_over_ort_ci95","verdict","max_abs_diff",
 * "outputs_match"} on the ORT rows (outputs_match: null for int8, where no tolerance is claimed). `kernel` names the addon paths
 * the row's time goes to (kernels() of native/*.cc, e.g. 'sgemm avx2 6x16, elementwise avx2'), or 'ref'.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quantizeModel } from '../src/compress/quant/apply.ts';
import { quantKernelTable } from '../src/compress/quant/modules.ts';
import type { Module } from '../src/nn/module.ts';
import { ciVerdict, compareLatencyAsync, measureLatency, roundRatio } from '../src/eval/latency.ts';
import { exportOnnx } from '../src/export/onnx.ts';
import { backend, kernelNames } from '../src/backend/registry.ts';
import { AdamW, BertForMaskedLM, BertForSequenceClassification, BertModel, Generator, Tensor, bertConfig, fromPretrained, generate, getNumThreads, manualSeed, noGrad, setNumThreads } from '../src/index.ts';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
setNumThreads(1);
manualSeed(0);
const g = new Generator(0);

const repeats = quick ? 1 : 3;
const roundsArg = process.argv.indexOf('--rounds');
const BERT_BASE_ROUNDS = roundsArg >= 0 ? Number(process.argv[roundsArg + 1]) : 7;
if (!(Number.isInteger(BERT_BASE_ROUNDS) && BERT_BASE_ROUNDS >= 1)) throw new Error('--rounds must be a positive integer');
const noOrt = process.argv.includes('--no-ort');
const onlyArg = process.argv.indexOf('--only');
if (onlyArg >= 0 && process.argv[onlyArg + 1] === undefined) throw new Error('--only needs a regular expression (e.g. bert-base-infer)');
const only = onlyArg >= 0 ? new RegExp(process.argv[onlyArg + 1]!) : undefined;
/** Whether a block with these row names runs (--only). */
const want = (...names: string[]) => !only || names.some((n) => only.test(n));

interface Row {
  name: string;
  /** best ms */
  ms: number;
  medianMs: number;
  tokens_per_s: number;
  reference?: string;
  /** speed-up against `ratioVs`, per round: median, min, max */
  ratioVs?: string;
  speedup?: { median: number; min: number; max: number };
  kernel?: string;
  /** ORT rows: Shrink speed / ORT speed per round against the Shrink row `vs`, and the output check. */
  ort?: { version: string; provider: string; vs: string; ratio: { median: number; min: number; max: number; ci95: [number, number] }; verdict: string; maxAbsDiff: number; match: boolean | null };
}
const rows: Row[] = [];
/** Quantized rows: the per-layer kernels their QuantLinear layers chose (kernels.ts chooseKernel), counted. */
const layerKernels: Record<string, string> = {};
function countKernels(model: Module): string {
  const n: Record<string, number> = {};
  for (const l of quantKernelTable(model, false)) for (const c of Object.values(l.kernels)) n[c!.kernel] = (n[c!.kernel] ?? 0) + 1;
  return Object.entries(n).map(([k, c]) => `${c}× ${k}`).join(', ');
}
const quantModels: Record<string, Module> = {};
/** The kernel paths behind a row: its main families' kernels() names. */
function kernelOf(name: string): string {
  if (backend().name !== 'native') return 'ref';
  const k = kernelNames();
  const fams = /int8$/.test(name) ? ['int8', 'sgemm'] : /weight-only|int4/.test(name) ? ['sgemm', ...Object.keys(k).filter((f) => /^wo|dequant/.test(f))] : ['sgemm', 'elementwise', 'nn'];
  return fams.filter((f) => k[f] !== undefined).map((f) => `${f} ${k[f]}`).join(', ');
}
/** 1 warm-up + best of `repeats`. */
const time = (fn: () => void) => measureLatency(fn, { warmup: 1, repeats });

/** onnxruntime-node, or why it cannot be loaded. */
type Ort = typeof import('onnxruntime-node');
async function loadOrt(): Promise<Ort | string> {
  try {
    const m = (await import('onnxruntime-node')) as Ort & { default?: Ort };
    const ort = m.InferenceSession ? m : m.default!;
    void ort.env.versions; // the native binding loads here
    return ort;
  } catch (e) {
    return (e as Error).message.split('\n')[0]!;
  }
}
/** max |a − b| over matching elements (Infinity when the lengths differ). */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(d) ? Infinity : d;
}

if (want('bert-mini-train-step')) {
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
  const t = time(step);
  rows.push({ name: 'bert-mini-train-step', ms: t.bestMs, medianMs: t.medianMs, tokens_per_s: (B * T * 1000) / t.bestMs, reference: 'PyTorch 542 ms' });
}

if (want('bert-mini-train-step-cls')) {
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
  const t = time(step);
  rows.push({ name: 'bert-mini-train-step-cls', ms: t.bestMs, medianMs: t.medianMs, tokens_per_s: (B * T * 1000) / t.bestMs, reference: 'PyTorch 542 ms (if it measured this head)' });
}

const BASE = 'bert-base-infer-b1-s128';
const BASE_ROWS = [BASE, `${BASE}-int8`, `${BASE}-int8-weight-only`, `${BASE}-int4-g64`];
const ORT_ROWS = { fp32: `${BASE}-ort`, int8: `${BASE}-int8-ort`, qdq: `${BASE}-int8-qdq-ort` };
if (!quick && want(...BASE_ROWS, ...Object.values(ORT_ROWS))) {
  const cfg = bertConfig({ hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072 });
  const ids = Tensor.randint(1000, 30000, [1, 128], { generator: g });
  const fp32 = new BertModel(cfg).eval();
  const base = BASE;
  const ortWanted = { fp32: !noOrt && want(ORT_ROWS.fp32), int8: !noOrt && want(ORT_ROWS.int8), qdq: !noOrt && want(ORT_ROWS.qdq) };
  const run: Record<string, () => unknown> = { [base]: () => noGrad(() => void fp32.forward({ inputIds: ids })) };
  // the same weights quantized: int8 dynamic (int8 activations per token on the integer GEMM), and weight-only
  // int8 / int4-g64 (float activations; B panels dequantized inside the float GEMM)
  const variants = [
    ['bert-base-infer-b1-s128-int8', { scheme: 'int8-dynamic' }],
    ['bert-base-infer-b1-s128-int8-weight-only', { scheme: 'int8' }],
    ['bert-base-infer-b1-s128-int4-g64', { scheme: 'int4', groupSize: 64 }],
  ] as const;
  for (const [name, opts] of variants) {
    if (!want(name) && !(name === `${BASE}-int8` && (ortWanted.int8 || ortWanted.qdq))) continue;
    const model = new BertModel(cfg).eval();
    model.loadStateDict(fp32.stateDict());
    quantizeModel(model, { ...opts, embeddings: false });
    quantModels[name] = model;
    run[name] = () => noGrad(() => void model.forward({ inputIds: ids }));
  }
  // onnxruntime-node on the same two models (fp32, int8-dynamic), exported in memory by exportOnnx
  const ortRows: Record<string, { vs: string; maxAbsDiff: number; match: boolean | null; quantErr?: number }> = {};
  let ortInfo = { version: '', provider: '' };
  if (ortWanted.fp32 || ortWanted.int8 || ortWanted.qdq) {
    const ort = await loadOrt();
    if (typeof ort === 'string') console.error(`bench:models: onnxruntime-node cannot be loaded (${ort}); skipping the ORT rows (${Object.values(ORT_ROWS).join(', ')})`);
    else {
      const threads = getNumThreads();
      ortInfo = { version: ort.env.versions.common ?? ort.env.versions.node ?? '?', provider: `CPUExecutionProvider, ${threads} intra-op thread${threads > 1 ? 's' : ''}` };
      const sessionOptions: import('onnxruntime-node').InferenceSession.SessionOptions = {
        executionProviders: ['cpu'],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
      };
      const i64 = (a: ArrayLike<number>) => new ort.Tensor('int64', BigInt64Array.from(Array.from(a), (v) => BigInt(v)), [1, 128]);
      const feeds = { input_ids: i64(ids.data as ArrayLike<number>), attention_mask: i64(new Int32Array(128).fill(1)), token_type_ids: i64(new Int32Array(128)) };
      const shrinkOut = (m: BertModel): Record<string, Float32Array | undefined> => noGrad(() => {
        const o = m.forward({ inputIds: ids });
        return { last_hidden_state: o.lastHiddenState.toFloat32Array(), pooler_output: o.pooled?.toFloat32Array() };
      });
      const jobs = [
        [ORT_ROWS.fp32, ortWanted.fp32, base, fp32, undefined],
        [ORT_ROWS.int8, ortWanted.int8, `${BASE}-int8`, quantModels[`${BASE}-int8`], 'matmulinteger'],
        [ORT_ROWS.qdq, ortWanted.qdq, `${BASE}-int8`, quantModels[`${BASE}-int8`], 'qdq'],
      ] as const;
      for (const [name, wanted, vs, model, mode] of jobs) {
        if (!wanted) continue;
        try {
          const t0 = performance.now();
          const bytes = exportOnnx(model as BertModel, mode ? { dtype: 'int8', int8Mode: mode } : {}).bytes;
          const session = await ort.InferenceSession.create(bytes, sessionOptions);
          const ref = shrinkOut(model as BertModel);
          const got = await session.run(feeds);
          let d = 0;
          for (const [k, v] of Object.entries(ref)) if (v) d = Math.max(d, got[k] ? maxAbsDiff(got[k].data as Float32Array, v) : Infinity);
          const match = mode ? null : d <= 1e-4;
          // int8: for scale, how far Shrink's own int8 model is from its fp32 one
          let quantErr: number | undefined;
          if (mode) {
            const f = shrinkOut(fp32);
            quantErr = Math.max(...Object.entries(ref).map(([k, v]) => (v ? maxAbsDiff(v, f[k]!) : 0)));
          }
          console.error(`bench:models: ${name}: exported and loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s; max |ORT − Shrink ${vs}| = ${d.toExponential(2)}${match === false ? ' — MISMATCH (> 1e-4)' : ''}${quantErr !== undefined ? ` (Shrink int8 vs Shrink fp32: ${quantErr.toExponential(2)})` : ''}`);
          ortRows[name] = { vs, maxAbsDiff: d, match, quantErr };
          run[name] = () => session.run(feeds);
        } catch (e) {
          console.error(`bench:models: ${name}: skipped, onnxruntime-node could not run the exported graph (${(e as Error).message.split('\n')[0]})`);
        }
      }
    }
  }
  // all alive at once and timed round by round: fp32, int8, int8-wo, int4, ORT fp32, ORT int8, ORT QDQ, fp32, int8, …
  // (async: onnxruntime-node's session.run returns a promise; the Shrink variants stay synchronous)
  const c = await compareLatencyAsync(run, { reference: base, rounds: BERT_BASE_ROUNDS, warmup: 1 });
  for (const [name, m] of Object.entries(quantModels)) if (run[name]) layerKernels[name] = countKernels(m);
  for (const name of Object.keys(run)) {
    const r = c.ratios[name]!;
    const row: Row = { name, ms: c.best[name]!, medianMs: c.median[name]!, tokens_per_s: (128 * 1000) / c.best[name]! };
    const o = ortRows[name];
    if (name === base) row.reference = 'PyTorch 240 ms';
    else if (o) {
      // Shrink speed / ORT speed = ORT ms / Shrink ms, per round against the Shrink row of the same model
      const ratio = roundRatio(c.runs, o.vs, name);
      const v = ciVerdict(ratio.ci95);
      const verdict = v === 'same' ? 'same within noise' : `Shrink ${v}`;
      row.ort = { ...ortInfo, vs: o.vs, ratio, verdict, maxAbsDiff: o.maxAbsDiff, match: o.match };
      row.kernel = `onnxruntime-node ${ortInfo.version}, ${ortInfo.provider}`;
      // (no '|' in table cells)
      const check =
        o.match === null
          ? `max abs diff vs Shrink int8 ${o.maxAbsDiff.toExponential(1)} (ONNX: per-tensor activation scales, Shrink: per token; Shrink int8 vs fp32: ${o.quantErr!.toExponential(1)})`
          : o.match
            ? `max abs diff ${o.maxAbsDiff.toExponential(1)} ≤ 1e-4`
            : `OUTPUT MISMATCH: max abs diff ${o.maxAbsDiff.toExponential(1)} > 1e-4`;
      row.reference = `Shrink ${o.vs === base ? 'fp32' : 'int8'} / ORT speed ×${ratio.median.toFixed(2)} [95 %: ${ratio.ci95[0].toFixed(2)}–${ratio.ci95[1].toFixed(2)}] (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)}): ${verdict}; ${check}`;
    } else {
      Object.assign(row, { ratioVs: base, speedup: r });
      // faster / slower only when the 95 % bootstrap interval of the median ratio lies wholly above / below 1
      const v = ciVerdict(r.ci95);
      const verdict = v === 'same' ? 'same within noise' : v;
      row.reference = `fp32 ×${r.median.toFixed(2)} [95 %: ${r.ci95[0].toFixed(2)}–${r.ci95[1].toFixed(2)}] (${r.min.toFixed(2)}–${r.max.toFixed(2)}): ${verdict}`;
    }
    rows.push(row);
  }
}

if (want('stories260K-generate-64')) {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../data/models/stories260K');
  const model = fromPretrained(dir);
  const n = 64;
  const t = time(() => void generate(model, [1], { maxNewTokens: n }));
  rows.push({ name: 'stories260K-generate-64', ms: t.bestMs, medianMs: t.medianMs, tokens_per_s: (n * 1000) / t.bestMs });
}

const r3 = (x: number) => +x.toFixed(3);
for (const r of rows) r.kernel ??= kernelOf(r.name) + (layerKernels[r.name] ? `; layers: ${layerKernels[r.name]}` : '');
if (json)
  for (const r of rows)
    console.log(
      JSON.stringify({
        name: r.name, ms: +r.ms.toFixed(1), median_ms: +r.medianMs.toFixed(1), tokens_per_s: +r.tokens_per_s.toFixed(1), kernel: r.kernel,
        ...(r.speedup ? { ratio_vs: r.ratioVs, speedup: r3(r.speedup.median), speedup_min: r3(r.speedup.min), speedup_max: r3(r.speedup.max) } : {}),
        ...(r.ort
          ? {
              ort_version: r.ort.version, provider: r.ort.provider, vs: r.ort.vs, shrink_over_ort: r3(r.ort.ratio.median), shrink_over_ort_min: r3(r.ort.ratio.min), shrink_over_ort_max: r3(r.ort.ratio.max),
              shrink_over_ort_ci95: r.ort.ratio.ci95.map(r3), verdict: r.ort.verdict, max_abs_diff: +r.ort.maxAbsDiff.toPrecision(3), outputs_match: r.ort.match,
            }
          : {}),
      }),
    );
else {
  console.log(`Whole-model timings, 1 thread: 1 warm-up, then best and median of ${repeats} run${repeats > 1 ? 's' : ''}; BERT-base rows`);
  console.log(`interleaved over ${BERT_BASE_ROUNDS} rounds, speed-up = fp32 ms / variant ms within each round: median [95 % bootstrap interval] (min–max);`);
  console.log('ORT rows: onnxruntime-node on the same exported models, in the same rounds; Shrink / ORT speed = ORT ms / Shrink ms per round');
  console.log('| name | best ms | median ms | tokens/s (best) | reference | kernels |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.name} | ${r.ms.toFixed(1)} | ${r.medianMs.toFixed(1)} | ${r.tokens_per_s.toFixed(0)} | ${r.reference ?? ''} | ${r.kernel} |`);
}
