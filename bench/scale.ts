/**
 * npm run bench:scale [-- --json] [-- --config <config.json>] [-- --layers N] [-- --steps rtn8,rtn4,gptq4,prune,lowrank,gen]
 *                     [-- --calib-samples 128] [-- --calib-seq-len 512] [-- --tokens 32] [-- --keep <dir>]
 *
 * Billion-parameter checkpoints on one machine (issue 22). A random-weight checkpoint of a real model's shape
 * (default TinyLlama-1.1B: 22 layers, hidden 2048, 32 heads, 4 KV heads, FFN 5632, vocabulary 32,000; --layers
 * cuts the depth for a quick run) is written into a temporary folder by `shrink make-random` (bf16, 4 shards), then
 * every step runs as its own `shrink` child process, so each step's peak resident memory is its own (the
 * command's `peakRssMb`, getrusage maxrss):
 *
 * - rtn8 / rtn4: `shrink quantize --scheme int8` / `--scheme int4 --granularity group:128` (round to nearest);
 * - gptq4: `shrink quantize --scheme int4 --granularity group:128 --method gptq --calib random` with
 *   --calib-samples sequences of --calib-seq-len tokens (random ids: on random weights no text means more);
 * - factor: GPTQ's float64 factorization (Cholesky of the dampened Hessian + triangular inverse, what every layer
 *   needs) at TinyLlama's widths 2048 and 5632, the addon's kernels against the TypeScript reference (the reference
 *   only at 2048: at 5632 it takes minutes), in this process;
 * - prune / lowrank: `shrink compress --stream` (block by block, output shards of 500 MB written as they fill) with
 *   prune.magnitude at 50 %, global (the threshold from a pass over the file first; sparse storage) /
 *   share.lowrank at ratio 0.5 (randomized SVD above width 1024); their lines add "bound_mb", the streaming
 *   formula's figure for the model;
 * - gen: greedy decoding of --tokens tokens with the KV cache (`shrink generate --prompt-ids`, 8-token prompt) on
 *   the fp32 model (the bf16 checkpoint loaded as float32) and on every quantized folder made above.
 *
 * One line per step: {"name","peak_rss_mb","seconds","tokens_per_s"} (+ "bytes" and "fp32_ratio" for quantize
 * steps: the output's weight bytes and their share of the fp32 weights). Without --json, a table. The folder is
 * deleted at the end unless --keep names where to leave it. Not part of `npm test`: the default run writes 2.2 GB and
 * takes tens of minutes on 2 cores.
 */
import { Generator } from '../src/index.ts'; // first: the library's modules load in their own order
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchArgs, machineLine } from './common.ts';
import { findWeights } from '../src/io/hf.ts';
import { linalg, referenceLinalg } from '../src/compress/quant/gptq-adapter.ts';

const TINYLLAMA = {
  model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22,
  num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
  initializer_range: 0.02, bos_token_id: 1, eos_token_id: 2,
};
const STEPS = ['factor', 'rtn8', 'rtn4', 'gptq4', 'prune', 'lowrank', 'gen'] as const;

const a = benchArgs('bench:scale', ['--json'], ['--config', '--layers', '--steps', '--calib-samples', '--calib-seq-len', '--tokens', '--keep']);
const json = a.has('--json');
const config: Record<string, unknown> = a.arg('--config') ? JSON.parse(fs.readFileSync(a.arg('--config')!, 'utf8')) : { ...TINYLLAMA };
if (a.arg('--layers')) config.num_hidden_layers = a.intArg('--layers', 22, 1);
const steps = (a.arg('--steps') ?? STEPS.join(',')).split(',');
for (const s of steps) if (!(STEPS as readonly string[]).includes(s)) throw new Error(`bench:scale: --steps takes ${STEPS.join(', ')}; got '${s}'`);
const calibSamples = a.intArg('--calib-samples', 128, 1);
const calibSeqLen = a.intArg('--calib-seq-len', 512, 2);
const tokens = a.intArg('--tokens', 32, 1);

const log = (s: string) => process.stderr.write(s + '\n');
const bin = path.join(import.meta.dirname, '../bin/shrink.js');

/** Run `shrink <args> --json` as a child; returns its last JSON line and the wall time. */
function shrink(args: string[]): { r: Record<string, unknown>; seconds: number } {
  const t0 = performance.now();
  const p = spawnSync(process.execPath, [bin, ...args, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'inherit'] });
  const seconds = (performance.now() - t0) / 1000;
  if (p.status !== 0) throw new Error(`bench:scale: shrink ${args.join(' ')} exited with ${p.status ?? p.signal}`);
  const line = p.stdout.trim().split('\n').pop()!;
  return { r: JSON.parse(line) as Record<string, unknown>, seconds };
}

const rows: Record<string, unknown>[] = [];
const emit = (row: Record<string, unknown>) => {
  rows.push(row);
  if (json) process.stdout.write(JSON.stringify(row) + '\n');
};

log(`bench:scale: ${machineLine()}`);
/** Seconds to factor a random SPD [K, K] matrix (Cholesky + lower inverse), best of `rounds`. */
function factorSeconds(K: number, f: { cholesky(A: Float64Array, K: number): boolean; invertLower(L: Float64Array, K: number): void }, rounds: number): number {
  const g = new Generator(K);
  // a well-conditioned SPD matrix without a K³ product: a random symmetric matrix made diagonally dominant
  const A0 = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < i; j++) A0[i * K + j] = A0[j * K + i] = g.normal() / K;
  for (let i = 0; i < K; i++) A0[i * K + i] = 2;
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const A = Float64Array.from(A0);
    const t0 = performance.now();
    if (!f.cholesky(A, K)) throw new Error('bench:scale: factor: the test matrix is not positive definite');
    f.invertLower(A, K);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}
if (steps.includes('factor')) {
  const native = linalg();
  if (native.name !== 'native') log('bench:scale: factor: the addon is not available, only the reference runs');
  for (const K of [2048, 5632]) {
    const nat = native.name === 'native' ? factorSeconds(K, native, 3) : null;
    const ref = K <= 2048 ? factorSeconds(K, referenceLinalg, 1) : null;
    emit({ name: `gptq factor K=${K} (Cholesky + inverse, float64)`, peak_rss_mb: null, seconds: nat ?? ref, tokens_per_s: null, reference_seconds: ref, speedup: nat && ref ? +(ref / nat).toFixed(1) : null });
  }
}

/** make-random, then the quantize and generate steps, in `root`. */
function checkpointSteps(root: string): void {
  const src = path.join(root, 'model');
  const cfgFile = path.join(root, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(config));
  const made = shrink(['make-random', cfgFile, '-o', src, '--shards', '4', '--dtype', 'bf16', '--force']);
  const params = made.r.parameters as number;
  const fp32Bytes = params * 4;
  emit({ name: 'make-random bf16', peak_rss_mb: null, seconds: +made.seconds.toFixed(1), tokens_per_s: null, bytes: made.r.bytes, parameters: params });
  const quantized: [string, string][] = [];
  const quantize = (name: string, dir: string, flags: string[]) => {
    log(`bench:scale: ${name} …`);
    const { r, seconds } = shrink(['quantize', src, '-o', dir, '--force', ...flags]);
    const bytes = findWeights(dir).reduce((s, f) => s + fs.statSync(f).size, 0);
    emit({ name, peak_rss_mb: r.peakRssMb, seconds: +seconds.toFixed(1), tokens_per_s: null, bytes, fp32_ratio: +(bytes / fp32Bytes).toFixed(4) });
    quantized.push([name.split(' ')[0]!, dir]);
  };
  const g128 = ['--scheme', 'int4', '--granularity', 'group:128'];
  if (steps.includes('rtn8')) quantize('int8 rtn (per channel)', path.join(root, 'int8'), ['--scheme', 'int8']);
  if (steps.includes('rtn4')) quantize('int4 rtn (group 128)', path.join(root, 'int4'), g128);
  if (steps.includes('gptq4'))
    quantize(`int4 gptq (group 128, ${calibSamples}×${calibSeqLen} calibration)`, path.join(root, 'gptq4'), [...g128, '--method', 'gptq', '--calib', 'random', '--calib-samples', String(calibSamples), '--calib-seq-len', String(calibSeqLen)]);
  // one-shot methods streamed block by block (shrink compress --stream), 500 MB output shards
  const streamed = (name: string, dir: string, step: Record<string, unknown>) => {
    log(`bench:scale: ${name} …`);
    const recipe = path.join(root, `${path.basename(dir)}.json`);
    fs.writeFileSync(recipe, JSON.stringify({ steps: [step] }));
    const { r, seconds } = shrink(['compress', src, '--recipe', recipe, '-o', dir, '--stream', '--max-shard-size', '500MB', '--force']);
    const bytes = r.fileBytesAfter as number;
    emit({ name, peak_rss_mb: r.peakRssMb, bound_mb: r.boundMb, seconds: +seconds.toFixed(1), tokens_per_s: null, bytes, fp32_ratio: +(bytes / fp32Bytes).toFixed(4) });
    quantized.push([name.split(' ').slice(0, 2).join(' '), dir]);
  };
  if (steps.includes('prune')) streamed('magnitude prune 50 % (global threshold, sparse storage, --stream)', path.join(root, 'prune'), { method: 'prune.magnitude', sparsity: 0.5 });
  if (steps.includes('lowrank')) streamed('low rank ratio 0.5 (randomized SVD, --stream)', path.join(root, 'lowrank'), { method: 'share.lowrank', ratio: 0.5 });
  if (steps.includes('gen')) {
    const prompt = '1,450,3011,338,263,931,2462,297';
    for (const [name, dir] of [['fp32', src] as [string, string], ...quantized]) {
      log(`bench:scale: generate ${name} …`);
      const { r } = shrink(['generate', dir, '--prompt-ids', prompt, '-n', String(tokens)]);
      emit({ name: `generate ${name} (${tokens} tokens, greedy, KV cache)`, peak_rss_mb: r.peakRssMb, seconds: +(((r.loadMs as number) + (r.ms as number)) / 1000).toFixed(1), tokens_per_s: r.tokensPerS, load_s: +((r.loadMs as number) / 1000).toFixed(1) });
    }
  }
}

if (steps.some((x) => x !== 'factor')) {
  const root = a.arg('--keep') ?? fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-scale-'));
  fs.mkdirSync(root, { recursive: true });
  try {
    checkpointSteps(root);
  } finally {
    if (!a.arg('--keep')) fs.rmSync(root, { recursive: true, force: true });
  }
}
if (!json) {
  const fp32 = rows.find((r) => String(r.name).startsWith('generate fp32'))?.tokens_per_s as number | undefined;
  const lines = ['| step | peak RSS | time | tokens/s | weights (share of fp32) |', '| --- | --- | --- | --- | --- |'];
  for (const r of rows)
    lines.push(
      `| ${r.name} | ${r.peak_rss_mb == null ? '–' : `${(r.peak_rss_mb as number).toLocaleString('en-US')} MiB`} | ${typeof r.seconds === 'number' ? +r.seconds.toFixed(2) : r.seconds} s${r.speedup ? ` (reference ${(r.reference_seconds as number).toFixed(1)} s: ${r.speedup}×)` : ''} | ${r.tokens_per_s == null ? '–' : `${r.tokens_per_s}${fp32 && !String(r.name).startsWith('generate fp32') ? ` (${((r.tokens_per_s as number) / fp32).toFixed(2)}× fp32)` : ''}`} | ${r.fp32_ratio == null ? (r.bytes ? `${((r.bytes as number) / 2 ** 20).toFixed(0)} MiB` : '–') : `${((r.bytes as number) / 2 ** 20).toFixed(0)} MiB (${((r.fp32_ratio as number) * 100).toFixed(1)} %)`} |`,
    );
  process.stdout.write(lines.join('\n') + '\n');
}
