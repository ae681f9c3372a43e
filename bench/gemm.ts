/**
 * npm run bench:gemm [-- --json] [-- --quick]
 *
 * fp32 GEMM throughput of the native addon at 1 and 2 threads, and OpenBLAS's on the same shapes in the same
 * process when the optional benchmark addon was built (libopenblas-dev installed). Each cell is the best of
 * several rounds of ≥ 300 ms; OpenBLAS gets a 300 ms pause after each round so its spinning threads go idle.
 * This is a shared VM: compare columns from the same run, never against fixed numbers.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../src/backend/native/index.ts';
import { Generator } from '../src/tensor/random.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const addon = loadNative();
if (!addon) {
  console.error('bench:gemm: the native addon is not built (npm run build:native)');
  process.exit(1);
}
const blasPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../build/Release/shrink_blas_bench.node');
const blas = existsSync(blasPath)
  ? (createRequire(import.meta.url)(blasPath) as { sgemm(a: Float32Array, b: Float32Array, c: Float32Array, M: number, N: number, K: number): void; setThreads(n: number): void })
  : null;

const SHAPES: [number, number, number][] = quick
  ? [[256, 256, 256], [128, 768, 768]]
  : [[256, 256, 256], [512, 512, 512], [1024, 1024, 1024], [2048, 2048, 2048], [4096, 768, 3072], [4096, 3072, 768], [128, 128, 512], [128, 768, 768]];
const ROUNDS = quick ? 2 : 3;
const ROUND_MS = quick ? 150 : 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const g = new Generator(1);
const rnd = (n: number) => Float32Array.from({ length: n }, () => g.random() - 0.5);

async function measure(run: () => void, flops: number, pause: number): Promise<number> {
  run(); // warm up (packing buffers, pool start)
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ROUND_MS) {
      run();
      n++;
    }
    best = Math.max(best, (flops * n) / ((performance.now() - t0) / 1000) / 1e9);
    if (pause) await sleep(pause);
  }
  return best;
}

/** max |ours − float64| over a sample of entries, as a sanity check. */
function maxErr(A: Float32Array, B: Float32Array, C: Float32Array, M: number, N: number, K: number): number {
  let e = 0;
  for (let s = 0; s < 64; s++) {
    const i = (s * 7919) % M;
    const j = (s * 104729) % N;
    let acc = 0;
    for (let k = 0; k < K; k++) acc += A[i * K + k]! * B[k * N + j]!;
    e = Math.max(e, Math.abs(acc - C[i * N + j]!));
  }
  return e;
}

interface Row {
  m: number;
  k: number;
  n: number;
  threads: number;
  gflops: number;
  blas?: number;
}
const rows: Row[] = [];
const errs = new Map<string, number>();
for (const [M, K, N] of SHAPES) {
  const A = rnd(M * K);
  const B = rnd(K * N);
  const C = new Float32Array(M * N);
  const off = new Int32Array([0]);
  const flops = 2 * M * N * K;
  for (const threads of [1, 2]) {
    addon.setThreads(threads);
    const ours = await measure(() => addon.sgemm(A, B, C, 1, M, N, K, off, off, K, N, false, false, false), flops, 0);
    errs.set(`${M}x${K}x${N}`, maxErr(A, B, C, M, N, K));
    let theirs: number | undefined;
    if (blas) {
      blas.setThreads(threads);
      theirs = await measure(() => blas.sgemm(A, B, C, M, N, K), flops, 300);
    }
    const row: Row = { m: M, k: K, n: N, threads, gflops: +ours.toFixed(1), ...(theirs !== undefined ? { blas: +theirs.toFixed(1) } : {}) };
    rows.push(row);
    if (json) {
      console.log(JSON.stringify({ m: M, k: K, n: N, threads, gflops: row.gflops }));
      if (theirs !== undefined) console.log(JSON.stringify({ m: M, k: K, n: N, threads, gflops: row.blas, impl: 'openblas', ratio: +(ours / theirs).toFixed(3) }));
    }
  }
}

if (!json) {
  const hdr = blas ? '| M×K×N | ours 1t | OpenBLAS 1t | ratio 1t | ours 2t | OpenBLAS 2t | ratio 2t | max abs err |' : '| M×K×N | ours 1t | ours 2t | max abs err |';
  console.log(`fp32 GEMM, GFLOPS (best of ${ROUNDS} × ${ROUND_MS} ms)${blas ? '; ratio = ours / OpenBLAS' : '; OpenBLAS not installed (apt-get install libopenblas-dev, then npm run build:native)'}`);
  console.log(hdr);
  console.log(hdr.replace(/[^|]+/g, ' --- '));
  for (const [M, K, N] of SHAPES) {
    const r1 = rows.find((r) => r.m === M && r.k === K && r.n === N && r.threads === 1)!;
    const r2 = rows.find((r) => r.m === M && r.k === K && r.n === N && r.threads === 2)!;
    const shape = M === K && K === N ? `${M}³` : `${M}×${K}×${N}`;
    const err = errs.get(`${M}x${K}x${N}`)!.toExponential(1);
    if (blas)
      console.log(`| ${shape} | ${r1.gflops} | ${r1.blas} | ${(r1.gflops / r1.blas!).toFixed(2)} | ${r2.gflops} | ${r2.blas} | ${(r2.gflops / r2.blas!).toFixed(2)} | ${err} |`);
    else console.log(`| ${shape} | ${r1.gflops} | ${r2.gflops} | ${err} |`);
  }
}
