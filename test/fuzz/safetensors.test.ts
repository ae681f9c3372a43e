// Fuzzing contract for safetensors (issue #23), seeded so `npm test` is deterministic. "Shrink's own error" is
// ShrinkError (src/io/errors.ts, extends Error): for any bytes, loadSafetensors / SafetensorsFile / readSafetensorsBuffer
// return tensors that fit in the file and round-trip bit for bit, or throw a ShrinkError naming the file — never a
// TypeError/RangeError, never an allocation the file cannot justify (claims are checked against the file size and
// SHRINK_MAX_TENSOR_BYTES before allocating). Long runs: `npm run fuzz -- safetensors --cases 100000`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Tensor } from '../../src/tensor/tensor.ts';
import { ShrinkError } from '../../src/io/errors.ts';
import { SafetensorsFile, loadSafetensors, readSafetensorsBuffer, saveSafetensors } from '../../src/io/safetensors.ts';
import { Rng } from '../../fuzz/mutate.ts';
import { rawSafetensors, runCase, safetensorsTarget } from '../../fuzz/readers.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-fuzz-st-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const SEED = 23;

const DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', 'int32'] as const;
const tensorArb = fc
  .record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) })
  .chain(({ dtype, shape }) => {
    const n = shape.reduce((a, s) => a * s, 1);
    const val = dtype === 'int8' ? fc.integer({ min: -128, max: 127 }) : dtype === 'uint8' ? fc.integer({ min: 0, max: 255 }) : dtype === 'int32' ? fc.integer() : fc.double();
    return fc.array(val, { minLength: n, maxLength: n }).map((vals) => Tensor.from(vals, { shape, dtype }));
  });

function hex(t: Tensor): string {
  const c = t.contiguous();
  const a = c.data.subarray(c.offset, c.offset + c.numel);
  return `${t.dtype} ${t.shape.join(',')} ${Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex')}`;
}

test('round trip: any tensors (names, dtypes, shapes incl. empty and scalars) and metadata come back bit for bit', () => {
  const names = fc.string({ minLength: 0, maxLength: 8 }).filter((s) => s !== '__metadata__');
  fc.assert(
    fc.property(fc.dictionary(names, tensorArb, { maxKeys: 5, noNullPrototype: true }), fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3, noNullPrototype: true }), (ts, meta) => {
      const p = path.join(tmp, 'rt.safetensors');
      const map = new Map(Object.entries(ts));
      saveSafetensors(p, map, meta);
      const back = loadSafetensors(p);
      assert.deepEqual([...back.tensors.keys()].sort(), [...map.keys()].sort());
      for (const [k, t] of map) assert.equal(hex(back.tensors.get(k)!), hex(t), k);
      assert.deepEqual(back.metadata, meta);
      const buf = readSafetensorsBuffer(fs.readFileSync(p));
      for (const [k, t] of map) assert.equal(hex(buf.tensors.get(k)!), hex(t), k);
    }),
    { numRuns: 200, seed: SEED },
  );
});

/** The target's contract on raw bytes; throws with the failure description. */
function contract(bytes: Uint8Array): void {
  const r = runCase(safetensorsTarget, { 'model.safetensors': bytes });
  assert.equal(r, null, r ?? '');
}

test('arbitrary bytes: a valid file or a ShrinkError naming the file', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), contract), { numRuns: 400, seed: SEED });
});

test('arbitrary JSON headers (with a correct length prefix and random data): valid or a ShrinkError', () => {
  const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(1e15, -1, 2 ** 53, 1.5, 'F32', 'I64', 'BOOL', [1e15], [0, 4e15], [2 ** 31, 2 ** 31]));
  const entry = fc.record({ dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'BOOL', 'U8', 'X'), value), shape: fc.oneof(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }), value), data_offsets: fc.oneof(fc.tuple(fc.nat(40), fc.nat(40)), value) }, { requiredKeys: [] });
  const header = fc.dictionary(fc.oneof(fc.string({ maxLength: 5 }), fc.constantFrom('__metadata__', '__proto__', 'constructor')), fc.oneof(entry, value), { maxKeys: 4 });
  fc.assert(
    fc.property(fc.oneof(header, fc.jsonValue({ maxDepth: 2 })), fc.uint8Array({ maxLength: 48 }), (h, data) => contract(rawSafetensors(h, data))),
    { numRuns: 400, seed: SEED },
  );
});

test('mutations of real files (seeded, the fuzzer\'s engine): valid or a ShrinkError', () => {
  const seeds = safetensorsTarget.seeds();
  for (const s of seeds) contract(s['model.safetensors']!);
  fc.assert(fc.property(fc.integer(), (seed) => contract(safetensorsTarget.mutate(new Rng(seed), seeds)['model.safetensors']!)), { numRuns: 600, seed: SEED });
});

test('a 100-byte file claiming a 10^15-element tensor is rejected before any allocation', () => {
  const h = { big: { dtype: 'F32', shape: [1e15], data_offsets: [0, 4e15] } };
  let bytes = rawSafetensors(h);
  bytes = rawSafetensors(null, new Uint8Array(100 - bytes.length), JSON.stringify(h));
  assert.equal(bytes.length, 100);
  const p = path.join(tmp, 'claim.safetensors');
  fs.writeFileSync(p, bytes);
  const before = process.memoryUsage().arrayBuffers;
  for (const read of [() => loadSafetensors(p), () => SafetensorsFile.open(p), () => readSafetensorsBuffer(bytes, p)]) {
    assert.throws(read, (e: unknown) => e instanceof ShrinkError && e.message.includes(p) && /tensor 'big'/.test(e.message) && /limit|past the end/.test(e.message));
  }
  assert.ok(process.memoryUsage().arrayBuffers - before < 1 << 20, 'no large buffer was allocated');
  // the same claim with consistent offsets but no data: rejected against the file size
  const h2 = { big: { dtype: 'U8', shape: [1000, 1000], data_offsets: [0, 1e6] } };
  fs.writeFileSync(p, rawSafetensors(h2));
  assert.throws(() => loadSafetensors(p), (e: unknown) => e instanceof ShrinkError && /run past the end of the data \(0 bytes/.test((e as Error).message));
});

test('SHRINK_MAX_TENSOR_BYTES: a tensor larger than the limit is refused, naming the tensor and the variable', () => {
  const p = path.join(tmp, 'limit.safetensors');
  saveSafetensors(p, { w: Tensor.zeros([4, 4]), b: Tensor.zeros([2]) });
  const old = process.env.SHRINK_MAX_TENSOR_BYTES;
  try {
    process.env.SHRINK_MAX_TENSOR_BYTES = '32';
    assert.throws(() => loadSafetensors(p), (e: unknown) => e instanceof ShrinkError && /tensor 'w'.*64 bytes, over the 32-byte limit.*SHRINK_MAX_TENSOR_BYTES/.test((e as Error).message));
    process.env.SHRINK_MAX_TENSOR_BYTES = '64';
    assert.equal(loadSafetensors(p).tensors.get('w')!.numel, 16);
    process.env.SHRINK_MAX_TENSOR_BYTES = 'lots';
    assert.throws(() => loadSafetensors(p), (e: unknown) => e instanceof ShrinkError && /SHRINK_MAX_TENSOR_BYTES must be a non-negative integer/.test((e as Error).message));
  } finally {
    if (old === undefined) delete process.env.SHRINK_MAX_TENSOR_BYTES;
    else process.env.SHRINK_MAX_TENSOR_BYTES = old;
  }
});

test('I/O failures at the reader boundary are ShrinkErrors too (a folder where a file should be)', () => {
  const d = path.join(tmp, 'dir.safetensors');
  fs.mkdirSync(d, { recursive: true });
  assert.throws(() => loadSafetensors(d), (e: unknown) => e instanceof ShrinkError && e.message.includes(d));
});
