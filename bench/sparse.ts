/**
 * node --import tsx bench/sparse.ts [-- --threads 1] [-- --shape 768x3072]
 *
 * The sparse kernels of pruned layers (native/sparse.cc) against the dense fp32 GEMM (the `linear` op on the native
 * backend) for one layer W [N, K] (default 768×3072 as BERT-base's FFN down projection: in 3072, out 768) at several
 * sparsities and batch rows M: the CSR kernel, the densifying packed GEMM, and dense. Variants interleaved over 9 rounds (each call
 * repeated for ≥ 30 ms): best time of each, speed-up = median over rounds of dense ms / variant ms. This is where SPARSE_DISPATCH's break-even densities (src/compress/prune/sparse.ts) come from.
 */
import { Tensor } from '../src/tensor/tensor.ts';
import { linear } from '../src/ops/matmul.ts';
import { noGrad } from '../src/tensor/autograd.ts';
import { nativeAddon } from '../src/backend/registry.ts';
import { csrFromDense, sparseAddon } from '../src/compress/prune/sparse.ts';
import { l1UnstructuredMask } from '../src/compress/prune/magnitude.ts';

const arg = (k: string, d: string) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1]! : d; };
const threads = Number(arg('--threads', '1'));
const [N, K] = arg('--shape', '768x3072').split('x').map(Number) as [number, number];
const a = sparseAddon();
if (!a) throw new Error('needs the native backend with the sparse kernels (npm run build:native)');
(nativeAddon() as unknown as { setThreads(n: number): void }).setThreads(threads);

function once(fn: () => void): number {
  let n = 0;
  const t0 = performance.now();
  do { fn(); n++; } while (performance.now() - t0 < 30);
  return (performance.now() - t0) / n;
}
/** Variants interleaved round by round (the VM is shared): best ms of each, and the median per-round ratio to the first. */
function compare(fns: (() => void)[], rounds = 9): { best: number[]; ratio: number[] } {
  fns.forEach((f) => f());
  const t = fns.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) fns.forEach((f, i) => t[i]!.push(once(f)));
  const med = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1]!;
  return { best: t.map((a) => Math.min(...a)), ratio: t.map((a) => med(a.map((v, r) => t[0]![r]! / v))) };
}

console.log(`W [${N}, ${K}], ${threads} thread(s), kernel: ${a.sparseKernel()}`);
console.log('| sparsity | M | dense ms | csr ms | densify ms | csr speed-up | densify speed-up |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
const w0 = Tensor.randn([N, K]);
for (const s of (arg('--sparsity', '0.5,0.7,0.75,0.8,0.9,0.95')).split(',').map(Number)) {
  const wd = new Float32Array(w0.data as Float32Array);
  const mask = l1UnstructuredMask(wd, s);
  for (let i = 0; i < wd.length; i++) if (!mask[i]) wd[i] = 0;
  const W = new Tensor(wd, [N, K], 'float32');
  const c = csrFromDense(wd, N, K);
  for (const M of (arg('--m', '1,4,32,256,2048')).split(',').map(Number)) {
    const x = Tensor.randn([M, K]);
    const xd = x.data as Float32Array;
    const out = new Float32Array(M * N);
    const r = compare([
      () => noGrad(() => linear(x, W, null)),
      () => a.sparseGemm(xd, M, K, c.rowPtr, c.colIdx, c.values, N, null, out),
      () => a.sparseDenseGemm(xd, M, K, c.rowPtr, c.colIdx, c.values, N, null, out),
    ]);
    console.log(`| ${(100 * s).toFixed(0)} % | ${M} | ${r.best[0]!.toFixed(3)} | ${r.best[1]!.toFixed(3)} | ${r.best[2]!.toFixed(3)} | ${r.ratio[1]!.toFixed(2)}× | ${r.ratio[2]!.toFixed(2)}× |`);
  }
}
