// `shrink quantize` end to end on the bundled stories260K: each scheme writes a folder that `shrink eval` reads
// unchanged, with the file sizes and perplexities the schemes imply; fp16/bf16 casts; bad flags get one line, before
// any work (QAT included: every flag is passed through or rejected); output folders are checked first and replaced
// only with --force.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { cli, start, tinyBert, waitFor } from './helpers.ts';

const root = path.resolve(import.meta.dirname, '../..');
const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root });
const model = 'data/models/stories260K';

test('shrink quantize → shrink eval: int8, int8-dynamic, int4 (awq formula), fp16 and bf16 on stories260K', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-quant-'));
  const text = path.join(dir, 'text.txt');
  // the first five sampled stories: enough tokens for a stable comparison, quick to score
  fs.writeFileSync(text, fs.readFileSync(path.join(root, 'data/tinystories-samples/stories260K-samples.txt'), 'utf8').split('\n').slice(0, 5).join('\n'));
  const ppl = (m: string) => {
    const r = run('eval', m, '--task', 'ppl', '--text', text, '--json');
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).score as number;
  };
  const base = ppl(model);
  const cases: [string[], number, number, string][] = [
    // flags, max file ratio, max perplexity ratio, dtype of a quantized projection's stored weight
    [['--scheme', 'int8'], 0.28, 1.01, 'int8'],
    [['--scheme', 'int8-dynamic'], 0.28, 1.02, 'int8'],
    [['--scheme', 'int4', '--granularity', 'group:32', '--int4-formula', 'awq'], 0.2, 1.3, 'uint8'],
    [['--scheme', 'fp16'], 0.51, 1.001, 'float16'],
    [['--scheme', 'bf16'], 0.51, 1.005, 'bfloat16'],
  ];
  for (const [flags, maxSize, maxPpl, dtype] of cases) {
    const out = path.join(dir, flags[1]!);
    const r = run('quantize', model, '-o', out, ...flags, '--json');
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.ok(j.ratio > 0.1 && j.ratio <= maxSize, `${flags.join(' ')}: file ratio ${j.ratio}`);
    assert.equal(j.fileBytesAfter, fs.statSync(path.join(out, 'model.safetensors')).size);
    const f = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const key = f.keys().find((k) => k.startsWith('model.layers.0.self_attn.q_proj.weight'))!;
    assert.equal(f.get(key).dtype, dtype, `${flags.join(' ')}: ${key}`);
    f.close();
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    if (dtype.startsWith('float') || dtype.startsWith('bfloat')) assert.equal(cfg.torch_dtype, dtype);
    else assert.equal(cfg.quantization_config.quant_method, 'shrink');
    assert.ok(fs.existsSync(path.join(out, 'tok512.bin')), 'tokenizer copied');
    const p = ppl(out);
    assert.ok(p >= base * 0.99 && p <= base * maxPpl, `${flags.join(' ')}: perplexity ${p} vs fp32 ${base}`);
  }
  fs.rmSync(dir, { recursive: true });
});

test('shrink quantize rejects bad schemes, formulas and combinations with one line each', () => {
  const out = path.join(os.tmpdir(), 'never-written');
  for (const [flags, msg] of [
    [['--scheme', 'int5'], "--scheme must be one of int8, int8-dynamic, int8-static, int4, fp16, bf16, got 'int5'"],
    [['--scheme', 'int4', '--int4-formula', 'nf4'], "--int4-formula must be one of gptq, awq, absmax, got 'nf4'"],
    [['--scheme', 'int4', '--int4-formula', 'awq', '--symmetric'], "int4 formula 'awq' is asymmetric (a zero point per group); drop --symmetric or use formula 'absmax'"],
    [['--scheme', 'int8', '--int4-formula', 'awq'], '--int4-formula awq applies to scheme int4, not int8'],
    [['--scheme', 'int8-dynamic', '--granularity', 'tensor'], 'scheme int8-dynamic needs per-channel weights, got granularity tensor'],
  ] as const) {
    const r = run('quantize', model, '-o', out, ...flags);
    assert.equal(r.status, 1, `${flags.join(' ')}: ${r.stdout}`);
    assert.ok(r.stderr.includes(msg), `${flags.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.ok(!fs.existsSync(out), 'nothing written on error');
});

test('shrink quantize: a group size that does not divide in_features says what the zero padding does', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-pad-'));
  const r = run('quantize', model, '-o', out, '--scheme', 'int4', '--granularity', 'group:48');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /model\.layers\.0\.self_attn\.q_proj: group size 48 does not divide in_features 64; zero columns pad it to 96 \(stored, never multiplied: 50 % more codes, same outputs\)\. Choose a divisor of 64 to avoid the padding\./);
  assert.match(r.stdout, /\| zero-padded in_features \| \d+ modules/);
  fs.rmSync(out, { recursive: true });
});

test('shrink quantize checks every flag against the scheme and method before any work, QAT included', async () => {
  const out = path.join(os.tmpdir(), `never-written-${process.pid}`);
  const bert = 'data/models/bert-teacher';
  const qat = (...f: string[]) => [bert, '--method', 'qat', ...f];
  const cases: [string[], string][] = [
    [[model, '--scheme', 'int8', '--bits', '4'], '--bits applies to scheme int4 (4, 3 or 2 bits), not int8'],
    [[model, '--scheme', 'int4', '--bits', '5'], '--bits must be 4, 3 or 2 for scheme int4, got 5'],
    [[model, '--scheme', 'int4', '--granularity', 'group:7'], '--granularity group:7: scheme int4 packs two codes per byte, so the group size must be even, got 7'],
    [[model, '--scheme', 'fp16', '--granularity', 'channel'], '--granularity does not apply to --scheme fp16 (a cast of every float tensor)'],
    [[model, '--scheme', 'bf16', '--method', 'gptq'], '--method does not apply to --scheme bf16 (a cast of every float tensor)'],
    [[model, '--scheme', 'int8', '--act-order'], '--act-order applies to --method gptq'],
    [[model, '--scheme', 'int8', '--observer', 'mse'], '--observer applies to scheme int8-static'],
    [[model, '--scheme', 'int8', '--steps', '10'], '--steps applies to --method qat'],
    [[model, '--scheme', 'int8', '--calib', 'wikitext2'], '--calib applies to --method gptq, scheme int8-static or --report'],
    [[model, '--scheme', 'int8-dynamic', '--asymmetric'], 'scheme int8-dynamic needs symmetric weights'],
    [qat('--scheme', 'int8', '--bits', '4'), '--bits applies to scheme int4 (4, 3 or 2 bits), not int8'],
    [qat('--scheme', 'int8-static'), '--scheme int8-static is not supported with --method qat (QAT trains int8, int8-dynamic or int4; calibrate int8-static afterwards with shrink quantize)'],
    [qat('--report'), '--report is not supported with --method qat (there is no float model of the fine-tuned weights to compare against)'],
    [qat('--calib', 'sst2'), '--calib is not supported with --method qat (QAT learns from the --task training data; it does not calibrate)'],
    [qat('--calib-samples', '8'), '--calib-samples is not supported with --method qat (QAT learns from the --task training data; it does not calibrate)'],
    [qat('--calib-seq-len', '32'), '--calib-seq-len is not supported with --method qat (QAT learns from the --task training data; it does not calibrate)'],
    [qat('--percdamp', '0.1'), '--percdamp is not supported with --method qat (it is a GPTQ option)'],
    [qat('--act-order'), '--act-order is not supported with --method qat (it is a GPTQ option)'],
    [qat('--observer', 'mse'), '--observer is not supported with --method qat (it is an int8-static option)'],
    [qat('--percentile', '99'), '--percentile is not supported with --method qat (it is an int8-static option)'],
    [qat('--scheme', 'int4', '--int4-formula', 'awq'), '--int4-formula awq is not supported with --method qat (QAT int4 trains with the gptq formula)'],
    [qat('--scheme', 'int4', '--symmetric'), '--symmetric is not supported with --method qat (QAT int4 trains asymmetric groups)'],
    [qat('--scheme', 'int8', '--asymmetric'), '--asymmetric is not supported with --method qat (QAT int8 trains symmetric weights)'],
    [qat('--scheme', 'int8', '--granularity', 'tensor'), '--granularity tensor is not supported with --method qat (QAT int8 trains per-channel weights)'],
    [qat('--scheme', 'int4', '--granularity', 'channel'), '--granularity channel is not supported with --method qat (QAT int4 trains groups: group:<size>)'],
    [qat('--scheme', 'int4', '--granularity', 'group:9'), '--granularity group:9: scheme int4 packs two codes per byte, so the group size must be even, got 9'],
    [qat('--task', 'mnli'), "--task must be one of sst2, mrpc, rte, cola, got 'mnli'"],
    [[model, '--method', 'awq'], "--method must be rtn, gptq or qat, got 'awq'"],
    [[model, '--scheme', 'int8', '--ignore', ' , '], "--ignore needs at least one module-name glob, got ' , '"],
  ];
  for (const [[src, ...flags], msg] of cases) {
    const r = await cli('quantize', src!, '-o', out, ...flags);
    assert.equal(r.code, 1, flags.join(' '));
    assert.equal(r.stderr, `shrink: ${msg}\n`, flags.join(' '));
  }
  assert.ok(!fs.existsSync(out), 'nothing written on error');
});

test('shrink quantize refuses bad output folders before any work; --force replaces one atomically; a model without a tokenizer gets a warning', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-qout-'));
  const afile = path.join(dir, 'afile');
  fs.writeFileSync(afile, 'x');
  const full = path.join(dir, 'full');
  fs.mkdirSync(full);
  fs.writeFileSync(path.join(full, 'old.txt'), 'old');
  for (const [o, msg] of [
    ['/proc/x', 'output folder /proc/x is on /proc, a kernel filesystem; choose a folder on a disk'],
    [afile, `output folder ${afile} exists and is a file, not a folder`],
    [path.join(afile, 'q'), `cannot create output folder ${path.join(afile, 'q')}: ${afile} is a file, not a folder`],
    [full, `output folder ${full} exists and is not empty (use --force to replace it)`],
  ] as const) {
    for (const flags of [['--scheme', 'int8'], ['--scheme', 'fp16'], ['--method', 'qat', '--steps', '1']]) {
      const r = await cli('quantize', flags[1] === 'qat' ? 'data/models/bert-teacher' : model, '-o', o, ...flags);
      assert.equal(r.code, 1, `${o} ${flags.join(' ')}`);
      assert.equal(r.stderr, `shrink: ${msg}\n`, `${o} ${flags.join(' ')}`);
    }
  }
  assert.deepEqual(fs.readdirSync(full), ['old.txt']);
  // weights without a tokenizer: quantized with a warning that eval/predict will need one
  const bare = path.join(dir, 'bare');
  fs.mkdirSync(bare);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(root, model, f), path.join(bare, f));
  const r = run('quantize', bare, '-o', full, '--scheme', 'int8', '--force', '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stderr,
    `shrink: warning: ${bare} has no tokenizer (looked for tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt, tok512.bin, …); ${full} will load with fromPretrained, but eval and predict need one: copy the tokenizer files of the original model into it\n`,
  );
  assert.deepEqual(fs.readdirSync(full).sort(), ['config.json', 'model.safetensors'], 'replaced, not merged');
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temp folders left');
  fs.rmSync(dir, { recursive: true });
});

test('shrink quantize --method qat passes --granularity, --asymmetric, --no-embeddings and --ignore through to training and conversion', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-qat-'));
  const bert = tinyBert(path.join(dir, 'bert'));
  const out = path.join(dir, 'q');
  const r = run('quantize', bert, '-o', out, '--method', 'qat', '--scheme', 'int4', '--granularity', 'group:8', '--asymmetric', '--no-embeddings', '--ignore', 'classifier', '--steps', '2', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.out, out);
  assert.equal(j.steps, 2);
  const modules = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).quantization_config.modules as Record<string, { type: string; group_size: number; symmetric: boolean; bits: number }>;
  const names = Object.keys(modules);
  assert.ok(names.includes('bert.encoder.layer.0.attention.self.query'), names.join());
  assert.ok(!names.some((n) => n.includes('embeddings')), `--no-embeddings: ${names.join()}`);
  assert.ok(!names.includes('classifier'), `--ignore classifier: ${names.join()}`);
  for (const [n, m] of Object.entries(modules)) {
    assert.equal(m.group_size, 8, n);
    assert.equal(m.bits, 4, n);
    assert.equal(m.symmetric, false, n);
  }
  assert.ok(fs.existsSync(path.join(out, 'vocab.txt')));
  fs.rmSync(dir, { recursive: true });
});

test('shrink quantize --method qat: Ctrl-C stops training, keeps a checkpoint to resume from, writes no output and exits 130', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-qat-int-'));
  const bert = tinyBert(path.join(dir, 'bert'));
  const out = path.join(dir, 'q');
  const a = start(['quantize', bert, '-o', out, '--method', 'qat', '--scheme', 'int8', '--steps', '5000']);
  await waitFor(() => /qat \[/.test(a.stderr()), a.done, 'training progress');
  a.child.kill('SIGINT');
  const r = await a.done;
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stdout, '');
  const line = r.stderr.trim().split('\n').pop()!;
  const k = /at step (\d+) of/.exec(line)?.[1];
  const stage = path.join(dir, '.q.compress-run', 'stage-1');
  assert.equal(line, `shrink: interrupted at step ${k} of 5000; checkpoint saved in ${path.join(stage, `checkpoint-${k}`)}; run the same command again to resume`);
  assert.ok(!fs.existsSync(out));
  assert.ok(fs.existsSync(path.join(stage, `checkpoint-${k}`, 'model.safetensors')), 'the checkpoint the message names');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['.q.compress-run', 'bert'], 'no temp folders');
  // another job into the same output does not resume that run: an error naming the difference, before any work ...
  const other = run('quantize', bert, '-o', out, '--method', 'qat', '--scheme', 'int8', '--steps', '3');
  assert.equal(other.status, 1);
  assert.equal(other.stderr, `shrink: ${path.join(dir, '.q.compress-run')} holds an unfinished run of another job (recipe.train.steps: 5000 → 3); run that job again to resume it, or pass --force to discard it\n`);
  assert.ok(fs.existsSync(path.join(stage, `checkpoint-${k}`, 'model.safetensors')), 'the run is kept');
  // ... and with --force the old run is discarded (and said) and the new job runs from step 0
  const forced = run('quantize', bert, '-o', out, '--method', 'qat', '--scheme', 'int8', '--steps', '3', '--force');
  assert.equal(forced.status, 0, forced.stderr);
  assert.match(forced.stderr, /discarding .*\.q\.compress-run: an unfinished run of another job \(recipe\.train\.steps: 5000 → 3\)/);
  assert.ok(fs.existsSync(path.join(out, 'model.safetensors')));
  assert.ok(!fs.existsSync(path.join(dir, '.q.compress-run')));
  fs.rmSync(dir, { recursive: true });
});

test('shrink quantize: an --ignore glob that matches no module is an error, not a silent no-op', () => {
  const out = path.join(os.tmpdir(), `never-written-${process.pid}`);
  const r = run('quantize', model, '-o', out, '--scheme', 'int8', '--ignore', 'lm_head,model.layers.*.mlp.up');
  assert.equal(r.status, 1);
  assert.equal(r.stderr, "shrink: --ignore 'model.layers.*.mlp.up' matches no module of LlamaForCausalLM (names look like model.layers.0, model.layers.0.self_attn; see shrink inspect)\n");
  assert.ok(!fs.existsSync(out));
});

test('a tokenizer-less random checkpoint: make-random → quantize --method gptq --calib random (peak memory reported) → generate --prompt-ids', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-cli-scale-'));
  const cfg = path.join(dir, 'config.json');
  fs.writeFileSync(cfg, JSON.stringify({ model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: false }));
  const src = path.join(dir, 'random');
  const out = path.join(dir, 'gptq');
  try {
    assert.equal(run('make-random', cfg, '-o', src, '--shards', '2', '--json').status, 0);
    const q = run('quantize', src, '-o', out, '--scheme', 'int4', '--granularity', 'group:16', '--method', 'gptq', '--calib', 'random', '--calib-samples', '4', '--calib-seq-len', '16', '--json');
    assert.equal(q.status, 0, q.stderr);
    const r = JSON.parse(q.stdout) as { modules: number; peakRssMb: number; gptqLoss: Record<string, number> };
    assert.ok(Number.isInteger(r.peakRssMb) && r.peakRssMb > 10, `peakRssMb ${r.peakRssMb}`);
    // the untied head and every block Linear went through GPTQ; the embedding through RTN
    assert.equal(Object.keys(r.gptqLoss).length, 2 * 7 + 1);
    assert.ok('lm_head' in r.gptqLoss);
    const g = run('generate', out, '--prompt-ids', '1,2,3', '-n', '5', '--json');
    assert.equal(g.status, 0, g.stderr);
    const gen = JSON.parse(g.stdout) as { ids: number[]; newTokens: number; text: string; peakRssMb: number; loadMs: number };
    assert.equal(gen.ids.length, 8);
    assert.deepEqual(gen.ids.slice(0, 3), [1, 2, 3]);
    assert.equal(gen.text, gen.ids.join(' '));
    assert.ok(gen.peakRssMb > 10 && gen.loadMs >= 0);
    for (const [ids, msg] of [
      ['1,x', "error: option '--prompt-ids <ids>' argument '1,x' is invalid. --prompt-ids: expected comma-separated token ids (integers ≥ 0), got 'x'"],
      ['1,64', `shrink: --prompt-ids: token id 64 is outside the vocabulary of ${out} (vocab_size 64)`],
    ]) {
      const bad = run('generate', out, '--prompt-ids', ids);
      assert.ok(bad.status !== 0);
      assert.equal(bad.stderr.split('\n')[0], msg); // a usage error is followed by the command's help
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink quantize --method gptq: Ctrl-C after a checkpoint, then the same command resumes and writes the uninterrupted result', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-cli-gptq-resume-'));
  const cfg = path.join(dir, 'config.json');
  // 10 blocks: enough time between the first checkpoint and the end to stop the run
  fs.writeFileSync(cfg, JSON.stringify({ model_type: 'llama', vocab_size: 256, hidden_size: 128, intermediate_size: 256, num_hidden_layers: 10, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: false }));
  const src = path.join(dir, 'random');
  try {
    assert.equal(run('make-random', cfg, '-o', src, '--dtype', 'fp32', '--json').status, 0);
    const args = (out: string) => ['quantize', src, '-o', out, '--scheme', 'int4', '--granularity', 'group:32', '--method', 'gptq', '--calib', 'random', '--calib-samples', '32', '--calib-seq-len', '64', '--checkpoint-every', '0', '--max-shard-size', '200KB'];
    const full = path.join(dir, 'full');
    assert.equal(run(...args(full)).status, 0);
    const out = path.join(dir, 'resumed');
    const runDir = path.join(dir, '.resumed.quantize-run');
    const a = start(args(out));
    await waitFor(() => fs.existsSync(path.join(runDir, 'latest')), a.done, 'the first checkpoint');
    a.child.kill('SIGINT');
    const stopped = await a.done;
    assert.ok(stopped.code !== 0, `the run finished before it was stopped: ${stopped.stderr}`);
    assert.equal(fs.existsSync(out), false);
    const saved = Number(/^checkpoint-(\d+)$/.exec(fs.readFileSync(path.join(runDir, 'latest'), 'utf8'))![1]);
    assert.ok(saved >= 1 && saved < 10, `checkpoint after block ${saved}`);
    const r = run(...args(out));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`shrink: resuming GPTQ after block ${saved} from .*\\.resumed\\.quantize-run`));
    assert.equal(fs.existsSync(runDir), false);
    // the same tensors, shard for shard
    const files = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith('.safetensors')).sort();
    assert.deepEqual(files(out), files(full));
    assert.ok(files(out).length > 1);
    for (const f of files(full)) {
      const x = SafetensorsFile.open(path.join(full, f));
      const y = SafetensorsFile.open(path.join(out, f));
      try {
        assert.deepEqual(y.keys().sort(), x.keys().sort());
        for (const k of x.keys()) assert.deepEqual(y.get(k).data, x.get(k).data, `${f}: ${k}`);
      } finally {
        x.close();
        y.close();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
