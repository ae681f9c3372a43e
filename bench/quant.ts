/**
 * npm run bench:quant [-- --json] [-- --bert <fine-tuned BERT folder>] [-- --only bert|stories] [-- --rounds N] [-- --threads N]
 *                     [-- --cpu-time]
 *
 * The quantization table of issue 4: the bundled BERT teacher fine-tuned on SST-2 (accuracy) and stories260K on
 * text sampled from it (perplexity) — fp32, fp16, int8 weight-only, int8 dynamic, int4-g64 and int3-g64 RTN and
 * GPTQ: model.safetensors bytes, quality, latency. Without --bert it first fine-tunes the teacher
 * exactly as `shrink demo` does (1,000 steps) into a temporary folder.
 * GPTQ calibrates on 1,024 SST-2 training sentences (BERT; they are short, ~10 tokens) and on the first 8 blocks of the sample text
 * (stories260K; perplexity is measured on the rest).
 *
 * Latency is measured apart from the quality pass, after every variant of a model has been evaluated: all of them
 * loaded at once and timed round by round (fp32, fp16, int8, …, fp32, fp16, …; 1 warm-up, 25 rounds, each variant's
 * turn in a round repeating its call for ≥ 60 ms and taking the mean), so load from elsewhere on this shared VM hits
 * them alike (--rounds N: N rounds instead of 25; --threads N: the thread pool's size, default the library's; on a machine shared with other jobs a round's ratio swings by 2×
 * either way, so the median needs many short rounds rather than a few long ones). BERT: one forward over the first 32 SST-2 dev sentences (batch 32,
 * per example); stories260K: one forward over the first 256 held-out tokens (per token). The table shows the best
 * round and the speed-up against fp32 within each round (fp32 ms / variant ms: median, min–max).
 * --cpu-time: time each call by the process's CPU time (user + system, process.cpuUsage) instead of the wall clock.
 * With --threads 1 that is the time the forward itself computed: a turn during which the VM descheduled us, or another
 * job evicted our caches less often, no longer counts as our slowness, so on a shared machine the ratios are far
 * steadier. With more threads it also counts time the pool's workers spent (spinning included): CPU-seconds.
 * --json: {"model","variant","bytes","size_ratio","metric","score","flips","latency_ms","latency_median_ms",
 *          "latency_unit","clock","speedup_vs_fp32","speedup_min","speedup_max","speedup_ci95","verdict","kernels"} per row (clock: "wall" or "cpu"; speedup_ci95: a 95 % bootstrap interval of the median
 *          ratio, medianCI in src/eval/latency.ts; verdict: "slower" when that interval lies below 1, "faster" when above,
 *          "same" when it holds 1); kernels: the kernels the
 *          quantized layers ran, counted (e.g. "12× int8-gemm", "10× wo-pack, 4× fp32-cache").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { castFolder, quantizeFolder } from '../src/compress/quant/pretrained.ts';
import type { QuantizeOptions } from '../src/compress/quant/apply.ts';
import { calibrationBatches } from '../src/data/calibration.ts';
import { evalPerplexity } from '../src/eval/evaluate.ts';
import { fromPretrained } from '../src/models/registry.ts';
import type { BertForSequenceClassification } from '../src/models/bert/modeling.ts';
import { WordPieceTokenizer } from '../src/tokenizers/wordpiece.ts';
import { TEACHER_DIR, finetuneGlue } from '../src/train/bert-tasks.ts';
import { evaluateGlue } from '../src/eval/glue.ts';
import { ciVerdict, compareLatency } from '../src/eval/latency.ts';
import { collate } from '../src/data/batch.ts';
import { loadGlue } from '../src/data/glue.ts';
import { noGrad } from '../src/tensor/autograd.ts';
import type { ModelInputs } from '../src/models/outputs.ts';
import { loadTokenizer } from '../src/tokenizers/index.ts';
import { chunkTokens } from '../src/data/text.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { getNumThreads, setNumThreads } from '../src/index.ts';
import { quantKernelTable } from '../src/compress/quant/modules.ts';
import type { Module } from '../src/nn/module.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const json = process.argv.includes('--json');
const arg = (k: string) => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-quant-'));
const only = arg('--only');
const wantBert = !only || 'bert'.includes(only.toLowerCase());
let bert = arg('--bert');
if (!bert && wantBert) {
  bert = path.join(tmp, 'sst2');
  process.stderr.write('fine-tuning the teacher on SST-2 (1,000 steps, as shrink demo)…\n');
  finetuneGlue({ modelDir: TEACHER_DIR, task: 'sst2', steps: 1000, outDir: bert });
  bert = path.join(bert, 'final');
}
const stories = path.join(root, 'data/models/stories260K');
const storyText = path.join(root, 'data/tinystories-samples/stories260K-samples.txt');

// stories260K: calibrate on the first 8 blocks of 128 tokens, evaluate on the text after them
const tok = loadTokenizer(stories);
const lines = fs.readFileSync(storyText, 'utf8').split('\n').filter(Boolean);
const ids = lines.flatMap((l) => tok.encode(l, { addSpecialTokens: false }));
const calibBlocks = chunkTokens(ids.slice(0, 8 * 128), 128).map((b) => ({ inputIds: Tensor.from(Int32Array.from(b.ids), { shape: [1, 128] }) }));
const heldOut = path.join(tmp, 'heldout.txt');
fs.writeFileSync(heldOut, tok.decode(ids.slice(8 * 128)));
const bertCalib = wantBert ? calibrationBatches(bert!, 'sst2', { samples: 1024, seqLen: 64 }) : [];
// the latency inputs: the first 32 SST-2 dev sentences as one batch (as evaluateGlue encodes them: ≤ 64 tokens), and
// the first 256 held-out stories260K tokens
const LAT_BATCH = 32;
const LAT_TOKENS = 256;
const LAT_ROUNDS = Number(arg('--rounds') ?? 25);
if (!(Number.isInteger(LAT_ROUNDS) && LAT_ROUNDS >= 1)) throw new Error(`--rounds must be a positive integer, got ${arg('--rounds')}`);
const LAT_MIN_MS = 60;
const cpuTime = process.argv.includes('--cpu-time');
// with node --expose-gc (the npm script passes it) every timed turn starts after a full collection, so no variant pays
// for the previous one's garbage
const gc = (globalThis as { gc?: () => void }).gc;
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
if (arg('--threads') !== undefined) {
  const t = Number(arg('--threads'));
  if (!(Number.isInteger(t) && t >= 1)) throw new Error(`--threads must be a positive integer, got ${arg('--threads')}`);
  setNumThreads(t);
}
let bertLatBatch: ModelInputs | undefined;
if (wantBert) {
  const wp = WordPieceTokenizer.fromVocabFile(path.join(bert!, 'vocab.txt'));
  const b = collate(loadGlue('sst2', 'dev').texts.slice(0, LAT_BATCH).map(([a]) => ({ ids: wp.encode(a).slice(0, 64) })), { padId: wp.specialIds.pad! });
  bertLatBatch = { inputIds: b.inputIds, attentionMask: b.attentionMask, tokenTypeIds: b.tokenTypeIds };
}
const storyLatIds = ids.slice(8 * 128, 8 * 128 + LAT_TOKENS);
const storyLatInput: ModelInputs = { inputIds: Tensor.from(Int32Array.from(storyLatIds), { shape: [1, storyLatIds.length] }) };

const variants: [string, QuantizeOptions | 'float16' | null][] = [
  ['fp32', null],
  ['fp16', 'float16'],
  ['int8 weight-only', { scheme: 'int8' }],
  ['int8 dynamic', { scheme: 'int8-dynamic' }],
  ['int4-g64 RTN', { scheme: 'int4', groupSize: 64 }],
  ['int4-g64 GPTQ', { scheme: 'int4', groupSize: 64, method: 'gptq' }],
  ['int3-g64 RTN', { scheme: 'int4', bits: 3, groupSize: 64 }],
  ['int3-g64 GPTQ', { scheme: 'int4', bits: 3, groupSize: 64, method: 'gptq' }],
];
const fileBytes = (dir: string) => fs.statSync(path.join(dir, 'model.safetensors')).size;
const rows: Record<string, unknown>[] = [];
for (const [model, label, src] of [['bert-teacher SST-2', 'accuracy', bert ?? ''], ['stories260K', 'perplexity', stories]] as const) {
  if (only && !model.toLowerCase().includes(only.toLowerCase())) continue;
  let fpBytes = 0;
  let fpPreds: number[] = [];
  const timed: Record<string, () => void> = {};
  const models: Record<string, Module> = {};
  const modelRows: Record<string, unknown>[] = [];
  for (const [name, o] of variants) {
    let dir = src;
    if (o) {
      dir = path.join(tmp, `${model.split(' ')[0]}-${name.replace(/\W+/g, '-')}`);
      const calib = model === 'stories260K' ? calibBlocks : bertCalib;
      if (o === 'float16') castFolder(src, dir, o);
      else quantizeFolder(src, dir, { ...o, calibration: () => calib });
    }
    const bytes = fileBytes(dir);
    if (!o) fpBytes = bytes;
    let flips: number | undefined;
    let r: { score: number };
    if (label === 'accuracy') {
      // accuracy moves by 1/872 per example; the predictions that differ from fp32's show the error more finely
      const m = fromPretrained<BertForSequenceClassification>(dir);
      const e = evaluateGlue(m, WordPieceTokenizer.fromVocabFile(path.join(dir, 'vocab.txt')), 'sst2');
      if (!o) fpPreds = e.predictions;
      flips = e.predictions.filter((p, i) => p !== fpPreds[i]).length;
      r = { score: e.score };
      timed[name] = () => noGrad(() => void m.forward(bertLatBatch!));
      models[name] = m as unknown as Module;
    } else {
      r = evalPerplexity(dir, heldOut, { blockSize: 256 });
      const m = fromPretrained(dir) as unknown as { eval(): unknown; forward(i: ModelInputs): unknown };
      m.eval();
      timed[name] = () => noGrad(() => void m.forward(storyLatInput));
      models[name] = m as unknown as Module;
    }
    modelRows.push({ model, variant: name, bytes, size_ratio: bytes / fpBytes, metric: label, score: r.score, flips });
    process.stderr.write(`${model} ${name}: ${label} ${r.score.toFixed(4)}\n`);
  }
  process.stderr.write(`${model}: latency, ${Object.keys(timed).length} variants interleaved over ${LAT_ROUNDS} rounds…\n`);
  const per = label === 'accuracy' ? bertLatBatch!.inputIds.shape[0]! : storyLatIds.length;
  const c = compareLatency(timed, { reference: 'fp32', rounds: LAT_ROUNDS, warmup: 1, minMs: LAT_MIN_MS, ...(cpuTime ? { now: cpuNow } : {}), ...(gc ? { beforeSample: gc } : {}) });
  for (const row of modelRows) {
    const v = row.variant as string;
    const sp = c.ratios[v]!;
    // the kernels the quantized layers ran in the timed calls (kernels.ts chooseKernel), counted
    const kn: Record<string, number> = {};
    for (const l of quantKernelTable(models[v]!, false)) for (const k of Object.values(l.kernels)) kn[k!.kernel] = (kn[k!.kernel] ?? 0) + 1;
    rows.push({
      kernels: Object.entries(kn).map(([k, n]) => `${n}× ${k}`).join(', '),
      ...row, latency_ms: c.best[v]! / per, latency_median_ms: c.median[v]! / per, latency_unit: label === 'accuracy' ? 'example' : 'token', clock: cpuTime ? 'cpu' : 'wall',
      speedup_vs_fp32: sp.median, speedup_min: sp.min, speedup_max: sp.max, speedup_ci95: sp.ci95,
      verdict: v === 'fp32' ? 'reference' : ciVerdict(sp.ci95),
    });
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
if (json) for (const r of rows) console.log(JSON.stringify(r));
else {
  console.log(`Latency: all variants of a model timed interleaved, 1 warm-up + ${LAT_ROUNDS} rounds of ≥ ${LAT_MIN_MS} ms ${cpuTime ? 'of CPU time (--cpu-time)' : 'wall-clock'} each${gc ? ', each after a full GC' : ''}, ${getNumThreads()} thread(s), load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores; best round, and fp32 ms / variant ms per round: median [95 % bootstrap interval of the median] (min–max), and whether the interval lies above 1 (faster), below 1 (slower) or holds 1 (same)`);
  console.log('| model | variant | model.safetensors | of fp32 | quality | predictions ≠ fp32 | latency (best) | speed-up vs fp32 | verdict | layer kernels |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r.model} | ${r.variant} | ${((r.bytes as number) / 1024).toFixed(0)} KiB | ${(100 * (r.size_ratio as number)).toFixed(1)} % | ${r.metric === 'accuracy' ? `${(100 * (r.score as number)).toFixed(2)} % acc` : `ppl ${(r.score as number).toFixed(3)}`} | ${r.flips === undefined ? '' : `${r.flips} of 872`} | ${(r.latency_ms as number).toFixed(3)} ms/${r.latency_unit} | ${(r.speedup_vs_fp32 as number).toFixed(2)}× [${(r.speedup_ci95 as number[])[0]!.toFixed(2)}–${(r.speedup_ci95 as number[])[1]!.toFixed(2)}] (${(r.speedup_min as number).toFixed(2)}–${(r.speedup_max as number).toFixed(2)}) | ${r.verdict} | ${r.kernels} |`,
    );
}
