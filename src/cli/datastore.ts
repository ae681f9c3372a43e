/**
 * `shrink datastore build <model> --corpus <file> -o <dir>`: a kNN-LM datastore (float16 keys at the last block's
 * FFN input, next-token values) over a text, in one streaming pass with a progress bar; and the memory options of
 * `shrink eval -t ppl` (`--datastore`, `--lambda`, `--knn-temp`, `--k`, `--knn-metric`, `--hnsw`, `--cache`, …), which
 * report perplexity with and without memory. See src/compress/memory/datastore.ts.
 */
import type { Command } from 'commander';
import { buildDatastore, evalWithMemory, loadDatastore, type MemoryEvalReport } from '../compress/memory/datastore.ts';
import { lastFfnInput } from '../compress/memory/method.ts';
import { KNN_METRICS, type KnnMetric } from '../compress/memory/knn.ts';
import { fromPretrained } from '../models/registry.ts';
import { anatomy } from '../models/anatomy.ts';
import { formatBytes } from './inspect.ts';
import { num } from './options.ts';


/** A one-line progress bar over windows on stderr (a TTY gets a carriage-return bar). */
function bar(label: string, quiet?: boolean): (done: number, total: number) => void {
  const t0 = performance.now();
  return (done, total) => {
    if (quiet) return;
    const eta = ((performance.now() - t0) / done) * (total - done) / 1000;
    const line = `${label} [${'#'.repeat(Math.round((done / total) * 30)).padEnd(30, '.')}] ${done}/${total} windows eta ${eta.toFixed(0)}s`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}${done === total ? '\n' : ''}`);
    else if (done % Math.max(1, Math.floor(total / 10)) === 0 || done === total) process.stderr.write(line + '\n');
  };
}

export interface MemoryEvalCliOptions {
  datastore?: string;
  lambda?: number;
  knnTemp?: number;
  k?: number;
  knnMetric?: string;
  hnsw?: boolean;
  cache?: boolean;
  cacheSize?: number;
  cacheTheta?: number;
  cacheLambda?: number;
}

const MEMORY_KEYS = ['datastore', 'lambda', 'knnTemp', 'k', 'knnMetric', 'hnsw', 'cache', 'cacheSize', 'cacheTheta', 'cacheLambda'] as const;

/** Whether any memory option was given to `shrink eval` (runMemoryEval then rejects options without their switch). */
export function wantsMemory(opts: object): boolean {
  const o = opts as MemoryEvalCliOptions;
  return MEMORY_KEYS.some((k) => o[k] !== undefined);
}

/** `shrink eval -t ppl` with memory: perplexity without and with the datastore / cache, as a table or JSON. */
export function runMemoryEval(dir: string, text: string, opts: { blockSize: number; stride?: number; maxTokens?: number; json?: boolean }): string {
  const o = opts as MemoryEvalCliOptions & typeof opts;
  const given = (k: keyof MemoryEvalCliOptions) => o[k] !== undefined;
  if (!o.datastore) for (const k of ['knnTemp', 'k', 'knnMetric', 'hnsw'] as const) if (given(k)) throw new Error(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} applies to --datastore`);
  if (!o.cache) for (const k of ['cacheSize', 'cacheTheta', 'cacheLambda'] as const) if (given(k)) throw new Error(`--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} applies to --cache`);
  if (!o.datastore && !o.cache) throw new Error('--lambda applies to --datastore or --cache');
  if (o.knnMetric !== undefined && !(KNN_METRICS as readonly string[]).includes(o.knnMetric)) throw new Error(`--knn-metric must be one of ${KNN_METRICS.join(', ')}, got '${o.knnMetric}'`);
  let ds;
  if (o.datastore) {
    const model = fromPretrained(dir);
    const key = lastFfnInput(model);
    ds = loadDatastore(o.datastore, { modelDir: dir, dim: anatomy(model).hiddenSize, keyModule: key });
    if (o.hnsw) ds.useHnsw();
  }
  const r = evalWithMemory(dir, text, {
    blockSize: o.blockSize, stride: o.stride, maxTokens: o.maxTokens, datastore: ds, lambda: o.lambda ?? 0.25, knnTemp: o.knnTemp ?? 1, k: o.k ?? 64,
    metric: (o.knnMetric ?? 'l2') as KnnMetric, cache: o.cache ? { size: o.cacheSize ?? 2000, theta: o.cacheTheta ?? 0.3, lambda: o.cacheLambda ?? o.lambda ?? 0.25 } : undefined,
    onProgress: bar('eval', o.json),
  });
  return formatMemoryEval(dir, r, o);
}

function formatMemoryEval(dir: string, r: MemoryEvalReport, o: MemoryEvalCliOptions & { json?: boolean }): string {
  if (o.json) return JSON.stringify({ model: dir, task: 'perplexity', ...r, lambda: o.lambda ?? 0.25, ...(o.datastore ? { datastore: o.datastore, k: o.k ?? 64, knnTemp: o.knnTemp ?? 1, knnMetric: o.knnMetric ?? 'l2' } : {}) }) + '\n';
  const pct = (x: number) => `${Math.abs(((r.perplexity - x) / r.perplexity) * 100).toFixed(1)} % ${x <= r.perplexity ? 'lower' : 'higher'}`;
  return [
    `| eval with memory: ${dir} | value |`, '| --- | --- |',
    `| perplexity (no memory) | ${r.perplexity.toFixed(3)} |`,
    ...(r.knnPerplexity !== undefined ? [`| perplexity (kNN-LM, λ ${o.lambda ?? 0.25}, k ${o.k ?? 64}, T ${o.knnTemp ?? 1}, ${o.knnMetric ?? 'l2'}) | ${r.knnPerplexity.toFixed(3)} (${pct(r.knnPerplexity)}) |`, `| datastore | ${r.datastoreKeys} keys, ${formatBytes(r.datastoreBytes!)} |`, `| search | ${r.search} |`] : []),
    ...(r.cachePerplexity !== undefined ? [`| perplexity (continuous cache) | ${r.cachePerplexity.toFixed(3)} (${pct(r.cachePerplexity)}) |`] : []),
    `| tokens | ${r.tokens} |`, `| throughput | ${r.tokensPerS.toFixed(0)} tokens/s |`,
  ].join('\n') + '\n';
}

/** Register `shrink datastore` and add the memory options to `shrink eval` (registered before this). */
export function registerDatastore(program: Command, out: (s: string) => void): void {
  const ds = program.command('datastore').description('kNN-LM datastores: keys at the last block\'s FFN input (float16) and next-token values over a text');
  ds.command('build')
    .description('Build a datastore over a text file with a causal LM folder (one streaming pass over windows)')
    .argument('<model>', 'causal LM folder (gpt2 / llama)')
    .requiredOption('--corpus <file>', 'text file')
    .requiredOption('-o, --out <dir>', 'output folder')
    .option('--block-size <n>', 'tokens per window', num('block-size', 2, 1e6, true), 256)
    .option('--stride <n>', 'sliding windows moved by n tokens (each key with up to block-size − n tokens of context)', num('stride', 1, 1e6, true))
    .option('--max-tokens <n>', 'only the first n tokens of the corpus', num('max-tokens', 2, 1e12, true))
    .option('--force', 'overwrite a non-empty output folder')
    .option('--json', 'print JSON')
    .action((model: string, o: { corpus: string; out: string; blockSize: number; stride?: number; maxTokens?: number; force?: boolean; json?: boolean }) => {
      const r = buildDatastore(model, o.corpus, o.out, { blockSize: o.blockSize, stride: o.stride, maxTokens: o.maxTokens, force: o.force, onProgress: bar('datastore', o.json) });
      if (o.json) out(JSON.stringify({ out: o.out, ...r }) + '\n');
      else
        out([`| datastore: ${o.out} | value |`, '| --- | --- |', `| keys | ${r.count} × ${r.dim} (${r.keyType} at ${r.keyModule}, float16) |`, `| bytes | ${formatBytes(r.keysBytes + r.valsBytes)} (keys ${formatBytes(r.keysBytes)}, values ${formatBytes(r.valsBytes)}) |`,
          `| corpus | ${r.corpus} (windows of ${r.blockSize}${r.stride ? `, stride ${r.stride}` : ''}) |`, `| time | ${(r.ms / 1000).toFixed(1)} s (${r.tokensPerS.toFixed(0)} tokens/s) |`].join('\n') + '\n');
    });
  const ev = program.commands.find((c) => c.name() === 'eval');
  if (!ev) return;
  ev.option('--datastore <dir>', 'ppl: kNN-LM with this datastore (shrink datastore build): p = λ·p_kNN + (1 − λ)·p_LM')
    .option('--lambda <x>', 'ppl: memory weight λ (default 0.25)', num('lambda', 0, 1))
    .option('--knn-temp <t>', 'ppl: kNN softmax temperature (default 1)', num('knn-temp', 1e-9))
    .option('--k <n>', 'ppl: neighbours per token (default 64)', num('k', 1, 1e6, true))
    .option('--knn-metric <m>', 'ppl: neighbour score, l2 (−‖q − key‖², default) or ip')
    .option('--hnsw', 'ppl: approximate search with an HNSW index (usearch) instead of exact search')
    .option('--cache', 'ppl: continuous cache (Grave et al.) over the text already read')
    .option('--cache-size <n>', 'ppl: cache entries (default 2000)', num('cache-size', 1, 1e9, true))
    .option('--cache-theta <x>', 'ppl: cache flatness θ (default 0.3)', num('cache-theta', 0))
    .option('--cache-lambda <x>', 'ppl: cache weight (default --lambda)', num('cache-lambda', 0, 1));
}
