// safetensors: round trips on every dtype, lazy reads, the HF fixture file, and one clear error per corruption.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SafetensorsFile, loadSafetensors, readSafetensorsBuffer, saveSafetensors } from '../../src/io/safetensors.ts';
import { findWeights, readConfig, writePretrained, loadWeights } from '../../src/io/hf.ts';
import { Tensor, tensor } from '../../src/index.ts';
import { FIXTURES } from '../harness/fixtures.ts';
import { expectEqual, expectThrows } from '../harness/expect.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-st-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A raw safetensors buffer from a header object and data bytes (for corruption cases). */
function raw(header: unknown, data = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}
const write = (name: string, bytes: Uint8Array) => {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
};

test('round trip of every dtype, sorted aligned header, metadata', () => {
  const p = path.join(tmp, 'all.safetensors');
  const ts: Record<string, Tensor> = {
    f32: tensor([[1.5, -2], [3, 4]]),
    f64: tensor([1e-300, 2], { dtype: 'float64' }),
    f16: tensor([0.5, -1, 65504], { dtype: 'float16' }),
    bf16: tensor([1, -3.5], { dtype: 'bfloat16' }),
    i8: tensor([-128, 127], { dtype: 'int8' }),
    u8: tensor([0, 255], { dtype: 'uint8' }),
    i32: tensor([-5, 7], { dtype: 'int32' }),
    ids: tensor([1, 2, 3], { dtype: 'int32' }),
    empty: Tensor.zeros([0, 3]),
  };
  saveSafetensors(p, ts, { format: 'pt', recipe: '[]' }, { int64Names: new Set(['ids']) });
  const bytes = fs.readFileSync(p);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  assert.deepEqual(Object.keys(header), ['__metadata__', 'bf16', 'empty', 'f16', 'f32', 'f64', 'i32', 'i8', 'ids', 'u8']);
  assert.equal(header.ids.dtype, 'I64');
  const { tensors, metadata } = loadSafetensors(p);
  assert.deepEqual(metadata, { format: 'pt', recipe: '[]' });
  for (const [k, t] of Object.entries(ts)) {
    const got = tensors.get(k)!;
    assert.equal(got.dtype, t.dtype, k);
    assert.deepEqual(got.shape, t.shape, k);
    expectEqual(got.to('float64'), t.to('float64'), k);
  }
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), [], 'no temp files left');
});

test('lazy reads: header first, one tensor at a time', () => {
  const p = path.join(tmp, 'lazy.safetensors');
  saveSafetensors(p, { a: Tensor.arange(10).float(), b: Tensor.ones([1000, 100]) });
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.keys().sort(), ['a', 'b']);
  assert.equal(f.info('b').byteLength, 400000);
  assert.deepEqual(f.get('a').tolist(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(f.get('a', { dtype: 'float16' }).dtype, 'float16');
  expectThrows(() => f.get('zzz'), "no tensor named 'zzz'");
  f.close();
});

test('reads the Hugging Face fixture checkpoint', () => {
  const dir = path.join(FIXTURES, 'bert_mlm');
  const w = loadWeights(dir);
  assert.ok(w.has('bert.embeddings.word_embeddings.weight'));
  assert.deepEqual(w.get('bert.embeddings.word_embeddings.weight')!.shape, [1000, 64]);
  assert.equal(readConfig(dir).model_type, 'bert');
});

test('corrupt files: one clear error each', () => {
  const f32x2 = new Uint8Array(8);
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: [string, Uint8Array, string][] = [
    ['short', new Uint8Array(5), 'file is truncated: 5 bytes, shorter than the 8-byte header length'],
    ['header-past-end', raw(ok, f32x2).subarray(0, 20), 'runs past the end of the file'],
    ['bad-json', raw(null, f32x2, '{"a": '), 'header is not valid JSON'],
    ['not-object', raw([1, 2]), 'header must be a JSON object'],
    ['no-dtype', raw({ a: { shape: [2], data_offsets: [0, 8] } }, f32x2), "tensor 'a': missing dtype"],
    ['unknown-dtype', raw({ a: { dtype: 'F8', shape: [2], data_offsets: [0, 8] } }, f32x2), "tensor 'a': unknown dtype 'F8'"],
    ['size-mismatch', raw({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32x2), "tensor 'a': shape [3] × F32 needs 12 bytes but data_offsets [0, 8] span 8"],
    ['out-of-range', raw({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32x2), "tensor 'a': data_offsets [0, 16] run past the end of the file"],
    ['overlap', raw({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32x2), "tensors 'a' and 'b' have overlapping data_offsets"],
    ['duplicate', raw(null, f32x2, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'), 'duplicate tensor names in header: a'],
    ['bad-shape', raw({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, f32x2), "tensor 'a': shape must be an array of non-negative integers"],
    ['huge-header', (() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(10n ** 12n); return b; })(), 'larger than the 100 MB limit'],
  ];
  for (const [name, bytes, msg] of cases) {
    const p = write(`${name}.safetensors`, bytes);
    expectThrows(() => SafetensorsFile.open(p), `safetensors ${p}: `, msg);
    expectThrows(() => readSafetensorsBuffer(bytes, name), msg);
  }
  const big = raw({ a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(new BigInt64Array([2n ** 40n]).buffer));
  expectThrows(() => readSafetensorsBuffer(big, 'i64'), "tensor 'a': I64 value 1099511627776 at index 0 does not fit in int32");
});

test('HF folders: pytorch_model.bin gets a conversion hint; writePretrained round-trips', () => {
  const d = path.join(tmp, 'torch-only');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'pytorch_model.bin'), 'x');
  expectThrows(() => findWeights(d), 'found pytorch_model.bin but no model.safetensors', 'save_pretrained');
  expectThrows(() => readConfig(path.join(tmp, 'nope')), 'does not exist');
  const out = path.join(tmp, 'saved');
  writePretrained(out, { config: { model_type: 'bert' }, tensors: new Map([['w', tensor([1, 2])]]) });
  assert.equal(readConfig(out).model_type, 'bert');
  assert.deepEqual(loadWeights(out).get('w')!.tolist(), [1, 2]);
  assert.deepEqual(SafetensorsFile.open(path.join(out, 'model.safetensors')).metadata, { format: 'pt' });
});
