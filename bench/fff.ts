/**
 * npm run bench:fff [-- --json] [-- --threads 1] [-- --large] [-- --rounds 5]
 *
 * UltraFastBERT's fast feedforward at inference (conditional matmul, native/fff.cc) against the dense feedforward it
 * replaces, hidden 768: the dense FF is BERT-base's (768 → 3072 GELU → 768: `linear` + gelu + `linear` on the native
 * SGEMM); the FFF has depth 11 (4,095 neurons, 12 used per token). Batches of 1, 16 and 128 tokens (16,384 with
 * --large), then depths 7–11 at batch 1. Before timing, each CMM output is checked against the masked dense form
 * (FFFLayer in training mode, under noGrad) on the same input. Variants interleaved over rounds (each call
 * repeated for ≥ 20 ms after a warm-up): best ms of each; speed-up = dense ms / FFF ms of the best times.
 *
 * FLOP limit: dense 2·2·768·3072 = 9.44 MFLOP per token, FFF 2·2·768·12 = 36.9 kFLOP: 256× (341× against a
 * dense evaluation of all 4,095 tree neurons); the CMM reads 24 scattered weight rows per token, so it runs at
 * memory latency, far below that limit.
 *
 * Output: a table, or with --json one line per case: {"name","ms","speedup"} (FFF rows; dense rows have speedup 1).
 */
import { Tensor } from '../src/tensor/tensor.ts';
import { Linear } from '../src/nn/layers.ts';
import { noGrad } from '../src/tensor/autograd.ts';
import { Generator } from '../src/tensor/random.ts';
import { nativeAddon } from '../src/backend/registry.ts';
import { FFFLayer, fffAddon, fffNodes } from '../src/compress/fff/index.ts';

const argv = process.argv.slice(2);
const arg = (k: string, d: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1]! : d; };
const json = argv.includes('--json');
const large = argv.includes('--large');
const rounds = Number(arg('--rounds', '5'));
const threads = Number(arg('--threads', '1'));
const addon = fffAddon();
if (!addon) throw new Error('bench:fff needs the native backend with the FFF kernel (npm run build:native)');
(nativeAddon() as unknown as { setThreads(n: number): void }).setThreads(threads);
const kernel = (nativeAddon() as unknown as { kernels(): Record<string, string> }).kernels().fff;

const H = 768;
const FF = 3072;
const g = new Generator(0);
const up = new Linear(H, FF, { generator: g });
const down = new Linear(FF, H, { generator: g });
const dense = (x: Tensor) => down.forward(up.forward(x).gelu());

function once(fn: () => void): number {
  let n = 0;
  const t0 = performance.now();
  do { fn(); n++; } while (performance.now() - t0 < 20);
  return (performance.now() - t0) / n;
}
function best(fns: (() => void)[]): number[] {
  fns.forEach((f) => { f(); f(); });
  const t = fns.map(() => Infinity);
  for (let r = 0; r < rounds; r++) fns.forEach((f, i) => (t[i] = Math.min(t[i]!, once(f))));
  return t;
}

/** CMM output vs the masked dense form; tokens whose decisions differ at a near-zero logit are allowed (≤ 1 %). */
function verify(l: FFFLayer, x: Tensor): void {
  const M = x.shape[0]!;
  const cmm = noGrad(() => l.eval().forward(x)).toFloat32Array();
  const masked = noGrad(() => l.train().forward(x)).toFloat32Array();
  l.eval();
  let off = 0;
  for (let m = 0; m < M; m++) {
    let bad = false;
    for (let o = 0; o < H && !bad; o++) {
      const a = cmm[m * H + o]!, b = masked[m * H + o]!;
      if (!(Math.abs(a - b) <= 1e-4 * (1 + Math.abs(b)))) bad = true;
    }
    if (bad) off++;
  }
  if (off > Math.max(1, M / 100)) throw new Error(`FFF depth ${l.depth}, batch ${M}: CMM differs from the masked form on ${off} tokens`);
}

const rows: { name: string; ms: number; speedup: number }[] = [];
const emit = (name: string, ms: number, speedup: number) => {
  rows.push({ name, ms: Number(ms.toPrecision(4)), speedup: Number(speedup.toFixed(2)) });
  if (json) console.log(JSON.stringify(rows[rows.length - 1]));
};

const layers = new Map<number, FFFLayer>();
const fffOf = (depth: number) => {
  if (!layers.has(depth)) layers.set(depth, new FFFLayer(H, H, depth, { generator: new Generator(depth) }).eval());
  return layers.get(depth)!;
};

for (const M of large ? [1, 16, 128, 16384] : [1, 16, 128]) {
  const x = Tensor.randn([M, H], { generator: g });
  const f = fffOf(11);
  verify(f, x);
  const [d, c] = best([() => void noGrad(() => dense(x)), () => void noGrad(() => f.forward(x))]);
  emit(`dense-ff 768x3072 batch ${M}`, d!, 1);
  emit(`fff-cmm depth 11 (4095 nodes) batch ${M}`, c!, d! / c!);
}
const x1 = Tensor.randn([1, H], { generator: g });
const [d1] = best([() => void noGrad(() => dense(x1))]);
for (const depth of [7, 8, 9, 10, 11]) {
  const f = fffOf(depth);
  verify(f, x1);
  const [c] = best([() => void noGrad(() => f.forward(x1))]);
  emit(`fff-cmm depth ${depth} (${fffNodes(depth)} nodes) batch 1`, c!, d1! / c!);
}

if (!json) {
  console.log(`hidden ${H}, ${threads} thread(s), fff kernel: ${kernel}; FLOP limit vs dense 768x3072: ${((2 * H * FF) / (2 * H * 12)).toFixed(0)}× at depth 11`);
  console.log('| case | ms | speed-up vs dense FF |');
  console.log('| --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.name} | ${r.ms} | ${r.speedup}× |`);
}
