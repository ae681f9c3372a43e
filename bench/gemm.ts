/**
 * npm run bench:gemm [-- --json] [-- --quick] [-- --rounds N] [-- --int8-only] [-- --shapes MxKxN,…]
 *                    [-- --kernels auto|all|avx512,avx2,portable] [-- --cpu-time]
 *
 * fp32 GEMM throughput (GFLOPS) of the native addon at 1 and 2 threads on square and transformer shapes, and
 * OpenBLAS's on the same shapes in the same process when the optional benchmark addon was built (libopenblas-dev
 * installed, then `npm run build:native`). Rounds alternate ours (each selected kernel in turn) / OpenBLAS and each
 * cell is the best round; every round runs ≥ 300 ms, and OpenBLAS rounds are followed by a 300 ms pause so its
 * spinning threads go idle before ours run. Also prints max |ours − float64| over a sample of output entries.
 *
 * Every line names the SGEMM kernel it measured (e.g. 'avx512 8x48', 'avx2 6x16'). --kernels picks them: 'auto'
 * (default) is the one the addon chooses; 'all' is every family this CPU runs (AVX-512 and AVX2 on an AVX-512
 * machine), interleaved round by round so the ratio between them is fair on a noisy machine; families the CPU (or
 * SHRINK_ISA) lacks are skipped with a message. --shapes replaces the shape list (M×K×N, e.g. 1024x1024x1024).
 * --cpu-time divides by the process's CPU time (user + system) instead of wall time: GFLOP per CPU-second, which
 * stays meaningful when other processes share the cores (1 thread: the kernel's own speed; 2 threads: per-core
 * efficiency, where threads that spin while waiting — OpenBLAS's do — count against their library).
 *
 * This is a shared VM: compare columns of the same run, never against fixed numbers.
 *
 * Then the exact int8 GEMM of dynamic int8 Linear layers (native/quant.cc): activations quantized per row to
 * 7-bit codes, int8 weights, int32 accumulation, fused dequantize epilogue — timed with the activation quantization
 * included, beside our fp32 GEMM on the same shape (target ≥ 1.8×).
 *
 * --json: one object per line, {"m","k","n","threads","gflops","kernel"} for ours, and
 *         {"m","k","n","threads","gflops","impl":"openblas","core","kernel","ratio"} (core = OpenBLAS's kernel family; ratio = ours with that kernel /
 *         OpenBLAS) when available,
 *         {"m","k","n","threads","dtype":"int8","gops","ratio"} (ratio = int8 GOPS / fp32 GFLOPS).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

type F32 = Float32Array;
type Family = 'avx512' | 'avx2' | 'portable';
interface ShrinkAddon {
  setThreads(n: number): number;
  setGemmKernel?(name?: 'auto' | Family): Family;
  kernels?(): Record<string, string>;
  sgemm(a: F32, b: F32, out: F32, batch: number, M: number, N: number, K: number, aOff: Int32Array, bOff: Int32Array, lda: number, ldb: number, transA: boolean, transB: boolean, accumulate: boolean): void;
}
interface Int8Addon {
  quantizeRowsU7(x: F32, M: number, K: number, Kp: number, q: Uint8Array, scale: F32, zero: Int32Array): void;
  packInt8Weight(w: Int8Array, N: number, K: number, packed: Int8Array, rowSum: Int32Array): void;
  int8Gemm(qa: Uint8Array, M: number, Kp: number, packed: Int8Array, N: number, sa: F32, za: Int32Array, sw: F32, swPerTensor: boolean, rowSum: Int32Array, bias: F32 | null, out: F32, maxCode?: number): void;
  quantizeRows(x: F32, M: number, K: number, Kp: number, qmax: number, q: Uint8Array, scale: F32, zero: Int32Array): void;
  int8Kernel(): string;
}
interface BlasAddon {
  sgemm(a: F32, b: F32, out: F32, M: number, N: number, K: number): void;
  setThreads(n: number): void;
  corename?(): string;
}

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const cpuTime = args.includes('--cpu-time');
const int8Only = args.includes('--int8-only');
const roundsArg = args.indexOf('--rounds');
const ROUNDS = roundsArg >= 0 ? Math.max(1, Number(args[roundsArg + 1]) || 1) : quick ? 2 : 4;
const ROUND_MS = quick ? 150 : 300;
const BLAS_PAUSE_MS = 300;
const THREADS = [1, 2];

const release = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../build/Release');
const require = createRequire(import.meta.url);
const load = <T>(file: string): T | null => (existsSync(path.join(release, file)) ? (require(path.join(release, file)) as T) : null);
const addon = load<ShrinkAddon>('shrink_native.node');
if (!addon) {
  console.error(`bench:gemm: ${path.join(release, 'shrink_native.node')} is not built (npm run build:native)`);
  process.exit(1);
}
const blas = load<BlasAddon>('shrink_blas_bench.node');

/** [M, K, N]: C (M×N) = A (M×K) · B (K×N). */
const shapesArg = args.indexOf('--shapes');
const kernelsArg = args.indexOf('--kernels');
const KERNELS_REQ = kernelsArg >= 0 ? args[kernelsArg + 1] ?? 'auto' : 'auto';
const SHAPES: [number, number, number][] = int8Only
  ? []
  : shapesArg >= 0
  ? args[shapesArg + 1]!.split(',').map((s) => s.split('x').map(Number) as [number, number, number])
  : quick
  ? [
      [256, 256, 256],
      [128, 768, 768],
    ]
  : [
      [256, 256, 256],
      [512, 512, 512],
      [1024, 1024, 1024],
      [2048, 2048, 2048],
      [4096, 768, 3072], // BERT-base FFN up, 32 × 128 tokens
      [4096, 3072, 768], // FFN down
      [128, 128, 512],
      [128, 768, 768], // attention projection, one sequence of 128
    ];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let seed = 1;
function rand(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const rnd = (n: number) => Float32Array.from({ length: n }, () => rand() - 0.5);

/** GFLOPS of one round: calls `run` until ≥ ROUND_MS have passed (per wall-clock or, with --cpu-time, CPU second). */
function round(run: () => void, flops: number): number {
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let t = t0;
  do {
    run();
    n++;
    t = performance.now();
  } while (t - t0 < ROUND_MS);
  const c = process.cpuUsage(c0);
  const seconds = cpuTime ? (c.user + c.system) / 1e6 : (t - t0) / 1e3;
  return (flops * n) / seconds / 1e9;
}

/** max |C − A·B (float64)| over a sample of entries. */
function maxErr(A: F32, B: F32, C: F32, M: number, N: number, K: number): number {
  let e = 0;
  for (let s = 0; s < 64; s++) {
    const i = (s * 7919) % M;
    const j = (s * 104729 + 13) % N;
    let acc = 0;
    for (let k = 0; k < K; k++) acc += A[i * K + k]! * B[k * N + j]!;
    e = Math.max(e, Math.abs(acc - C[i * N + j]!));
  }
  return e;
}

/**
 * One implementation measured on a shape: `make` prepares inputs and returns the call to time. Kept as a list so
 * more rows (e.g. an int8 GEMM) can be added next to fp32 without touching the measurement loop.
 */
interface Impl {
  name: string;
  setThreads(n: number): void;
  make(M: number, K: number, N: number): { run: () => void; check?: () => number };
  pauseMs: number;
}

/** Selects a kernel family (setGemmKernel) and returns the name of the SGEMM kernel that then runs. */
function useKernel(family: 'auto' | Family): string {
  const fam = addon!.setGemmKernel?.(family) ?? 'unknown';
  return addon!.kernels?.().sgemm ?? fam;
}
const autoKernel = useKernel('auto');
/** The kernels to measure: [family to select, kernel name]. */
const KERNELS: ['auto' | Family, string][] = [];
if (KERNELS_REQ === 'auto') KERNELS.push(['auto', autoKernel]);
else {
  const want: Family[] = KERNELS_REQ === 'all' ? ['avx512', 'avx2'] : (KERNELS_REQ.split(',') as Family[]);
  for (const fam of want) {
    const got = addon.setGemmKernel?.(fam);
    if (got !== fam) console.log(`bench:gemm: skipping the ${fam} SGEMM kernel: ${got === undefined ? 'this addon cannot select kernels' : `this CPU (or SHRINK_ISA) runs ${got} at most`}`);
    else KERNELS.push([fam, useKernel(fam)]);
  }
  useKernel('auto');
  if (!KERNELS.length) KERNELS.push(['auto', autoKernel]);
}
if (!json) console.log(`SGEMM kernel chosen at run time: ${autoKernel}; measuring: ${KERNELS.map((k) => k[1]).join(', ')}`);

const ours: Impl = {
  name: 'ours',
  setThreads: (n) => void addon.setThreads(n),
  pauseMs: 0,
  make(M, K, N) {
    const A = rnd(M * K), B = rnd(K * N), C = new Float32Array(M * N), off = new Int32Array([0]);
    return { run: () => addon.sgemm(A, B, C, 1, M, N, K, off, off, K, N, false, false, false), check: () => maxErr(A, B, C, M, N, K) };
  },
};
const openblas: Impl | null = blas && {
  name: 'openblas',
  setThreads: (n) => blas.setThreads(n),
  pauseMs: BLAS_PAUSE_MS,
  make(M, K, N) {
    const A = rnd(M * K), B = rnd(K * N), C = new Float32Array(M * N);
    return { run: () => blas.sgemm(A, B, C, M, N, K) };
  },
};

interface Cell {
  gflops: number[]; // per entry of KERNELS
  blas?: number;
  err: number;
}
const cells = new Map<string, Cell>();
const key = (M: number, K: number, N: number, t: number) => `${M}x${K}x${N}@${t}`;

for (const [M, K, N] of SHAPES) {
  const flops = 2 * M * N * K;
  const mine = ours.make(M, K, N);
  const theirs = openblas?.make(M, K, N);
  for (const threads of THREADS) {
    ours.setThreads(threads);
    openblas?.setThreads(threads);
    for (const [fam] of KERNELS) {
      useKernel(fam);
      mine.run(); // warm up: packing buffers, pool start, first touch of C
    }
    if (theirs) {
      theirs.run();
      await sleep(BLAS_PAUSE_MS);
    }
    const best = KERNELS.map(() => 0);
    let bestBlas = 0;
    let err = 0;
    for (let r = 0; r < ROUNDS; r++) {
      KERNELS.forEach(([fam], i) => {
        useKernel(fam);
        best[i] = Math.max(best[i]!, round(mine.run, flops));
        if (r === 0) err = Math.max(err, mine.check!());
      });
      if (theirs) {
        bestBlas = Math.max(bestBlas, round(theirs.run, flops));
        await sleep(openblas!.pauseMs);
      }
    }
    useKernel('auto');
    const cell: Cell = { gflops: best, err, ...(theirs ? { blas: bestBlas } : {}) };
    cells.set(key(M, K, N, threads), cell);
    if (json)
      KERNELS.forEach(([, kernel], i) => {
        console.log(JSON.stringify({ m: M, k: K, n: N, threads, gflops: +best[i]!.toFixed(1), kernel }));
        if (cell.blas !== undefined)
          console.log(JSON.stringify({ m: M, k: K, n: N, threads, gflops: +cell.blas.toFixed(1), impl: 'openblas', core: blas!.corename?.(), kernel, ratio: +(best[i]! / cell.blas).toFixed(3) }));
      });
  }
}

if (!json && !int8Only) {
  const f = (x: number) => x.toFixed(1);
  const cols = ['M×K×N'];
  for (const t of THREADS) {
    for (const [, name] of KERNELS) cols.push(`${name} ${t}t`, ...(blas ? [`ratio ${t}t`] : []));
    if (blas) cols.push(`OpenBLAS ${t}t`);
  }
  cols.push('max abs err');
  console.log(
    `fp32 GEMM, ${cpuTime ? 'GFLOP per CPU-second' : 'GFLOPS'} (best of ${ROUNDS} rounds × ≥ ${ROUND_MS} ms, kernels and OpenBLAS interleaved)` +
      (blas ? `; ratio = ours (that kernel) / OpenBLAS (its ${blas.corename?.() ?? 'unnamed'} kernels)` : '; OpenBLAS column absent: apt-get install libopenblas-dev, then npm run build:native'),
  );
  console.log(`| ${cols.join(' | ')} |`);
  console.log(`| ${cols.map(() => '---').join(' | ')} |`);
  for (const [M, K, N] of SHAPES) {
    const row = [M === K && K === N ? `${M}³` : `${M}×${K}×${N}`];
    let err = 0;
    for (const t of THREADS) {
      const c = cells.get(key(M, K, N, t))!;
      err = Math.max(err, c.err);
      KERNELS.forEach((_, i) => row.push(f(c.gflops[i]!), ...(c.blas !== undefined ? [(c.gflops[i]! / c.blas).toFixed(2)] : [])));
      if (c.blas !== undefined) row.push(f(c.blas));
    }
    row.push(err.toExponential(1));
    console.log(`| ${row.join(' | ')} |`);
  }
}

// ---- int8 (dynamic quantization) vs fp32 on the issue's shapes
const i8 = addon as unknown as Partial<Int8Addon>;
if (typeof i8.int8Gemm === 'function') {
  const q = i8 as Int8Addon;
  // VNNI accumulates u8×s8 products in int32 without 16-bit pair sums, so activations use all 8 bits; AVX2 7
  const int8Kernel = typeof q.int8Kernel === 'function' ? q.int8Kernel() : 'avx2';
  const qmax = /vnni/.test(int8Kernel) ? 255 : 127;
  const I8_SHAPES: [number, number, number][] = quick ? [[128, 768, 768]] : [[128, 768, 768], [4096, 768, 3072], [512, 512, 512]];
  const rows: string[] = [];
  for (const [M, K, N] of I8_SHAPES) {
    const ops = 2 * M * N * K;
    const X = rnd(M * K);
    const W = Int8Array.from({ length: N * K }, () => Math.floor(rand() * 256) - 128);
    const packed = new Int8Array(Math.ceil(N / 16) * 16 * K);
    const rowSum = new Int32Array(N);
    q.packInt8Weight(W, N, K, packed, rowSum);
    const qa = new Uint8Array(M * K), sa = new Float32Array(M), za = new Int32Array(M), sw = new Float32Array(N).fill(0.01), out = new Float32Array(M * N);
    const runI8 = () => {
      if (typeof q.quantizeRows === 'function') q.quantizeRows(X, M, K, K, qmax, qa, sa, za);
      else q.quantizeRowsU7(X, M, K, K, qa, sa, za);
      q.int8Gemm(qa, M, K, packed, N, sa, za, sw, false, rowSum, null, out, qmax);
    };
    const fp = ours.make(M, K, N);
    const row = [`${M}×${K}×${N}`];
    for (const threads of THREADS) {
      ours.setThreads(threads);
      runI8();
      fp.run();
      let bi = 0;
      let bf = 0;
      for (let r = 0; r < ROUNDS; r++) {
        bf = Math.max(bf, round(fp.run, ops));
        bi = Math.max(bi, round(runI8, ops));
      }
      if (json) console.log(JSON.stringify({ m: M, k: K, n: N, threads, dtype: 'int8', gops: +bi.toFixed(1), ratio: +(bi / bf).toFixed(3), kernel: autoKernel, int8_kernel: int8Kernel, activation_bits: qmax === 255 ? 8 : 7 }));
      row.push(bf.toFixed(1), bi.toFixed(1), (bi / bf).toFixed(2));
    }
    rows.push(`| ${row.join(' | ')} |`);
  }
  if (!json) {
    console.log(`\nint8 dynamic GEMM, int8 ${int8Kernel} (${qmax === 255 ? 8 : 7}-bit activations quantized per row + exact int8 GEMM + dequantize), GOPS vs our fp32 GFLOPS (${autoKernel}), best of ${ROUNDS} rounds`);
    console.log('| M×K×N | fp32 1t | int8 1t | ratio 1t | fp32 2t | int8 2t | ratio 2t |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows) console.log(r);
  }
}
