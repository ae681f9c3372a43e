/**
 * npm run bench:datastore [-- --keys 200000] [-- --dim 384] [-- --queries 2000] [-- --recall-queries 200] [-- --k 64]
 *                         [-- --data clustered|gaussian] [-- --connectivity 16] [-- --ef-add 128] [-- --ef-search 64,128]
 *                         [-- --json]
 *
 * kNN-LM datastore search (issue 19's target: ≥ 2,000 queries/s on one thread for 200 k keys of dimension 384 with
 * recall@64 ≥ 0.95 against exact search). Keys and queries are synthetic, seeded, float32:
 * - clustered (default): 2,048 centres drawn N(0, 1) per coordinate, each key a centre plus N(0, 0.5²) noise — LM
 *   hidden states gather around a limited number of contexts, and this is the closest stand-in without a 200 k-token
 *   model run;
 * - gaussian: every coordinate N(0, 1), independent — the hardest case for any graph index (no structure).
 * Queries are drawn the same way and are not in the store. The store is the library's `Datastore` (the one `shrink eval
 * --datastore` searches), exact search its TypeScript brute force (L2²), approximate search `useHnsw` (usearch HNSW,
 * L2², f32), one query per call on one thread, as kNN-LM evaluation calls it. For each --ef-search the index is built
 * again (usearch fixes the expansion at construction). recall@k = |HNSW top-k ∩ exact top-k| / k, averaged over
 * --recall-queries queries; queries/s over --queries queries after 50 warm-up queries.
 */
import { Datastore, DATASTORE_FORMAT, DATASTORE_VERSION, type DatastoreMeta } from '../src/compress/memory/datastore.ts';
import { Generator } from '../src/index.ts';

const args = process.argv.slice(2);
const num = (flag: string, d: number) => {
  const i = args.indexOf(flag);
  if (i < 0) return d;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${flag} must be a positive integer, got ${args[i + 1]}`);
  return v;
};
const str = (flag: string, d: string) => (args.includes(flag) ? (args[args.indexOf(flag) + 1] ?? d) : d);
const N = num('--keys', 200_000);
const D = num('--dim', 384);
const NQ = num('--queries', 2000);
const NR = num('--recall-queries', 200);
const K = num('--k', 64);
const M = num('--connectivity', 16);
const EF_ADD = num('--ef-add', 128);
const EFS = str('--ef-search', '64,128').split(',').map(Number);
const data = str('--data', 'clustered');
const json = args.includes('--json');
if (data !== 'clustered' && data !== 'gaussian') throw new Error(`--data must be clustered or gaussian, got ${data}`);
if (EFS.some((e) => !Number.isInteger(e) || e <= 0)) throw new Error(`--ef-search must be positive integers, got ${str('--ef-search', '')}`);

const g = new Generator(1234);
const CENTRES = 2048;
const centres = new Float32Array(CENTRES * D);
for (let i = 0; i < centres.length; i++) centres[i] = g.normal();
const draw = (n: number): Float32Array => {
  const x = new Float32Array(n * D);
  for (let r = 0; r < n; r++) {
    const c = data === 'clustered' ? Math.floor(g.random() * CENTRES) : -1;
    for (let j = 0; j < D; j++) x[r * D + j] = data === 'clustered' ? centres[c * D + j]! + 0.5 * g.normal() : g.normal();
  }
  return x;
};
const log = (s: string) => process.stderr.write(s + '\n');
const t0 = performance.now();
const keys = draw(N);
const queries = draw(Math.max(NQ, NR) + 50);
log(`bench:datastore: ${N} ${data} keys × ${D}, ${queries.length / D} queries drawn in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const meta: DatastoreMeta = {
  format: DATASTORE_FORMAT,
  version: DATASTORE_VERSION,
  dim: D,
  count: N,
  keyDtype: 'float16',
  valDtype: 'int32',
  keyModule: '(synthetic)',
  keyType: 'last_ffn_input',
  modelFingerprint: '',
  model: '(synthetic)',
  corpus: data,
  blockSize: 0,
  stride: null,
  keysBytes: N * D * 2,
  valsBytes: N * 4,
};
const q = (i: number) => queries.subarray(i * D, i * D + D);
const store = new Datastore(meta, keys, new Int32Array(N));

// exact top-k of the recall queries, and exact search speed
const e0 = performance.now();
const exact = Array.from({ length: NR }, (_, i) => new Set(store.search(q(50 + i), K)));
const exactQps = NR / ((performance.now() - e0) / 1000);
log(`exact: ${NR} queries at ${exactQps.toFixed(1)} queries/s (${store.searchKind})`);

interface Row {
  index: string;
  ef_search: number | null;
  build_s: number | null;
  qps: number;
  recall: number;
}
const rows: Row[] = [{ index: store.searchKind, ef_search: null, build_s: null, qps: exactQps, recall: 1 }];
for (const ef of EFS) {
  const b0 = performance.now();
  store.useHnsw({ connectivity: M, expansionAdd: EF_ADD, expansionSearch: ef });
  const buildS = (performance.now() - b0) / 1000;
  for (let i = 0; i < 50; i++) store.search(q(i), K);
  const s0 = performance.now();
  for (let i = 0; i < NQ; i++) store.search(q(50 + (i % (queries.length / D - 50))), K);
  const qps = NQ / ((performance.now() - s0) / 1000);
  let hit = 0;
  for (let i = 0; i < NR; i++) for (const id of store.search(q(50 + i), K)) if (exact[i]!.has(id)) hit++;
  const recall = hit / (NR * K);
  rows.push({ index: store.searchKind, ef_search: ef, build_s: +buildS.toFixed(1), qps, recall });
  log(`ef_search ${ef}: built in ${buildS.toFixed(1)} s, ${qps.toFixed(0)} queries/s, recall@${K} ${recall.toFixed(4)}`);
}

if (json) for (const r of rows) console.log(JSON.stringify({ keys: N, dim: D, data, k: K, ...r, qps: +r.qps.toFixed(1), recall: +r.recall.toFixed(4) }));
else {
  console.log(`datastore search, ${N} ${data} keys × ${D}, k ${K}, one query per call on 1 thread (target: ≥ 2,000 queries/s with recall@${K} ≥ 0.95)`);
  console.log('| index | build s | queries/s | recall@' + K + ' |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.index} | ${r.build_s ?? '—'} | ${r.qps.toFixed(r.qps < 100 ? 1 : 0)} | ${r.recall.toFixed(4)} |`);
}
