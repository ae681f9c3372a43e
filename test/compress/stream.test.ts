/**
 * Streaming compression (src/compress/stream.ts): one block at a time from the file, output shards written as they
 * fill, written blocks hollowed — the same checkpoint, tensor for tensor, as running the recipe on the loaded model;
 * the options that cannot stream refused before any work; the shard writer's names and index; the randomized SVD
 * large layers use against the exact one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { GPT2LMHeadModel, Generator, Tensor, compress, fromPretrained, gpt2Config, manualSeed, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { getMethod, type Method } from '../../src/compress/method.ts';
import { globalThreshold, pruneMagnitude } from '../../src/compress/prune/magnitude.ts';
import { hollowOut, streamFolder, type StreamStep } from '../../src/compress/stream.ts';
import { describeForSave } from '../../src/models/registry.ts';
import { ShardWriter, parseByteSize, shardName } from '../../src/io/shards.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { svd } from '../../src/compress/share/linalg.ts';
import { randomizedSvd, symEig } from '../../src/compress/share/rsvd.ts';
import { expectClose, expectEqual, expectThrows } from '../harness/expect.ts';
import { tinyBert, tinyGpt2, tinyLlama } from '../harness/tiny-models.ts';

const { runRecipe } = compress;
const root = path.resolve(import.meta.dirname, '../..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-stream-'));

function steps(recipe: Record<string, unknown>[]): StreamStep[] {
  return recipe.map(({ method, ...cfg }) => {
    const m = getMethod(method as string) as Method<object>;
    return { method: m, cfg: { ...(m.defaults as Record<string, unknown>), ...cfg } };
  });
}

function sameState(a: Module, b: Module, what: string): void {
  const sa = a.stateDict();
  const sb = b.stateDict();
  assert.deepEqual([...sa.keys()].sort(), [...sb.keys()].sort(), `${what}: keys`);
  for (const [k, t] of sa) expectEqual(sb.get(k)!, t, `${what}: ${k}`);
}

const RECIPES: Record<string, unknown>[][] = [
  [{ method: 'prune.magnitude', sparsity: 0.6, scope: 'layer' }],
  [{ method: 'prune.magnitude', sparsity: 0.7 }], // global: the threshold from a pass over the file first
  [{ method: 'prune.magnitude', sparsity: 0.5, scope: 'layer', storage: 'sparse_int8' }],
  [{ method: 'share.lowrank', ratio: 0.4 }],
  [{ method: 'share.lowrank', rank: 5, svd: 'randomized', power_iters: 2 }],
  [{ method: 'quant.rtn', scheme: 'int4', granularity: 'group:16' }],
  [{ method: 'prune.magnitude', sparsity: 0.5, scope: 'layer', storage: 'dense' }, { method: 'quant.rtn', scheme: 'int8' }],
  [{ method: 'share.lowrank', rank: 6 }, { method: 'quant.rtn', scheme: 'int4', granularity: 'group:2' }],
];

for (const [name, make] of [['Llama (GQA)', tinyLlama], ['GPT-2 (Conv1D, tied head)', tinyGpt2], ['BERT classifier (pooler and head outside the blocks)', tinyBert]] as const)
  test(`streamFolder on ${name} gives the checkpoint of the recipe run on the loaded model, sharded or not`, () => {
    const dir = tmp();
    const src = path.join(dir, 'fp');
    savePretrained(make(), src);
    for (const [i, recipe] of RECIPES.entries()) {
      const what = recipe.map((s) => s.method).join(' + ');
      for (const maxShardBytes of [1 << 30, 2000]) {
        const out = path.join(dir, `out-${i}-${maxShardBytes}`);
        const r = streamFolder(src, out, steps(recipe), { force: false, maxShardBytes });
        const whole = fromPretrained(src);
        runRecipe(whole, recipe);
        const back = fromPretrained(out);
        sameState(back, whole, `${name}: ${what} (shards ≤ ${maxShardBytes} B)`);
        assert.deepEqual(describeForSave(back as Module & { config: Record<string, unknown> }).config, describeForSave(whole as Module & { config: Record<string, unknown> }).config, `${what}: config.json`);
        if (maxShardBytes === 2000) {
          assert.ok(r.files.length >= 3, `${what}: ${r.files.length} shards`);
          assert.deepEqual(r.files, r.files.map((_, k) => shardName(k, r.files.length)));
          const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
          assert.deepEqual(new Set(Object.values(index.weight_map)), new Set(r.files));
        } else assert.deepEqual(r.files, ['model.safetensors']);
        assert.equal(r.steps.length, recipe.length);
        assert.ok(r.peakRssMb > 0 && r.boundMb > 0);
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

test('stream reports merge over the blocks: pruned counts add up, low-rank parameters add up', () => {
  const dir = tmp();
  const src = path.join(dir, 'fp');
  savePretrained(tinyLlama(), src);
  const r = streamFolder(src, path.join(dir, 'p'), steps([{ method: 'prune.magnitude', sparsity: 0.5, scope: 'layer' }]));
  const whole = fromPretrained(src);
  const w = runRecipe(whole, [{ method: 'prune.magnitude', sparsity: 0.5, scope: 'layer' }]).steps[0]!;
  for (const k of ['pruned_layers', 'target_weights', 'pruned_weights', 'sparsity', 'sparse_layers', 'sparse_weight_bytes', 'dense_weight_bytes']) assert.equal(r.steps[0]!.report[k], w[k], k);
  const l = streamFolder(src, path.join(dir, 'l'), steps([{ method: 'share.lowrank', ratio: 0.4 }]));
  const lw = runRecipe(fromPretrained(src), [{ method: 'share.lowrank', ratio: 0.4 }]).steps[0]!;
  for (const k of ['layers', 'factorized', 'params_before', 'params_after', 'params_ratio', 'ranks']) assert.equal(l.steps[0]!.report[k], lw[k], k);
  expectClose([Number(l.steps[0]!.report.mean_weight_error)], [Number(lw.mean_weight_error)], { rtol: 1e-12 });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('what cannot stream is refused before any block is read, naming the method or option', () => {
  const dir = tmp();
  const src = path.join(dir, 'fp');
  savePretrained(tinyLlama(), src);
  const out = path.join(dir, 'out');
  const run = (recipe: Record<string, unknown>[]) => streamFolder(src, out, steps(recipe));
  expectThrows(() => run([{ method: 'quant.rtn', scheme: 'int8' }, { method: 'prune.magnitude', sparsity: 0.5 }]), "prune.magnitude (step 2) needs a pass over the checkpoint's weights first and streams only as the recipe's first step");
  expectThrows(() => run([{ method: 'prune.gradual' }]), 'prune.gradual cannot stream');
  expectThrows(() => run([{ method: 'quant.gptq' }]), 'quant.gptq cannot stream');
  expectThrows(() => run([{ method: 'quant.rtn', scheme: 'int8-static' }]), "quant.rtn: option 'scheme' int8-static");
  expectThrows(() => run([{ method: 'share.lowrank', activation_aware: true }]), "share.lowrank: option 'activation_aware' needs calibration activations and cannot stream");
  expectThrows(() => run([{ method: 'share.lowrank', energy: 0.9, svd: 'randomized' }]), "share.lowrank: option 'energy' needs every singular value, but svd 'randomized' computes only the top ones");
  expectThrows(() => run([{ method: 'prune.magnitude', scope: 'layer', targets: ['nothing.*'] }]), "prune.magnitude: options 'targets' / 'ignore' select no module of LlamaForCausalLM");
  assert.equal(fs.existsSync(out), false);
  // an existing folder without force, and an already compressed input
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'keep.txt'), 'x');
  expectThrows(() => streamFolder(src, out, steps([{ method: 'quant.rtn' }]), { force: false }), out);
  assert.equal(fs.readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'x');
  const q = path.join(dir, 'q');
  streamFolder(src, q, steps([{ method: 'quant.rtn' }]));
  expectThrows(() => streamFolder(q, path.join(dir, 'qq'), steps([{ method: 'quant.rtn' }])), `${q}: already compressed (config.json has quantization_config)`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("globalThreshold: torch's count k = round(s·n) over every weight, the k-th smallest |w|, ties counted", () => {
  const weights = (...ws: number[][]) => () => ws.map((w, i): [string, Float32Array] => [`l${i}`, Float32Array.from(w)]);
  assert.deepEqual(globalThreshold(weights([1, -1], [1, 1]), 0.5), { value: 1, ties: 2 });
  assert.deepEqual(globalThreshold(weights([0.5, -3, 2], [-0.25, 7]), 0.4), { value: 0.5, ties: 1 }); // k = 2: 0.25 below, 0.5 the 2nd
  assert.deepEqual(globalThreshold(weights([0, -0, 1e-30], [2]), 0.5), { value: 0, ties: 2 }); // ±0 are |w| = 0
  assert.deepEqual(globalThreshold(weights([NaN, 1, 2]), 0.5), { value: 2, ties: 1 }); // NaN sorts last, as in torch.topk
  assert.deepEqual(globalThreshold(weights([NaN, 1, 2]), 0.9), { value: NaN, ties: 1 });
  assert.deepEqual(globalThreshold(weights([3, 4]), 0.2), { value: 0, ties: 0 }); // k = round(0.4) = 0
  // applied: below the value pruned, then ties in order until the count is used up (a NaN value prunes every number)
  const m = tinyLlama();
  const q = m.model.layers[0]!.self_attn!.q_proj.weight.data as Float32Array;
  q.set([NaN, 0.5, -0.5, NaN, 3]);
  const names = ['model.layers.0.self_attn.q_proj'];
  const r = pruneMagnitude(m, { sparsity: 0, targets: names, storage: 'dense', threshold: { value: NaN, ties: 1 } });
  assert.equal(r.pruned_weights, q.length - 1);
  assert.ok(Number.isNaN(q[3]!) && q.every((x, i) => i === 3 || x === 0));
  const m2 = tinyLlama();
  const q2 = m2.model.layers[0]!.self_attn!.q_proj.weight.data as Float32Array;
  q2.fill(1);
  q2.set([0.5, -2, 1], 0);
  const r2 = pruneMagnitude(m2, { sparsity: 0, targets: names, storage: 'dense', threshold: { value: 1, ties: 2 } });
  assert.equal(r2.pruned_weights, 3); // 0.5, then the first two of |w| = 1 (indices 2 and 3)
  assert.deepEqual([...q2.slice(0, 5)], [0, -2, 0, 0, 1]);
  // a random million: the value is the k-th order statistic exactly
  const g = new Generator(9);
  const big = Float32Array.from({ length: 1 << 20 }, () => g.normal() * 1e-2);
  const t = globalThreshold(() => [['a', big.subarray(0, 300_000)], ['b', big.subarray(300_000)]], 0.37);
  const sorted = Float32Array.from(big, Math.abs).sort();
  const k = Math.round(0.37 * big.length);
  assert.equal(t.value, sorted[k - 1]);
  assert.equal(t.ties, k - sorted.findIndex((x) => x === sorted[k - 1]));
});

test('hollowOut gives back the arrays but keeps the structure and the sharing between fields', () => {
  manualSeed(2);
  const m = new GPT2LMHeadModel(gpt2Config({ vocab_size: 256, n_positions: 16, n_embd: 32, n_layer: 1, n_head: 4 })); // codes of 4,096 bytes: large enough to hollow
  runRecipe(m, [{ method: 'quant.rtn', scheme: 'int4', granularity: 'group:16' }]);
  const before = describeForSave(m);
  const wte = m.stateDict().get('transformer.wte.weight_packed')!;
  const head = m.stateDict().get('lm_head.weight_packed')!;
  assert.equal(wte.data, head.data); // the tied head shares the embedding's codes
  const old = wte.data;
  hollowOut(m);
  const after = describeForSave(m);
  assert.deepEqual(after.config, before.config);
  assert.deepEqual([...after.dropKeys], [...before.dropKeys]);
  const nowWte = m.stateDict().get('transformer.wte.weight_packed')!;
  assert.notEqual(nowWte.data, old);
  assert.equal(nowWte.data, m.stateDict().get('lm_head.weight_packed')!.data);
  assert.ok(nowWte.data.every((x) => x === 0));
});

test('ShardWriter: shards cut at the size limit, HF names and index, duplicate keys refused; byte sizes parse', () => {
  const dir = tmp();
  const w = new ShardWriter(dir, { maxShardBytes: 100, metadata: { recipe: 'r' } });
  const t = (n: number, v: number) => new Tensor(new Float32Array(n).fill(v), [n], 'float32');
  assert.equal(w.add([['a', t(10, 1)]]), false); // 40 B queued
  assert.equal(w.add([['b', t(20, 2)]]), true); // 120 B: written
  w.add([['c', t(5, 3)]]);
  expectThrows(() => w.add([['a', t(1, 0)]]), "ShardWriter: tensor 'a' added twice");
  const files = w.finish();
  assert.deepEqual(files, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(index, { metadata: { total_size: 140 }, weight_map: { a: files[0], b: files[0], c: files[1] } });
  const f = SafetensorsFile.open(path.join(dir, files[1]!));
  expectEqual(f.get('c'), t(5, 3));
  f.close();
  assert.deepEqual(fs.readdirSync(dir).sort(), [...files, 'model.safetensors.index.json'].sort());
  assert.equal(parseByteSize('2GB'), 2e9);
  assert.equal(parseByteSize('1.5GiB'), 1.5 * 2 ** 30);
  assert.equal(parseByteSize('500 mb'), 5e8);
  assert.equal(parseByteSize('4096'), 4096);
  expectThrows(() => parseByteSize('lots'), "--max-shard-size: expected a size such as 2GB, 500MB or a byte count, got 'lots'");
  fs.rmSync(dir, { recursive: true, force: true });
});

test('randomized SVD: the exact top singular values on a decaying spectrum, the weight error identity, a symmetric eigensolver', () => {
  const g = new Generator(3);
  for (const n of [1, 2, 7, 40]) {
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) A[i * n + j] = A[j * n + i] = g.normal();
    const { values, V } = symEig(A, n);
    for (let c = 1; c < n; c++) assert.ok(values[c - 1]! >= values[c]!);
    for (let i = 0; i < n; i++)
      for (let c = 0; c < n; c++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += A[i * n + k]! * V[k * n + c]!;
        assert.ok(Math.abs(s - values[c]! * V[i * n + c]!) < 1e-12, `A·v = λ·v (n ${n})`);
      }
  }
  const [m, n, r] = [90, 60, 8];
  const W = new Float32Array(m * n);
  for (let k = 0; k < 30; k++) {
    const u = Array.from({ length: m }, () => g.normal());
    const v = Array.from({ length: n }, () => g.normal());
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) W[i * n + j] += Math.exp(-k / 3) * u[i]! * v[j]!;
  }
  const exact = svd(W, m, n);
  const t = randomizedSvd(W, m, n, r);
  expectClose(t.S, exact.S.slice(0, r), { rtol: 1e-5 });
  let res = 0;
  let tot = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += t.second[i * r + k]! * t.first[k * n + j]!;
      res += (W[i * n + j]! - s) ** 2;
      tot += W[i * n + j]! ** 2;
    }
  let tail = 0;
  for (let k = r; k < exact.S.length; k++) tail += exact.S[k]! ** 2;
  expectClose([t.relError], [Math.sqrt(res / tot)], { rtol: 1e-4 });
  expectClose([t.relError], [Math.sqrt(tail / tot)], { rtol: 1e-4 }); // optimal (Eckart–Young)
  expectThrows(() => randomizedSvd(W, m, n, 61), 'randomizedSvd: rank must be an integer in [1, 60], got 61');
});

test('shrink compress --stream: the table, report.json and shards; flags that do not apply are refused', () => {
  const dir = tmp();
  const src = path.join(dir, 'fp');
  savePretrained(tinyLlama(), src);
  const recipe = path.join(dir, 'r.json');
  fs.writeFileSync(recipe, JSON.stringify({ steps: [{ method: 'prune.magnitude', sparsity: 0.5, scope: 'layer', storage: 'dense' }, { method: 'quant.rtn', scheme: 'int8' }] }));
  const shrink = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root });
  const out = path.join(dir, 'out');
  const r = shrink('compress', src, '--recipe', recipe, '-o', out, '--stream', '--max-shard-size', '5KB');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| weights \| .* in \d+ shards \|/);
  assert.match(r.stdout, /\| peak resident memory \| [\d,]+ MiB \(streaming bound for this model: [\d,]+ MiB\) \|/);
  assert.match(r.stdout, /\| prune\.magnitude \| pruned_layers 14, .*sparsity 0\.5 \|/);
  assert.match(r.stderr, /\[3\/3\] \(embeddings, final norm, head\) done/);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  assert.equal(report.files.length, fs.readdirSync(out).filter((f) => f.endsWith('.safetensors')).length);
  assert.equal(report.fileBytesAfter, report.files.reduce((a: number, f: string) => a + fs.statSync(path.join(out, f)).size, 0));
  assert.ok(fromPretrained(out));
  const bad = shrink('compress', src, '--recipe', recipe, '-o', path.join(dir, 'x'), '--stream', '--task', 'sst2');
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, 'shrink: --task does not apply with --stream (no training and no task measurement: the model is never whole in memory; run shrink eval on the output)\n');
  const bad2 = shrink('compress', src, '--recipe', recipe, '-o', path.join(dir, 'x'), '--max-shard-size', '1GB');
  assert.equal(bad2.stderr, 'shrink: --max-shard-size applies with --stream (the whole-model path writes one model.safetensors)\n');
  fs.rmSync(dir, { recursive: true, force: true });
});
