/**
 * npm run bench:quant [-- --json] [-- --bert <fine-tuned BERT folder>] [-- --only bert|stories]
 *
 * The quantization table of issue 4: the bundled BERT teacher fine-tuned on SST-2 (accuracy) and stories260K on
 * text sampled from it (perplexity) — fp32, fp16, int8 weight-only, int8 dynamic, int4-g64 and int3-g64 RTN and
 * GPTQ: model.safetensors bytes, quality, latency. Without --bert it first fine-tunes the teacher
 * exactly as `shrink demo` does (1,000 steps) into a temporary folder.
 * GPTQ calibrates on 1,024 SST-2 training sentences (BERT; they are short, ~10 tokens) and on the first 8 blocks of the sample text
 * (stories260K; perplexity is measured on the rest).
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
import { TEACHER_DIR, evaluateGlue, finetuneGlue } from '../src/train/bert-tasks.ts';
import { loadTokenizer } from '../src/tokenizers/index.ts';
import { chunkTokens } from '../src/data/text.ts';
import { Tensor } from '../src/tensor/tensor.ts';

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
    let r: { score: number; latencyMs: number };
    let flips: number | undefined;
    if (label === 'accuracy') {
      // accuracy moves by 1/872 per example; the predictions that differ from fp32's show the error more finely
      const e = evaluateGlue(fromPretrained<BertForSequenceClassification>(dir), WordPieceTokenizer.fromVocabFile(path.join(dir, 'vocab.txt')), 'sst2');
      if (!o) fpPreds = e.predictions;
      flips = e.predictions.filter((p, i) => p !== fpPreds[i]).length;
      r = { score: e.score, latencyMs: e.latencyMsPerExample };
    } else r = evalPerplexity(dir, heldOut, { blockSize: 256 });
    rows.push({ model, variant: name, bytes, size_ratio: bytes / fpBytes, metric: label, score: r.score, flips, latency_ms: r.latencyMs, latency_unit: label === 'accuracy' ? 'example' : 'token' });
    process.stderr.write(`${model} ${name}: ${label} ${r.score.toFixed(4)}\n`);
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
if (json) for (const r of rows) console.log(JSON.stringify(r));
else {
  console.log('| model | variant | model.safetensors | of fp32 | quality | predictions ≠ fp32 | latency |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r.model} | ${r.variant} | ${((r.bytes as number) / 1024).toFixed(0)} KiB | ${(100 * (r.size_ratio as number)).toFixed(1)} % | ${r.metric === 'accuracy' ? `${(100 * (r.score as number)).toFixed(2)} % acc` : `ppl ${(r.score as number).toFixed(3)}`} | ${r.flips === undefined ? '' : `${r.flips} of 872`} | ${(r.latency_ms as number).toFixed(3)} ms/${r.latency_unit} |`,
    );
}
