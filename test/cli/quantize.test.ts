// `shrink quantize` end to end on the bundled stories260K: each scheme writes a folder that `shrink eval` reads
// unchanged, with the file sizes and perplexities the schemes imply; fp16/bf16 casts; bad flags get one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.ts';

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
