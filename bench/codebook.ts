/**
 * npm run bench:codebook [-- --threads N] [-- --rounds N] [-- --shapes MxKxN,…] [-- --json]
 *
 * share.kmeans inference: the addon's codebook GEMM (native/codebook.cc: codes looked up while the packed SGEMM's B
 * panels are packed, a weight row at a time for M ≤ 4) against the fp32 SGEMM (gemm.cc, the same x·Wᵀ with W
 * [N, K] float32) on the same shapes: 4-bit codes with 16 centroids (one vpermps per 16 weights on AVX-512) and 8-bit codes with 64 and 256 (vpermt2ps
 * blocks and a blend tree).
 * Variants interleaved round by round (default 9 rounds, each turn repeating its call for ≥ 30 ms; the VM is
 * shared), best ms of each, and ratio = the median over rounds of codebook ms / fp32 ms (≤ 1: no slower than fp32).
 * Default 1 thread. Compare columns of one run, never against fixed numbers.
 *
 * --json: one object per line, {"m","k","n","threads","variant","ms","ratio_vs_fp32","kernel"}.
 */
import { nativeAddon } from '../src/backend/registry.ts';
import { codebookGemm, type NativeAddon } from '../src/backend/native/index.ts';
import { packCodes } from '../src/compress/share/kmeans.ts';

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1]! : d;
};
const json = process.argv.includes('--json');
const threads = Number(arg('--threads', '1'));
const rounds = Number(arg('--rounds', '9'));
const shapes = arg('--shapes', '1x768x768,4x768x768,32x768x768,128x768x3072,128x3072x768').split(',').map((s) => s.split('x').map(Number) as [number, number, number]);

const a = nativeAddon() as (NativeAddon & { codebookKernel?(): string }) | null;
if (!a || typeof a.codebookGemm !== 'function') throw new Error('needs the native addon with codebookGemm (npm run build:native)');
a.setThreads(threads);

function turn(fn: () => void): number {
  let n = 0;
  const t0 = performance.now();
  do {
    fn();
    n++;
  } while (performance.now() - t0 < 30);
  return (performance.now() - t0) / n;
}
/** Variants interleaved round by round: best ms of each, and the median per-round ms ratio to the first. */
function compare(fns: (() => void)[]): { best: number[]; ratio: number[] } {
  fns.forEach((f) => f());
  const t = fns.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) fns.forEach((f, i) => t[i]!.push(turn(f)));
  const med = (v: number[]) => v.slice().sort((x, y) => x - y)[v.length >> 1]!;
  return { best: t.map((v) => Math.min(...v)), ratio: t.map((v) => med(v.map((x, r) => x / t[0]![r]!))) };
}

let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
const kernels = a.kernels();
if (!json) {
  console.log(`codebookGemm vs fp32 SGEMM, ${threads} thread(s), ${rounds} interleaved rounds; sgemm: ${kernels.sgemm}; codebook lookup: ${a.codebookKernel?.() ?? '?'}`);
  console.log('| M×K×N | fp32 ms | 4-bit ×16 ms | ratio | 8-bit ×64 ms | ratio | 8-bit ×256 ms | ratio |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
}
const off = new Int32Array([0]);
for (const [M, K, N] of shapes) {
  const x = Float32Array.from({ length: M * K }, rnd);
  const out = new Float32Array(M * N);
  const books = ([[4, 16], [8, 64], [8, 256]] as const).map(([bits, k]) => {
    const codes = Int32Array.from({ length: N * K }, () => Math.floor((rnd() + 0.5) * k) % k);
    const cb = Float32Array.from({ length: k }, rnd);
    return { bits, k, packed: packCodes(codes, bits), cb };
  });
  // the fp32 weight of the 4-bit layer (the values do not change the SGEMM's time)
  const W = Float32Array.from({ length: N * K }, (_, i) => books[0]!.cb[i % 16]!);
  const r = compare([
    () => a.sgemm(x, W, out, 1, M, N, K, off, off, K, K, false, true, false),
    ...books.map((b) => () => codebookGemm(a, x, M, K, N, b.packed, b.bits, b.cb, null, out)),
  ]);
  if (json) {
    const names = ['fp32', '4-bit x16', '8-bit x64', '8-bit x256'];
    names.forEach((variant, i) => console.log(JSON.stringify({ m: M, k: K, n: N, threads, variant, ms: r.best[i], ratio_vs_fp32: r.ratio[i], kernel: i ? a.codebookKernel?.() : kernels.sgemm })));
  } else
    console.log(`| ${M}×${K}×${N} | ${r.best[0]!.toFixed(3)} | ${[1, 2, 3].map((i) => `${r.best[i]!.toFixed(3)} | ${r.ratio[i]!.toFixed(2)}`).join(' | ')} |`);
}
