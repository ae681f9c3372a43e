/**
 * npm run bench:ops [-- --json] [-- --quick]
 *
 * 1. Per-call overhead of tiny ops, µs: through the native backend wrapper (Backend level, preallocated output), the
 *    raw addon call, and `ref` — at 16 elements (the wrapper sends ≤ 16-element outputs to `ref`, see
 *    src/backend/native/index.ts) and at 64 / 1024 (native). Then the same tiny ops through the Tensor API
 *    (validation, allocation, autograd bookkeeping, backend call) on `native` and on `ref`.
 * 2. Throughput of large kernels on [512, 1024] float32 (2 MiB per array), Backend level with preallocated outputs:
 *    ms per call and GB/s of input + output traffic, native at 1 and 2 threads against `ref`.
 *
 * Every number is the best of several rounds (this VM's second core is shared, ENGINE-NOTES: compare within one
 * run, never against absolute targets). --json prints one JSON object per line instead of the tables. Every row
 * carries `kernel`: the path the addon dispatched to (its kernels() name for the op's family, e.g. 'elementwise
 * avx2'), or 'ref'; SHRINK_ISA=avx2|portable measures a lower path on the same machine.
 */
import type { Backend, View } from '../src/backend/backend.ts';
import { refBackend } from '../src/backend/ref/index.ts';
import { createNativeBackend, loadNative, nativeLoadError } from '../src/backend/native/index.ts';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const addon = loadNative();
if (!addon) {
  console.error(`bench:ops: the native addon is not available (${nativeLoadError()}); run npm run build:native`);
  process.exit(1);
}
const native = createNativeBackend(addon, refBackend);

interface Row {
  section: 'overhead' | 'tensor' | 'throughput';
  name: string;
  backend: string;
  threads: number;
  us: number;
  gbps?: number;
  /** the kernel path: '<family> <addon kernels() name>' on native, 'ref' on ref */
  kernel?: string;
}
const rows: Row[] = [];
const kernelNames = addon.kernels();
/** The kernel family (native/*.cc) an op of this bench runs in. */
function familyOf(name: string): string {
  if (/^(sum|max)/.test(name)) return 'reduce';
  if (/^(softmax|layerNorm|rmsNorm|crossEntropy|adamw)/.test(name)) return 'nn';
  if (/^f32ToF16/.test(name)) return 'convert';
  return 'elementwise';
}
function kernelOf(r: Row): string {
  if (r.backend === 'ref') return 'ref';
  const f = familyOf(r.name);
  // the Backend wrapper sends outputs of ≤ 16 floats to ref by design
  if (r.backend === 'native' && /\(16\)$/.test(r.name)) return 'ref (≤ 16 elements)';
  return `${f} ${kernelNames[f] ?? '?'}`;
}

/** Best time per call in µs over `rounds` rounds of at least `minMs` each. */
function timeUs(fn: () => void, minMs = quick ? 40 : 120, rounds = quick ? 3 : 5): number {
  for (let i = 0; i < 50; i++) fn();
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    let batch = 1;
    const t0 = performance.now();
    let el = 0;
    while ((el = performance.now() - t0) < minMs) {
      for (let i = 0; i < batch; i++) fn();
      n += batch;
      if (batch < 4096) batch *= 2;
    }
    best = Math.min(best, (el * 1000) / n);
  }
  return best;
}

const fill = (n: number, lo = -2, hi = 2): Float32Array => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + ((hi - lo) * ((i * 2654435761) % 1000)) / 1000;
  return a;
};
const flat = (a: Float32Array): View => ({ data: a, offset: 0, strides: [1] });

// ---- 1. per-call overhead, Backend level

addon.setThreads(1);
for (const n of [16, 64, 1024]) {
  const x = fill(n);
  const y = fill(n, 0.5, 1.5);
  const out = new Float32Array(n);
  const sh = [n];
  const cases: [string, (be: Backend) => void][] = [
    [`add(${n})`, (be) => be.binary('add', flat(x), flat(y), sh, out)],
    [`exp(${n})`, (be) => be.unary('exp', flat(x), sh, out, 0, 0)],
    [`gelu(${n})`, (be) => be.unary('gelu', flat(x), sh, out, 0, 0)],
  ];
  for (const [name, fn] of cases) {
    rows.push({ section: 'overhead', name, backend: 'native', threads: 1, us: timeUs(() => fn(native)) });
    rows.push({ section: 'overhead', name, backend: 'ref', threads: 1, us: timeUs(() => fn(refBackend)) });
  }
  // the raw addon call (off-heap arrays, as the wrapper passes them)
  const xo = new Float32Array(new ArrayBuffer(n * 4));
  const yo = new Float32Array(new ArrayBuffer(n * 4));
  const oo = new Float32Array(new ArrayBuffer(n * 4));
  rows.push({ section: 'overhead', name: `add(${n})`, backend: 'addon', threads: 1, us: timeUs(() => addon.binaryContig(0, xo, 0, yo, 0, oo)) });
  rows.push({ section: 'overhead', name: `exp(${n})`, backend: 'addon', threads: 1, us: timeUs(() => addon.unary(2, xo, 0, oo, n, 0, 0)) });
}

// ---- 1b. the same through the Tensor API, when the Tensor layer is there

let tensorApi: typeof import('../src/index.ts') | null = null;
try {
  tensorApi = await import('../src/index.ts');
} catch (e) {
  console.error(`bench:ops: Tensor API not measured (src/index.ts did not load: ${e instanceof Error ? e.message : String(e)})`);
}
if (tensorApi) {
  const { Tensor, setBackend, noGrad } = tensorApi;
  noGrad(() => {
    const a = Tensor.randn([16]);
    const b = Tensor.randn([16]);
    for (const be of ['native', 'ref'] as const) {
      setBackend(be);
      rows.push({ section: 'tensor', name: 'add(16)', backend: be, threads: 1, us: timeUs(() => a.add(b)) });
      rows.push({ section: 'tensor', name: 'mul scalar(16)', backend: be, threads: 1, us: timeUs(() => a.mul(2)) });
      rows.push({ section: 'tensor', name: 'exp(16)', backend: be, threads: 1, us: timeUs(() => a.exp()) });
      rows.push({ section: 'tensor', name: 'sum(16)', backend: be, threads: 1, us: timeUs(() => a.sum()) });
    }
    setBackend('native');
  });
}

// ---- 2. throughput, [512, 1024]

const R = 512;
const C = 1024;
const N = R * C;
const B = N * 4; // bytes per full array
const x = fill(N);
const y = fill(N, 0.5, 1.5);
const g = fill(N, -1, 1);
const out = new Float32Array(N);
const out2 = new Float32Array(N);
const row = fill(C);
const w = fill(C, 0.5, 1.5);
const stat1 = new Float32Array(R);
const stat2 = new Float32Array(R);
const colOut = new Float32Array(C);
const V = 30522;
const ceRows = 64;
const logits = fill(ceRows * V, -4, 4);
const targets = Int32Array.from({ length: ceRows }, (_, i) => (i * 977) % V);
const ceLoss = new Float32Array(ceRows);
const ceLse = new Float32Array(ceRows);
const ceG = new Float32Array(ceRows).fill(1 / ceRows);
const ceOut = new Float32Array(ceRows * V);
const P = 1 << 20;
const p = fill(P);
const pg = fill(P, -0.1, 0.1);
const pm = new Float32Array(P);
const pv = new Float32Array(P);
const h16 = new Uint16Array(P);
const full: View = { data: x, offset: 0, strides: [C, 1] };
const xSub = x.map((v) => v * 5e-39);
const half = new Float32Array(N).fill(0.5);
const shape = [R, C];

const big: [string, (be: Backend) => void, number][] = [
  ['add', (be) => be.binary('add', full, { data: y, offset: 0, strides: [C, 1] }, shape, out), 3 * B],
  ['add row-broadcast', (be) => be.binary('add', full, { data: row, offset: 0, strides: [0, 1] }, shape, out), 2 * B],
  ['mul strided (b transposed)', (be) => be.binary('mul', full, { data: y, offset: 0, strides: [1, R] }, shape, out), 3 * B],
  ['exp', (be) => be.unary('exp', full, shape, out, 0, 0), 2 * B],
  ['gelu', (be) => be.unary('gelu', full, shape, out, 0, 0), 2 * B],
  ['gelu backward', (be) => be.unaryBackward('gelu', x, x, g, out, 0, 0), 3 * B],
  ['silu', (be) => be.unary('silu', full, shape, out, 0, 0), 2 * B],
  ['transpose copy', (be) => be.unary('copy', { data: x, offset: 0, strides: [1, C] }, [C, R], out, 0, 0), 2 * B],
  ['softmax', (be) => be.softmax(x, R, C, out, false), 2 * B],
  ['softmax backward', (be) => be.softmaxBackward(y, g, R, C, out, false), 3 * B],
  ['layerNorm', (be) => be.layerNorm(x, w, row, R, C, 1e-5, out, stat1, stat2), 2 * B],
  ['layerNorm backward', (be) => be.layerNormBackward(x, w, stat1, stat2, g, R, C, out2, new Float32Array(C), new Float32Array(C)), 3 * B],
  ['rmsNorm', (be) => be.rmsNorm(x, w, R, C, 1e-6, out, stat2), 2 * B],
  ['sum rows (inner=1)', (be) => be.reduce('sum', x, R, C, 1, stat1, null), B],
  ['sum cols (inner=1024)', (be) => be.reduce('sum', x, 1, R, C, colOut, null), B],
  ['max rows + argmax', (be) => be.reduce('max', x, R, C, 1, stat1, new Int32Array(R)), B],
  ['crossEntropy [64,30522]', (be) => be.crossEntropy(logits, targets, ceRows, V, -100, 0.1, ceLoss, ceLse), ceRows * V * 4],
  ['crossEntropy bwd [64,30522]', (be) => be.crossEntropyBackward(logits, targets, ceLse, ceG, ceRows, V, -100, 0.1, ceOut), 2 * ceRows * V * 4],
  ['adamw 1M', (be) => be.adamw(p, pg, pm, pv, 1e-4, 0.9, 0.999, 1e-8, 0.01, 0.5, 0.5), 7 * P * 4],
  // x·0.5 with every x and result subnormal (|x| < 1.2e-38): as fast as 'mul' while the kernels flush denormals
  // (the default); SHRINK_DENORMALS=keep shows what gradual underflow costs on this CPU
  ['mul subnormal x', (be) => be.binary('mul', { data: xSub, offset: 0, strides: [C, 1] }, { data: half, offset: 0, strides: [C, 1] }, shape, out), 3 * B],
  ['mul', (be) => be.binary('mul', full, { data: half, offset: 0, strides: [C, 1] }, shape, out), 3 * B],
];
for (const [name, fn, traffic] of big) {
  for (const [be, label, threads] of [[native, 'native', 1], [native, 'native', 2], [refBackend, 'ref', 1]] as const) {
    addon.setThreads(threads);
    const us = timeUs(() => fn(be), label === 'ref' ? (quick ? 60 : 150) : undefined, label === 'ref' ? 3 : undefined);
    rows.push({ section: 'throughput', name, backend: label, threads, us, gbps: traffic / (us * 1e3) });
  }
}
for (const threads of [1, 2]) {
  addon.setThreads(threads);
  const us = timeUs(() => addon.f32ToF16(p, h16));
  rows.push({ section: 'throughput', name: 'f32ToF16 1M', backend: 'native', threads, us, gbps: (6 * P) / (us * 1e3) });
}
addon.setThreads(2);

// ---- output

for (const r of rows) r.kernel = kernelOf(r);
if (json) {
  for (const r of rows) console.log(JSON.stringify({ ...r, us: +r.us.toFixed(4), ...(r.gbps !== undefined ? { gbps: +r.gbps.toFixed(2) } : {}) }));
} else {
  const info = addon.info();
  console.log(`native addon: ISA ${info.isa}${info.isaRequested ? ` (SHRINK_ISA=${info.isaRequested})` : ''}, denormals ${info.denormals}, pool threads=${info.threads}; best of ${quick ? 3 : 5} rounds`);
  console.log(`kernels: ${Object.entries(kernelNames).map(([f, k]) => `${f} ${k}`).join(', ')}\n`);
  const get = (section: Row['section'], name: string, backend: string, threads = 1) =>
    rows.find((r) => r.section === section && r.name === name && r.backend === backend && r.threads === threads);
  console.log('Per-call overhead, µs (Backend level, output preallocated; ≤ 16 elements run on ref by design)');
  console.log('| op | native kernel | native wrapper | raw addon call | ref |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const name of [...new Set(rows.filter((r) => r.section === 'overhead').map((r) => r.name))]) {
    const a = get('overhead', name, 'addon');
    const nat = get('overhead', name, 'native')!;
    console.log(`| ${name} | ${nat.kernel} | ${nat.us.toFixed(3)} | ${a ? a.us.toFixed(3) : '–'} | ${get('overhead', name, 'ref')!.us.toFixed(3)} |`);
  }
  if (tensorApi) {
    console.log('\nTiny ops through the Tensor API, µs per op (allocation + validation + backend call)');
    console.log('| op | native kernel | native | ref |');
    console.log('| --- | --- | --- | --- |');
    for (const name of [...new Set(rows.filter((r) => r.section === 'tensor').map((r) => r.name))])
      console.log(`| ${name} | ${get('tensor', name, 'native')!.kernel} | ${get('tensor', name, 'native')!.us.toFixed(3)} | ${get('tensor', name, 'ref')!.us.toFixed(3)} |`);
  } else console.log('\nTensor API: not measured (src/index.ts not available)');
  console.log(`\nLarge kernels: ms per call (GB/s of input + output traffic); [${R}, ${C}] unless named`);
  console.log('| op | native kernel | native 1t | native 2t | ref | native 1t / ref | 2t / 1t |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const name of [...new Set(rows.filter((r) => r.section === 'throughput').map((r) => r.name))]) {
    const n1 = get('throughput', name, 'native', 1)!;
    const n2 = get('throughput', name, 'native', 2)!;
    const f = get('throughput', name, 'ref', 1);
    const c = (r: Row) => `${(r.us / 1000).toFixed(3)} (${r.gbps!.toFixed(1)})`;
    console.log(`| ${name} | ${n1.kernel} | ${c(n1)} | ${c(n2)} | ${f ? c(f) : '–'} | ${f ? `${(f.us / n1.us).toFixed(1)}×` : '–'} | ${(n1.us / n2.us).toFixed(2)}× |`);
  }
}
