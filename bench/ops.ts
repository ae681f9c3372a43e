/**
 * npm run bench:ops [-- --json]
 *
 * 1. Dispatch overhead: µs per tiny op (16 elements) through the full Tensor API (validation, allocation,
 *    backend call), on `native` and on `ref`. Target: ≤ 2 µs.
 * 2. Throughput of large fused kernels (GB/s of input+output traffic): native at 1 and 2 threads vs ref.
 */
import { Tensor, ops, setBackend, setNumThreads, noGrad } from '../src/index.ts';
import { nativeAddon } from '../src/backend/registry.ts';

const json = process.argv.includes('--json');
if (!nativeAddon()) {
  console.error('bench:ops: the native addon is not built (npm run build:native)');
  process.exit(1);
}

function timeUs(fn: () => void, minMs = 200): number {
  for (let i = 0; i < 200; i++) fn();
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < minMs) {
      for (let i = 0; i < 100; i++) fn();
      n += 100;
    }
    best = Math.min(best, ((performance.now() - t0) * 1000) / n);
  }
  return best;
}

const results: { name: string; backend: string; threads: number; us: number; gbps?: number }[] = [];

noGrad(() => {
  // ---- tiny ops
  const a = Tensor.randn([16]);
  const b = Tensor.randn([16]);
  for (const be of ['native', 'ref'] as const) {
    setBackend(be);
    setNumThreads(1);
    results.push({ name: 'add(16)', backend: be, threads: 1, us: timeUs(() => a.add(b)) });
    results.push({ name: 'mul scalar(16)', backend: be, threads: 1, us: timeUs(() => a.mul(2)) });
    results.push({ name: 'exp(16)', backend: be, threads: 1, us: timeUs(() => a.exp()) });
    results.push({ name: 'sum(16)', backend: be, threads: 1, us: timeUs(() => a.sum()) });
  }

  // ---- large kernels
  const x = Tensor.randn([512, 1024]);
  const y = Tensor.randn([512, 1024]);
  const w = Tensor.ones([1024]);
  const bias = Tensor.zeros([1024]);
  const bytes = x.numel * 4;
  const big: [string, () => unknown, number][] = [
    ['add [512,1024]', () => x.add(y), 3 * bytes],
    ['add row-broadcast [512,1024]+[1024]', () => x.add(bias), 2 * bytes],
    ['gelu [512,1024]', () => x.gelu(), 2 * bytes],
    ['softmax [512,1024]', () => x.softmax(-1), 2 * bytes],
    ['layerNorm [512,1024]', () => ops.layerNorm(x, [1024], w, bias), 2 * bytes],
    ['sum(dim=1) [512,1024]', () => x.sum(1), bytes],
    ['transpose+contiguous [512,1024]', () => x.t().contiguous(), 2 * bytes],
  ];
  for (const [name, fn, traffic] of big) {
    for (const [be, threads] of [['native', 1], ['native', 2], ['ref', 1]] as const) {
      setBackend(be);
      setNumThreads(threads);
      const us = timeUs(fn, be === 'ref' ? 150 : 200);
      results.push({ name, backend: be, threads, us, gbps: traffic / (us * 1e3) });
    }
  }
});

if (json) for (const r of results) console.log(JSON.stringify({ ...r, us: +r.us.toFixed(3), ...(r.gbps ? { gbps: +r.gbps.toFixed(2) } : {}) }));
else {
  console.log('Tiny-op dispatch, µs per op through the Tensor API (target ≤ 2 µs)');
  console.log('| op | native | ref |');
  console.log('| --- | --- | --- |');
  for (const name of [...new Set(results.filter((r) => r.gbps === undefined).map((r) => r.name))]) {
    const n = results.find((r) => r.name === name && r.backend === 'native')!;
    const f = results.find((r) => r.name === name && r.backend === 'ref')!;
    console.log(`| ${name} | ${n.us.toFixed(2)} | ${f.us.toFixed(2)} |`);
  }
  console.log('\nLarge kernels: ms per call (GB/s of traffic); speed-up = native 2t vs ref');
  console.log('| op | native 1t | native 2t | ref | speed-up |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const name of [...new Set(results.filter((r) => r.gbps !== undefined).map((r) => r.name))]) {
    const get = (be: string, t: number) => results.find((r) => r.name === name && r.backend === be && r.threads === t)!;
    const c = (r: (typeof results)[number]) => `${(r.us / 1000).toFixed(3)} (${r.gbps!.toFixed(1)})`;
    console.log(`| ${name} | ${c(get('native', 1))} | ${c(get('native', 2))} | ${c(get('ref', 1))} | ${(get('ref', 1).us / get('native', 2).us).toFixed(1)}× |`);
  }
}
