// safetensors: round trips on every dtype, lazy reads (header only, then one byte range per tensor), byte-identity
// with the fixtures' writer, one clear error per corruption, and atomic writes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SafetensorsFile, loadSafetensors, readSafetensorsBuffer, saveSafetensors } from '../../src/io/safetensors.ts';
import { atomicWrite, atomicWriteFile, atomicWriteJson } from '../../src/io/atomic.ts';
import { Tensor, tensor } from '../../src/index.ts';
import { expectEqual, expectThrows } from '../harness/expect.ts';
import { modelFixtureDir } from '../harness/fixtures.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-st-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A raw safetensors buffer from a header object (or text) and data bytes, for corruption cases. */
function raw(header: unknown, data = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}
function lenOnly(n: bigint, extra = 8): Uint8Array {
  const b = Buffer.alloc(8 + extra);
  b.writeBigUInt64LE(n);
  return b;
}
const write = (name: string, bytes: Uint8Array) => {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
};
const tempFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));
const headerOf = (p: string) => {
  const b = fs.readFileSync(p);
  const n = Number(b.readBigUInt64LE(0));
  return { n, size: b.length, text: b.subarray(8, 8 + n).toString(), json: JSON.parse(b.subarray(8, 8 + n).toString()) };
};

describe('round trip', () => {
  test('every dtype: bit-exact values, dtype, shape, metadata; sorted, aligned, gapless layout', () => {
    const p = path.join(tmp, 'all.safetensors');
    const ts: Record<string, Tensor> = {
      f32: tensor([[1.5, -2, NaN], [Infinity, -0, 3.4e38]]),
      f64: tensor([1e-300, -2, Math.PI], { dtype: 'float64' }),
      f16: tensor([0.5, -1, 65504, 6e-8, Infinity], { dtype: 'float16' }),
      bf16: tensor([1, -3.5, 1e30, NaN], { dtype: 'bfloat16' }),
      i8: tensor([-128, 0, 127], { dtype: 'int8' }),
      u8: tensor([0, 1, 255], { dtype: 'uint8' }),
      i32: tensor([-2147483648, 7, 2147483647], { dtype: 'int32' }),
      ids: tensor([[1, -100], [2147483647, -2147483648]], { dtype: 'int32' }),
      empty: Tensor.zeros([0, 3]),
      scalar: tensor(2.5),
      Z_upper: tensor([9]), // uppercase sorts before lowercase (byte order)
    };
    saveSafetensors(p, ts, { format: 'pt', recipe: '[]' }, { int64Names: new Set(['ids']) });
    const h = headerOf(p);
    assert.equal((8 + h.n) % 8, 0, 'header padded to a multiple of 8');
    assert.match(h.text, / *$/);
    const names = Object.keys(h.json).filter((k) => k !== '__metadata__');
    assert.deepEqual(names, Object.keys(ts).sort(), 'sorted by name');
    assert.deepEqual(h.json.__metadata__, { format: 'pt', recipe: '[]' });
    let off = 0;
    for (const k of names) {
      assert.equal(h.json[k].data_offsets[0], off, `${k} starts where the previous ended`);
      off = h.json[k].data_offsets[1];
    }
    assert.equal(h.size, 8 + h.n + off, 'no trailing bytes');
    assert.deepEqual(
      Object.fromEntries(names.map((k) => [k, h.json[k].dtype])),
      { Z_upper: 'F32', bf16: 'BF16', empty: 'F32', f16: 'F16', f32: 'F32', f64: 'F64', i32: 'I32', i8: 'I8', ids: 'I64', scalar: 'F32', u8: 'U8' },
    );
    const { tensors, metadata } = loadSafetensors(p);
    assert.deepEqual(metadata, { format: 'pt', recipe: '[]' });
    for (const [k, t] of Object.entries(ts)) {
      const got = tensors.get(k)!;
      assert.equal(got.dtype, t.dtype, k);
      assert.deepEqual(got.shape, t.shape, k);
      assert.deepEqual(Buffer.from(got.toArray().buffer), Buffer.from(t.toArray().buffer), `${k} bit-exact`);
    }
    assert.deepEqual(tempFiles(tmp), [], 'no temp files left');
  });

  test('non-contiguous and offset views are written as their logical values', () => {
    const p = path.join(tmp, 'views.safetensors');
    const base = Tensor.arange(12).reshape(3, 4);
    const ts = {
      t_i32: base.t(),
      t_f16: base.float().half().t(),
      narrow_f32: base.float().narrow(0, 1, 2),
      expand_u8: tensor([1, 2], { dtype: 'uint8' }).unsqueeze(0).expand(3, 2),
    };
    saveSafetensors(p, ts);
    const { tensors } = loadSafetensors(p);
    for (const [k, t] of Object.entries(ts)) {
      assert.deepEqual(tensors.get(k)!.shape, t.shape, k);
      assert.deepEqual(tensors.get(k)!.tolist(), t.tolist(), k);
    }
  });

  test('no metadata → no __metadata__ key; empty map → valid 8-byte-aligned file; "__proto__" is an ordinary name', () => {
    const p = path.join(tmp, 'plain.safetensors');
    saveSafetensors(p, new Map([['__proto__', tensor([1, 2])], ['constructor', tensor([3])]]));
    const h = headerOf(p);
    assert.deepEqual(Object.keys(h.json).sort(), ['__proto__', 'constructor']);
    assert.deepEqual(loadSafetensors(p).tensors.get('__proto__')!.tolist(), [1, 2]);
    assert.deepEqual(loadSafetensors(p).metadata, {});
    const e = path.join(tmp, 'empty.safetensors');
    saveSafetensors(e, {});
    assert.equal(fs.statSync(e).size % 8, 0);
    assert.equal(loadSafetensors(e).tensors.size, 0);
  });

  test('reads BOOL as uint8, F64 as float64, in-range I64 as int32; readSafetensorsBuffer copes with odd byte offsets', () => {
    const i64 = new BigInt64Array([-5n, 2147483647n, -2147483648n]);
    const f64 = new Float64Array([0.1, -1e300]);
    const header = {
      b: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] },
      d: { dtype: 'F64', shape: [2], data_offsets: [3, 19] },
      i: { dtype: 'I64', shape: [3], data_offsets: [19, 43] },
      __metadata__: { k: 'v' },
    };
    const data = Buffer.concat([Buffer.from([1, 0, 1]), Buffer.from(f64.buffer), Buffer.from(i64.buffer)]);
    const bytes = raw(header, data);
    // Place the file at an odd offset inside a larger buffer: every typed view would be misaligned.
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes, 1);
    const { tensors, metadata } = readSafetensorsBuffer(padded.subarray(1));
    assert.deepEqual(metadata, { k: 'v' });
    assert.equal(tensors.get('b')!.dtype, 'uint8');
    assert.deepEqual(tensors.get('b')!.tolist(), [1, 0, 1]);
    assert.equal(tensors.get('d')!.dtype, 'float64');
    assert.deepEqual(tensors.get('d')!.tolist(), [0.1, -1e300]);
    assert.equal(tensors.get('i')!.dtype, 'int32');
    assert.deepEqual(tensors.get('i')!.tolist(), [-5, 2147483647, -2147483648]);
    // Same through the lazy file reader (tensor 'd' starts at data offset 3: unaligned in the file).
    const p = write('bool-f64-i64.safetensors', bytes);
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.get('d').tolist(), [0.1, -1e300]);
    assert.deepEqual(f.info('i'), { dtype: 'I64', tensorDtype: 'int32', shape: [3], byteLength: 24, begin: 8 + Number(bytes.length - data.length - 8) + 19, end: bytes.length });
    f.close();
  });
});

describe('lazy reader', () => {
  test('open reads only the header; get reads only that tensor’s byte range', () => {
    const p = path.join(tmp, 'lazy.safetensors');
    saveSafetensors(p, { a: Tensor.arange(10).float(), big: Tensor.ones([1000, 250]), z: tensor([7], { dtype: 'int8' }) });
    const { n } = headerOf(p);
    const realRead = fs.readSync;
    let bytesRead = 0;
    (fs as { readSync: unknown }).readSync = (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => {
      const r = realRead(fd, buf, off, len, pos);
      bytesRead += r;
      return r;
    };
    try {
      const f = SafetensorsFile.open(p);
      assert.equal(bytesRead, 8 + n, 'open reads the length and the header, nothing more');
      assert.deepEqual(f.keys(), ['a', 'big', 'z']);
      assert.ok(f.has('big') && !f.has('nope'));
      assert.deepEqual(f.info('big'), { dtype: 'F32', tensorDtype: 'float32', shape: [1000, 250], byteLength: 1_000_000, begin: 8 + n + 40, end: 8 + n + 40 + 1_000_000 });
      bytesRead = 0;
      assert.deepEqual(f.get('a').tolist(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.equal(bytesRead, 40, 'get(a) reads 10 × 4 bytes');
      bytesRead = 0;
      assert.deepEqual(f.get('z').tolist(), [7]);
      assert.equal(bytesRead, 1);
      f.close();
    } finally {
      (fs as { readSync: unknown }).readSync = realRead;
    }
  });

  test('get(name, { dtype }), unknown names, closed files, metadata, Symbol.dispose', () => {
    const p = path.join(tmp, 'lazy2.safetensors');
    saveSafetensors(p, { a: tensor([1.5, -2]) }, { format: 'pt' });
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.metadata, { format: 'pt' });
    const h = f.get('a', { dtype: 'float16' });
    assert.equal(h.dtype, 'float16');
    assert.deepEqual(h.tolist(), [1.5, -2]);
    assert.equal(f.get('a', { dtype: 'float64' }).dtype, 'float64');
    expectThrows(() => f.get('zzz'), `safetensors ${p}: no tensor named 'zzz'`);
    expectThrows(() => f.get('a', { dtype: 'int64' as never }), "cannot load as unknown dtype 'int64'");
    const info = f.info('a');
    info.shape.push(99); // callers cannot corrupt the header
    assert.deepEqual(f.info('a').shape, [2]);
    f.close();
    f.close(); // idempotent
    expectThrows(() => f.get('a'), 'file is closed');
    const g = SafetensorsFile.open(p);
    g[Symbol.dispose]();
    expectThrows(() => g.get('a'), 'file is closed');
  });

  test('missing file: one error naming it', () => {
    const p = path.join(tmp, 'does-not-exist.safetensors');
    expectThrows(() => SafetensorsFile.open(p), `safetensors ${p}: cannot open (no such file)`);
    expectThrows(() => SafetensorsFile.open(tmp), `safetensors ${tmp}:`);
  });
});

describe('validation: one clear error per corruption', () => {
  const f32x2 = new Uint8Array(8);
  const A = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const cases: [string, Uint8Array, string][] = [
    ['shorter than 8 bytes', new Uint8Array(5), 'file is truncated: 5 bytes, shorter than the 8-byte header length'],
    ['empty file', new Uint8Array(0), 'file is truncated: 0 bytes'],
    ['header length past end of file', raw({ a: A }, f32x2).subarray(0, 20), 'header length 54 runs past the end of the file (20 bytes): the file is truncated'],
    ['absurd header length', lenOnly(10n ** 12n), 'header length 1000000000000 is larger than the 100 MB limit'],
    ['header length 2^64-1', lenOnly(2n ** 64n - 1n), 'header length 18446744073709551615 is larger than the 100 MB limit'],
    ['invalid JSON', raw(null, f32x2, '{"a": '), 'header is not valid JSON ('],
    ['header is an array', raw([1, 2]), 'header must be a JSON object {name: {dtype, shape, data_offsets}}, got an array'],
    ['header is null', raw(null, undefined, 'null'), 'header must be a JSON object {name: {dtype, shape, data_offsets}}, got null'],
    ['entry not an object', raw({ a: 5 }), "tensor 'a': entry must be an object {dtype, shape, data_offsets}, got 5"],
    ['missing dtype', raw({ a: { shape: [2], data_offsets: [0, 8] } }, f32x2), `tensor 'a': missing "dtype"`],
    ['missing shape', raw({ a: { dtype: 'F32', data_offsets: [0, 8] } }, f32x2), `tensor 'a': missing "shape"`],
    ['missing data_offsets', raw({ a: { dtype: 'F32', shape: [2] } }, f32x2), `tensor 'a': missing "data_offsets"`],
    ['dtype not a string', raw({ a: { ...A, dtype: 4 } }, f32x2), "tensor 'a': dtype must be a string, got 4"],
    ['unknown dtype', raw({ a: { ...A, dtype: 'F8_E4M3' } }, f32x2), "tensor 'a': unknown dtype 'F8_E4M3' (supported: F32, F64, F16, BF16, I8, U8, BOOL, I32, I64)"],
    ['dtype named like an Object method', raw({ a: { ...A, dtype: 'toString' } }, f32x2), "tensor 'a': unknown dtype 'toString'"],
    ['size mismatch', raw({ a: { ...A, shape: [3] } }, f32x2), "tensor 'a': shape [3] × F32 needs 12 bytes but data_offsets [0, 8] span 8"],
    ['offsets past end of data', raw({ a: { ...A, shape: [4], data_offsets: [0, 16] } }, f32x2), "tensor 'a': data_offsets [0, 16] run past the end of the data (8 bytes after the header)"],
    ['reversed offsets', raw({ a: { ...A, data_offsets: [8, 0] } }, f32x2), "tensor 'a': data_offsets must be [begin, end] with 0 <= begin <= end, got [8,0]"],
    ['negative offset', raw({ a: { ...A, data_offsets: [-8, 0] } }, f32x2), "tensor 'a': data_offsets must be [begin, end]"],
    ['offsets not a pair', raw({ a: { ...A, data_offsets: [0, 4, 8] } }, f32x2), "tensor 'a': data_offsets must be [begin, end]"],
    [
      'overlapping offsets',
      raw({ a: A, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32x2),
      "tensors 'a' [0, 8] and 'b' [4, 8] have overlapping data_offsets",
    ],
    [
      'duplicate names',
      raw(null, f32x2, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "a" :{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
      "duplicate tensor names in header: 'a'",
    ],
    [
      'duplicate names spelled with escapes',
      raw(null, f32x2, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\\u0061":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
      "duplicate tensor names in header: 'a'",
    ],
    ['negative shape', raw({ a: { ...A, shape: [-2] } }, f32x2), "tensor 'a': shape must be an array of non-negative integers, got [-2]"],
    ['non-integer shape', raw({ a: { ...A, shape: [1.5] } }, f32x2), "tensor 'a': shape must be an array of non-negative integers, got [1.5]"],
    ['shape not an array', raw({ a: { ...A, shape: 2 } }, f32x2), "tensor 'a': shape must be an array of non-negative integers, got 2"],
    ['non-string metadata', raw({ a: A, __metadata__: { step: 3 } }, f32x2), `__metadata__ 'step' must be a string, got 3`],
    ['metadata not an object', raw({ a: A, __metadata__: ['x'] }, f32x2), '__metadata__ must be an object of strings'],
  ];
  for (const [name, bytes, msg] of cases)
    test(name, () => {
      const p = write(`${name.replace(/\W+/g, '-')}.safetensors`, bytes);
      expectThrows(() => SafetensorsFile.open(p), `safetensors ${p}: ${msg}`);
      expectThrows(() => loadSafetensors(p), `safetensors ${p}: ${msg}`);
      expectThrows(() => readSafetensorsBuffer(bytes, 'mem'), `safetensors mem: ${msg}`);
    });

  test('nested keys that repeat in different entries are not duplicates', () => {
    const bytes = raw({ a: A, b: { dtype: 'F32', shape: [0], data_offsets: [8, 8] }, __metadata__: { a: 'x' } }, f32x2);
    assert.deepEqual([...readSafetensorsBuffer(bytes).tensors.keys()], ['a', 'b']);
  });

  test('null __metadata__ (accepted by the reference implementation) reads as {}', () => {
    assert.deepEqual(readSafetensorsBuffer(raw({ a: A, __metadata__: null }, f32x2)).metadata, {});
  });

  test('I64 out of int32 range names the tensor, the value and its index', () => {
    const bytes = raw({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(new BigInt64Array([1n, 2n ** 40n]).buffer));
    expectThrows(() => readSafetensorsBuffer(bytes, 'i64'), "safetensors i64: tensor 'ids': I64 value 1099511627776 at index 1 does not fit in int32");
    const p = write('i64-range.safetensors', bytes);
    const f = SafetensorsFile.open(p); // the header is fine; the error comes when the values are read
    expectThrows(() => f.get('ids'), `safetensors ${p}: tensor 'ids': I64 value 1099511627776 at index 1`);
    f.close();
  });

  test('a file that shrinks after open gives an end-of-file error, not garbage', () => {
    const p = path.join(tmp, 'shrinks.safetensors');
    saveSafetensors(p, { a: Tensor.ones([100]) });
    const f = SafetensorsFile.open(p);
    fs.truncateSync(p, fs.statSync(p).size - 10);
    expectThrows(() => f.get('a'), `safetensors ${p}: tensor 'a': unexpected end of file`);
    f.close();
  });
});

describe('writer validation', () => {
  const p = path.join(tmp, 'bad-write.safetensors');
  const cases: [string, () => void, string][] = [
    ['non-string metadata', () => saveSafetensors(p, { a: tensor([1]) }, { step: 3 as never }), "metadata 'step' must be a string, got number"],
    ['metadata not an object', () => saveSafetensors(p, { a: tensor([1]) }, 'pt' as never), 'metadata must be an object of strings'],
    ['reserved name', () => saveSafetensors(p, new Map([['__metadata__', tensor([1])]])), "'__metadata__' is reserved"],
    ['I64 from float', () => saveSafetensors(p, { a: tensor([1]) }, {}, { int64Names: new Set(['a']) }), "'a' must be int32 to be written as I64, got float32"],
    ['I64 of unknown name', () => saveSafetensors(p, { a: tensor([1]) }, {}, { int64Names: new Set(['b']) }), "int64Names names 'b', which is not among the tensors"],
    ['not a tensor', () => saveSafetensors(p, { a: [1, 2] as never }), "'a' is not a Tensor"],
  ];
  for (const [name, fn, msg] of cases)
    test(name, () => {
      expectThrows(fn, `saveSafetensors ${p}: ${msg}`);
      assert.ok(!fs.existsSync(p), 'nothing written');
    });
});

describe('atomic writes', () => {
  test('temp file <path>.tmp-<pid>-<random> in the same directory, renamed over the target', () => {
    const p = path.join(tmp, 'atomic.safetensors');
    fs.writeFileSync(p, 'old');
    let seen: string[] = [];
    atomicWrite(p, (fd) => {
      fs.writeSync(fd, 'new');
      seen = tempFiles(tmp);
    });
    assert.equal(seen.length, 1);
    assert.match(seen[0]!, new RegExp(`^atomic\\.safetensors\\.tmp-${process.pid}-[0-9a-f]+$`));
    assert.equal(fs.readFileSync(p, 'utf8'), 'new');
    assert.deepEqual(tempFiles(tmp), []);
  });

  test('an error mid-write leaves the old file intact and removes the temp file', () => {
    const p = path.join(tmp, 'keep.bin');
    fs.writeFileSync(p, 'old contents');
    expectThrows(
      () =>
        atomicWrite(p, (fd) => {
          fs.writeSync(fd, 'partial');
          throw new Error('disk full (simulated)');
        }),
      'disk full (simulated)',
    );
    assert.equal(fs.readFileSync(p, 'utf8'), 'old contents');
    assert.deepEqual(tempFiles(tmp), []);
    // saveSafetensors over a path that cannot be replaced (a non-empty directory): rename fails, temp removed.
    const d = path.join(tmp, 'is-a-dir.safetensors');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'x'), 'x');
    assert.throws(() => saveSafetensors(d, { a: tensor([1]) }));
    assert.deepEqual(tempFiles(tmp), []);
  });

  test('saveSafetensors streams: header, then one write per tensor (no whole-file buffer)', () => {
    const p = path.join(tmp, 'stream.safetensors');
    const realWrite = fs.writeSync;
    const sizes: number[] = [];
    (fs as { writeSync: unknown }).writeSync = (fd: number, buf: Uint8Array, off?: number, len?: number) => {
      sizes.push(len ?? buf.length);
      return (realWrite as (...a: unknown[]) => number)(fd, buf, off, len);
    };
    try {
      saveSafetensors(p, { a: Tensor.ones([1000]), b: Tensor.ones([2000]), c: tensor([1, 2], { dtype: 'int32' }) }, {}, { int64Names: new Set(['c']) });
    } finally {
      (fs as { writeSync: unknown }).writeSync = realWrite;
    }
    const { n } = headerOf(p);
    assert.deepEqual(sizes, [8, n, 4000, 8000, 16]);
  });

  test('atomicWriteFile and atomicWriteJson create directories and replace files', () => {
    const f = path.join(tmp, 'deep', 'er', 'file.txt');
    atomicWriteFile(f, 'héllo');
    assert.equal(fs.readFileSync(f, 'utf8'), 'héllo');
    atomicWriteFile(f, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...fs.readFileSync(f)], [1, 2, 3]);
    const j = path.join(tmp, 'deep', 'config.json');
    atomicWriteJson(j, { a: 1, b: [true] });
    assert.equal(fs.readFileSync(j, 'utf8'), '{\n  "a": 1,\n  "b": [\n    true\n  ]\n}\n');
    expectThrows(() => atomicWriteJson(j, undefined), 'not JSON-serializable');
    assert.deepEqual(tempFiles(path.join(tmp, 'deep')), []);
  });
});

// The fixtures (test/harness/fixtures.ts: $SHRINK_FIXTURES or the repo's copy) are required: a missing folder fails.
describe('Hugging Face fixture files', () => {
  for (const model of ['bert_mlm', 'gpt2', 'llama'])
    test(`${model}: lists HF keys lazily; re-saving reproduces the file byte for byte`, () => {
      const dir = modelFixtureDir(model);
      const p = path.join(dir, 'model.safetensors');
      const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { model_safetensors_keys?: unknown };
      const keys = expected.model_safetensors_keys;
      assert.ok(Array.isArray(keys) && keys.length > 0, `${dir}/expected.json: model_safetensors_keys must be a non-empty list`);
      const f = SafetensorsFile.open(p);
      try {
        assert.deepEqual([...f.keys()].sort(), [...(keys as string[])].sort());
        assert.deepEqual(f.metadata, { format: 'pt' });
        if (model === 'bert_mlm') {
          assert.deepEqual(f.info('bert.embeddings.word_embeddings.weight').shape, [1000, 64]);
          assert.equal(f.info('bert.embeddings.word_embeddings.weight').dtype, 'F32');
        }
      } finally {
        f.close();
      }
      const { tensors, metadata } = loadSafetensors(p);
      const out = path.join(tmp, `${model}.safetensors`);
      saveSafetensors(out, tensors, metadata);
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(p)), 'byte-identical to the fixture writer');
    });

  test('expected.safetensors: I64 inputs load as int32 and re-save as I64 byte for byte', () => {
    const p = path.join(modelFixtureDir('bert_mlm'), 'expected.safetensors');
    const { tensors, metadata } = loadSafetensors(p);
    const ids = tensors.get('inputs.input_ids')!;
    assert.equal(ids.dtype, 'int32');
    assert.deepEqual(ids.shape, [2, 16]);
    const f = SafetensorsFile.open(p);
    const i64 = new Set(f.keys().filter((k) => f.info(k).dtype === 'I64'));
    f.close();
    assert.ok(i64.has('inputs.input_ids'));
    const out = path.join(tmp, 'expected-resaved.safetensors');
    saveSafetensors(out, tensors, metadata, { int64Names: i64 });
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(p)));
    expectEqual(loadSafetensors(out).tensors.get('out.logits')!, tensors.get('out.logits')!);
  });
});
