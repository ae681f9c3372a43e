// `shrink inspect` counts what a folder stores: quantized folders (I8 codes, U8 packed 4-bit codes with their
// scales and zero points, int4 group padding) report the same parameters as the fp32 model and the bytes their file
// holds; an fp16 cast reports half the fp32 bytes. Checked against the model's own parameter count and the file
// sizes (file size less the 8-byte length and the JSON header).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fromPretrained } from '../../src/models/registry.ts';
import type { Module } from '../../src/nn/module.ts';

const root = path.resolve(import.meta.dirname, '../..');
const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root });

interface Report {
  architecture: string;
  parameters: number;
  bytes: number;
  modules: { name: string; parameters: number; bytes: number }[];
  dtypes: Record<string, number>;
}

function inspect(dir: string): Report {
  const r = run('inspect', dir, '--json');
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Report;
}

function quantize(model: string, out: string, ...flags: string[]): void {
  const r = run('quantize', model, '-o', out, ...flags, '--json');
  assert.equal(r.status, 0, r.stderr);
}

/** A safetensors file's header length and parsed JSON header, read directly. */
function header(file: string): { n: number; json: Record<string, unknown> } {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  return { n, json: JSON.parse(b.subarray(8, 8 + n).toString()) };
}

/** Tensor bytes of a safetensors file: its size less the 8-byte header length and the header. */
const dataBytes = (file: string) => fs.statSync(file).size - 8 - header(file).n;

/** The report is self-consistent and its bytes are the file's tensor bytes. */
function checkBytes(r: Report, dir: string): void {
  assert.equal(r.bytes, dataBytes(path.join(dir, 'model.safetensors')), `${dir}: bytes`);
  assert.equal(r.modules.reduce((a, m) => a + m.bytes, 0), r.bytes, `${dir}: module bytes add up`);
  assert.equal(r.modules.reduce((a, m) => a + m.parameters, 0), r.parameters, `${dir}: module parameters add up`);
  assert.equal(Object.values(r.dtypes).reduce((a, b) => a + b, 0), r.bytes, `${dir}: dtype bytes add up`);
}

const perModule = (r: Report) => Object.fromEntries(r.modules.map((m) => [m.name, m.parameters]));

test('stories260K: fp32, int8, int4 with group padding and an fp16 cast, counted as stored', () => {
  const model = 'data/models/stories260K';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-inspect-'));
  try {
    const known = fromPretrained<Module>(path.join(root, model)).numParameters();
    assert.equal(known, 260032);
    const fp32 = inspect(model);
    assert.equal(fp32.parameters, known);
    assert.deepEqual(Object.keys(fp32.dtypes), ['F32']);
    assert.equal(fp32.bytes, 4 * known);
    checkBytes(fp32, path.join(root, model));

    // int8: every projection and the (tied) embedding as I8 codes, F32 per-channel scales and norms
    const q8 = path.join(dir, 'int8');
    quantize(model, q8, '--scheme', 'int8');
    const r8 = inspect(q8);
    assert.equal(r8.architecture, 'LlamaForCausalLM');
    assert.equal(r8.parameters, known, 'int8 codes count as parameters, scales do not');
    assert.deepEqual(perModule(r8), perModule(fp32));
    assert.deepEqual(Object.keys(r8.dtypes).sort(), ['F32', 'I8']);
    assert.ok(r8.dtypes.I8! > 0.9 * known && r8.dtypes.I8! <= known, `I8 bytes ${r8.dtypes.I8}`);
    checkBytes(r8, q8);
    assert.ok(r8.bytes < 0.28 * fp32.bytes, `int8 bytes ${r8.bytes} vs fp32 ${fp32.bytes}`);

    // int4, group 64: U8 packed codes (2 per byte), U8 zero points; down_proj's in_features 172 is padded to 192
    const q4 = path.join(dir, 'int4');
    quantize(model, q4, '--scheme', 'int4', '--granularity', 'group:64');
    const qc = JSON.parse(fs.readFileSync(path.join(q4, 'config.json'), 'utf8')).quantization_config;
    assert.deepEqual(qc.modules['model.layers.0.mlp.down_proj'].shape, [64, 192]);
    assert.equal(qc.modules['model.layers.0.mlp.down_proj'].in_features, 172);
    const r4 = inspect(q4);
    assert.equal(r4.parameters, known, 'two 4-bit codes per packed byte, padding columns not counted');
    assert.deepEqual(perModule(r4), perModule(fp32));
    assert.deepEqual(Object.keys(r4.dtypes).sort(), ['F32', 'U8']);
    checkBytes(r4, q4);
    assert.ok(r4.bytes < r8.bytes, `int4 bytes ${r4.bytes} vs int8 ${r8.bytes}`);

    // fp16 cast: same parameters, exactly half the bytes
    const f16 = path.join(dir, 'fp16');
    quantize(model, f16, '--scheme', 'fp16');
    const rf = inspect(f16);
    assert.equal(rf.parameters, known);
    assert.deepEqual(rf.dtypes, { F16: fp32.bytes / 2 });
    assert.equal(rf.bytes, fp32.bytes / 2);
    checkBytes(rf, f16);

    const text = run('inspect', q8);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^${q8.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: LlamaForCausalLM \\(llama\\), 260,032 parameters, ${(r8.bytes / 1024).toFixed(1)} KiB\n`));
    assert.match(text.stdout, /\nstored as I8 [\d.]+ KiB, F32 [\d.]+ KiB\n/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bert-teacher int4: quantized embeddings and a head sharing their codes count once', () => {
  const model = 'data/models/bert-teacher';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-inspect-bert-'));
  try {
    const known = fromPretrained<Module>(path.join(root, model)).numParameters();
    const fp32 = inspect(model);
    assert.equal(fp32.parameters, known);
    checkBytes(fp32, path.join(root, model));
    const q4 = path.join(dir, 'int4');
    quantize(model, q4, '--scheme', 'int4', '--granularity', 'group:32');
    const qc = JSON.parse(fs.readFileSync(path.join(q4, 'config.json'), 'utf8')).quantization_config;
    assert.equal(qc.modules['cls.predictions.decoder'].shares, 'bert.embeddings.word_embeddings', 'the MLM decoder shares the embedding codes');
    assert.ok(!('cls.predictions.decoder.weight_packed' in header(path.join(q4, 'model.safetensors')).json), 'shared codes are stored once');
    const r4 = inspect(q4);
    assert.equal(r4.architecture, 'BertForMaskedLM');
    assert.equal(r4.parameters, known);
    assert.deepEqual(perModule(r4), perModule(fp32));
    checkBytes(r4, q4);
    assert.ok(r4.dtypes.U8! > 0 && r4.bytes < 0.2 * fp32.bytes, `int4 bytes ${r4.bytes} vs fp32 ${fp32.bytes}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
