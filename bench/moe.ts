/**
 * npm run bench:moe [-- --json] [-- --threads 1] [-- --rounds 5] [-- --ts]
 *
 * A sparse MoE feedforward (MoELayer in eval, under noGrad: router + routing + the native dispatch, native/moe.cc)
 * against the dense feedforward of the same total width, hidden D = 384 and 768: dense D → F = 4D GELU → D
 * (`Linear` + gelu + `Linear` on the native SGEMM) vs E experts of width F/E, top-k, for (E, k) = (8, 1), (8, 2),
 * (16, 4), (8, 8), at N = 1, 32 and 512 tokens (one routing group, unlimited capacity, so every token reaches k
 * experts). The same parameters either way; the MoE does k/E of the dense FFN's multiply-adds (plus the router's
 * D·E), so the FLOP limit of its speed-up is E/k, and efficiency = speed-up / (E/k). Each case also times a dense
 * FFN of the active width k·F/E (the same FLOPs as the MoE's experts): the speed-up an ideal dispatch would reach.
 * It is an optimistic reference at small batches: it reads k/E of the weights, while a batch spread over all experts
 * makes the MoE read all of them (at D = 768 the dense FFN's 19 MB, which bounds its own batch-1 call). With --ts,
 * the TypeScript dispatch (MoELayer._native = false) is timed too.
 *
 * Before timing, each MoE's native output is checked against its TypeScript dispatch (within 1e-5 of |value| +
 * 0.1·max |value|). Variants of a (D, N) pair are interleaved over rounds (each call repeated for ≥ 20 ms after a
 * warm-up): best ms of each; speed-up = dense ms / variant ms of the best times.
 *
 * Output: a markdown table, or with --json one line per row: {"name","D","N","E","k","ms","speedup","limit","efficiency"}
 * (limit and efficiency null for the dense FFN; for the active-width dense FFN, limit is E/k as for its MoE).
 */
import '../src/index.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { Linear } from '../src/nn/layers.ts';
import { noGrad } from '../src/tensor/autograd.ts';
import { Generator } from '../src/tensor/random.ts';
import { getNumThreads, kernelLabel, setNumThreads } from '../src/backend/registry.ts';
import { MoEExpert, MoELayer, moeAddon } from '../src/compress/moe/index.ts';
import { benchArgs, machineLine } from './common.ts';

const args = benchArgs('bench:moe', ['--json', '--ts'], ['--threads', '--rounds']);
const json = args.has('--json');
const withTs = args.has('--ts');
const rounds = args.intArg('--rounds', 5, 1);
const threads = args.intArg('--threads', 1, 1);
if (!moeAddon()) throw new Error('bench:moe needs the native backend with the MoE kernel (npm run build:native)');
setNumThreads(threads);

const HIDDEN = [384, 768];
const TOKENS = [1, 32, 512];
const CONFIGS: [number, number][] = [[8, 1], [8, 2], [16, 4], [8, 8]];

function once(fn: () => void): number {
  let n = 0;
  const t0 = performance.now();
  do {
    fn();
    n++;
  } while (performance.now() - t0 < 20);
  return (performance.now() - t0) / n;
}
function best(fns: (() => void)[]): number[] {
  fns.forEach((f) => {
    f();
    f();
  });
  const t = fns.map(() => Infinity);
  for (let r = 0; r < rounds; r++) fns.forEach((f, i) => (t[i] = Math.min(t[i]!, once(f))));
  return t;
}

interface Row { name: string; D: number; N: number; E: number | null; k: number | null; ms: number; speedup: number; limit: number | null; efficiency: number | null }
const rows: Row[] = [];
const emit = (r: Row) => {
  const out = { ...r, ms: Number(r.ms.toPrecision(4)), speedup: Number(r.speedup.toFixed(3)), limit: r.limit, efficiency: r.efficiency === null ? null : Number(r.efficiency.toFixed(3)) };
  rows.push(out);
  if (json) console.log(JSON.stringify(out));
};

function denseFfn(D: number, F: number, g: Generator): (x: Tensor) => Tensor {
  const up = new Linear(D, F, { generator: g });
  const down = new Linear(F, D, { generator: g });
  return (x) => down.forward(up.forward(x).gelu());
}

function moeLayer(D: number, F: number, E: number, k: number, g: Generator): MoELayer {
  const experts = Array.from({ length: E }, () => new MoEExpert(new Linear(D, F / E, { generator: g }), new Linear(F / E, D, { generator: g }), 'gelu'));
  return new MoELayer(new Linear(D, E, { bias: false, generator: g }), experts, { topK: k, evalCapacityFactor: 0 }).eval();
}

/** The native dispatch against the TypeScript one on x. */
function verify(l: MoELayer, x: Tensor, what: string): void {
  const a = noGrad(() => l.forward(x)).toFloat32Array();
  l._native = false;
  const b = noGrad(() => l.forward(x)).toFloat32Array();
  l._native = true;
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < a.length; i++)
    if (!(Math.abs(a[i]! - b[i]!) <= 1e-5 * (Math.abs(b[i]!) + 0.1 * scale))) throw new Error(`bench:moe ${what}: native ${a[i]} vs TypeScript ${b[i]} at ${i}`);
}

for (const D of HIDDEN) {
  const F = 4 * D;
  const g = new Generator(D);
  const dense = denseFfn(D, F, g);
  const active = new Map<number, (x: Tensor) => Tensor>();
  const moes = CONFIGS.map(([E, k]) => {
    const w = (k * F) / E;
    if (!active.has(w)) active.set(w, w === F ? dense : denseFfn(D, w, g));
    return { E, k, layer: moeLayer(D, F, E, k, g), active: active.get(w)!, w };
  });
  for (const N of TOKENS) {
    const x = Tensor.randn([N, D], { generator: g });
    for (const m of moes) verify(m.layer, x, `D ${D} N ${N} E ${m.E} top-${m.k}`);
    const fns: (() => void)[] = [() => void noGrad(() => dense(x))];
    for (const m of moes) {
      fns.push(() => void noGrad(() => m.layer.forward(x)));
      fns.push(() => void noGrad(() => m.active(x)));
      if (withTs)
        fns.push(() => {
          m.layer._native = false;
          noGrad(() => m.layer.forward(x));
          m.layer._native = true;
        });
    }
    const t = best(fns);
    const d = t[0]!;
    emit({ name: `dense ${D}x${F}`, D, N, E: null, k: null, ms: d, speedup: 1, limit: null, efficiency: null });
    const per = withTs ? 3 : 2;
    moes.forEach((m, i) => {
      const limit = m.E / m.k;
      const tm = t[1 + per * i]!, ta = t[2 + per * i]!;
      emit({ name: `moe ${m.E}x${F / m.E} top-${m.k}`, D, N, E: m.E, k: m.k, ms: tm, speedup: d / tm, limit, efficiency: d / tm / limit });
      if (withTs) {
        const ts = t[3 + per * i]!;
        emit({ name: `moe ${m.E}x${F / m.E} top-${m.k} (TS dispatch)`, D, N, E: m.E, k: m.k, ms: ts, speedup: d / ts, limit, efficiency: d / ts / limit });
      }
      emit({ name: `dense ${D}x${m.w} (active width of ${m.E}x${F / m.E} top-${m.k})`, D, N, E: m.E, k: m.k, ms: ta, speedup: d / ta, limit, efficiency: d / ta / limit });
    });
  }
}

if (!json) {
  console.log(machineLine());
  console.log(`${getNumThreads()} thread(s), kernels: ${kernelLabel(['sgemm', 'moe'])}; best of ${rounds} interleaved rounds; capacity unlimited, GELU`);
  console.log('| D | tokens | case | ms | speed-up vs dense | FLOP limit E/k | efficiency |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(`| ${r.D} | ${r.N} | ${r.name} | ${r.ms} | ${r.speedup.toFixed(2)}× | ${r.limit ?? ''} | ${r.efficiency === null ? '' : `${(r.efficiency * 100).toFixed(0)} %`} |`);
}
