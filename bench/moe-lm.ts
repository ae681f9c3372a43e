/**
 * npm run bench:moe-lm [-- --out runs/lm-mlp] [-- --steps 600] [-- --plots docs] [-- --json]
 *
 * Language models trained from scratch with sparse MoE or fast feedforward layers beside their dense twins (issues
 * 17 and 18), one `shrink pretrain` child process per run, each resumable (a finished run reports its recorded
 * result): GPT-2, 4 layers, hidden 128, 4 heads, 128-token blocks, batch 8, lr 1e-3 cosine, seed 0, on the bundled
 * `default` corpus with stories260K's 512-piece tokenizer; held-out loss on 32 blocks of WikiText-2 test every 100
 * steps.
 * - dense512: the dense FFN of 512 (4 × hidden): the MoE's equal-active-FLOPs twin and the FFF's twin;
 * - dense2048: a dense FFN of 2,048: the MoE's equal-parameters twin;
 * - moe: 8 experts of 256 (dense width / top-k), top-2, router z-loss 1e-3, balance loss 1e-2, capacity factor 1.25
 *   in training and 2.0 at evaluation per routed choice; moe-noz / moe-nobal: the same without the z-loss / the
 *   balance loss (ST-MoE's ablations);
 * - fff8: every MLP a depth-8 UltraFastBERT tree (511 neurons, 9 per token).
 * Prints a table (held-out loss at steps 100/200/400/600, perplexity, routing at the last evaluation: router entropy,
 * max load = the busiest expert's share × E in the worst layer, dropped choices) and writes
 * <plots>/moe-lm.svg (held-out loss curves) and <plots>/moe-lm-load.svg (expert loads at the last evaluation,
 * sorted, mean over layers) when --plots is given.
 */
import '../src/index.ts';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lineChartSvg, plotRun, readLog, type Series } from '../src/eval/plot.ts';
import { atomicWriteFile } from '../src/io/atomic.ts';
import { benchArgs } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { has, arg, intArg } = benchArgs('bench/moe-lm.ts', ['--json'], ['--out', '--steps', '--plots']);
const out = path.resolve(arg('--out') ?? path.join(root, 'runs', 'lm-mlp'));
const steps = intArg('--steps', 600, 1);
const plots = arg('--plots');
const json = has('--json');
const every = Math.max(1, Math.round(steps / 6));
const common = ['--arch', 'gpt2', '--corpus', 'default', '--hidden', '128', '--layers', '4', '--heads', '4', '--seq-len', '128', '--batch-size', '8', '--steps', String(steps), '--lr', '1e-3', '--eval-every', String(every), '--eval-blocks', '32', '--save-every', String(every), '--seed', '0', '--json'];
const RUNS: { name: string; label: string; flags: string[] }[] = [
  { name: 'dense512', label: 'dense FFN 512 (equal active FLOPs)', flags: ['--intermediate', '512'] },
  { name: 'dense2048', label: 'dense FFN 2,048 (equal parameters)', flags: ['--intermediate', '2048'] },
  { name: 'moe', label: 'MoE 8 × 256, top-2', flags: ['--moe-experts', '8', '--moe-top-k', '2'] },
  { name: 'moe-noz', label: 'MoE, no z-loss', flags: ['--moe-experts', '8', '--moe-top-k', '2', '--moe-z-loss', '0'] },
  { name: 'moe-nobal', label: 'MoE, no balance loss', flags: ['--moe-experts', '8', '--moe-top-k', '2', '--moe-balance-loss', '0'] },
  { name: 'fff8', label: 'FFF depth 8 (9 of 511 neurons per token)', flags: ['--fff-depth', '8'] },
];

const rows: Record<string, unknown>[] = [];
for (const r of RUNS) {
  const dir = path.join(out, r.name);
  process.stderr.write(`bench:moe-lm: ${r.name}: shrink pretrain ${r.flags.join(' ')} -o ${dir}\n`);
  const p = spawnSync(process.execPath, [path.join(root, 'bin', 'shrink.js'), 'pretrain', ...common, ...r.flags, '-o', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (p.status !== 0) throw new Error(`bench:moe-lm: ${r.name} failed (exit ${p.status})`);
  const res = JSON.parse(p.stdout.trim().split('\n').pop()!) as { heldOutLoss: number; heldOutPerplexity: number; trainSeconds?: number };
  const log = readLog(path.join(dir, '.run', 'log.jsonl'));
  const evals = log.filter((e) => e.eval);
  const last = evals[evals.length - 1]!.eval!;
  const { size } = fs.statSync(path.join(dir, 'model.safetensors'));
  rows.push({
    run: r.name, label: r.label, held_out: Object.fromEntries(evals.map((e) => [e.step, +e.eval!.loss!.toFixed(4)])), held_out_loss: +res.heldOutLoss.toFixed(4),
    perplexity: +res.heldOutPerplexity.toFixed(3), bytes: size, train_seconds: res.trainSeconds,
    ...(last.router_entropy !== undefined ? { router_entropy: +last.router_entropy.toFixed(4), max_load: +last.max_load!.toFixed(4), dropped: +last.dropped!.toFixed(4) } : {}),
  });
  if (json) console.log(JSON.stringify(rows[rows.length - 1]));
}
if (!json) {
  const at = (r: Record<string, unknown>) => Object.values(r.held_out as Record<string, number>).map((v) => v.toFixed(3)).join(' / ');
  const f = (v: unknown) => (typeof v === 'number' ? v.toFixed(3) : '–');
  console.log(`| run | held-out loss, every ${every} steps | perplexity | router entropy | max load | dropped | weights |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.label} | ${at(r)} | ${(r.perplexity as number).toFixed(2)} | ${f(r.router_entropy)} | ${f(r.max_load)} | ${f(r.dropped)} | ${((r.bytes as number) / 2 ** 20).toFixed(2)} MiB |`);
}
if (plots) {
  const dirs = RUNS.map((r) => path.join(out, r.name));
  plotRun(dirs, path.join(plots, 'moe-lm.svg'), { y: ['eval'], labels: RUNS.map((r) => r.label), title: `GPT-2 4 × 128 from scratch, ${steps} steps: held-out loss (32 blocks of WikiText-2 test)` });
  const palette = ['#1f77b4', '#d62728', '#2ca02c'];
  const series: Series[] = RUNS.filter((r) => r.name.startsWith('moe')).map((r, i) => {
    const log = readLog(path.join(out, r.name, '.run', 'log.jsonl'));
    const ev = log.filter((e) => e.eval).pop()!.eval!;
    const layers = Object.keys(ev).filter((k) => /^load_l\d+_e0$/.test(k)).length;
    const E = Object.keys(ev).filter((k) => k.startsWith('load_l0_e')).length;
    const mean = new Array(E).fill(0);
    for (let l = 0; l < layers; l++) {
      const sorted = Array.from({ length: E }, (_, e) => ev[`load_l${l}_e${e}`]!).sort((a, b) => b - a);
      sorted.forEach((v, e) => (mean[e] += v / layers));
    }
    return { label: r.label, points: mean.map((v, e) => [e + 1, v] as [number, number]), color: palette[i % palette.length]!, dots: true };
  });
  const E = series[0]!.points.length;
  series.push({ label: `balanced (1/${E})`, points: [[1, 1 / E], [E, 1 / E]], color: '#7f7f7f' });
  atomicWriteFile(path.join(plots, 'moe-lm-load.svg'), lineChartSvg(series, { title: 'Expert load at the last evaluation: share of routed choices by rank, mean over the 4 layers', xLabel: 'expert, by load (1 = busiest)', yLabel: 'share of routed choices' }));
  process.stderr.write(`bench:moe-lm: wrote ${path.join(plots, 'moe-lm.svg')} and ${path.join(plots, 'moe-lm-load.svg')}\n`);
}
