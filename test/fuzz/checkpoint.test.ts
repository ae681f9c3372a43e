// Fuzzing contract for compressed checkpoints (issue #23; "Shrink's own error" as in test/fuzz/safetensors.test.ts):
// a tiny pruned BERT (compression_config), the same quantized, a quantized GPT-2 with a tied head and an asymmetric
// int4 BERT are saved, their config.json sections are mutated, and fromPretrained must load them or throw a
// ShrinkError naming the folder — never a TypeError, a RangeError from a typed-array size, or a write outside the
// model (Object.prototype, Module.prototype). Long runs: `npm run fuzz -- checkpoint --cases 100000`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fc from 'fast-check';
import { ShrinkError } from '../../src/io/errors.ts';
import { fromPretrained } from '../../src/models/registry.ts';
import { Module } from '../../src/nn/module.ts';
import { readSafetensorsBuffer } from '../../src/io/safetensors.ts';
import { Rng } from '../../fuzz/mutate.ts';
import { checkpointTarget, runCase, writeCase, type Case } from '../../fuzz/readers.ts';

const SEED = 23;
const seeds = checkpointTarget.seeds();
const config = (c: Case) => JSON.parse(Buffer.from(c['config.json']!).toString()) as Record<string, any>;
const withConfig = (c: Case, cfg: unknown): Case => ({ ...c, 'config.json': Buffer.from(JSON.stringify(cfg)) });

test('round trip: every seed checkpoint loads with exactly the tensors it was saved with', () => {
  for (const s of seeds) {
    const dir = writeCase(s, 'rt');
    const m = fromPretrained(dir);
    const saved = readSafetensorsBuffer(s['model.safetensors']!).tensors;
    const sd = m.stateDict({ forSave: true });
    for (const [k, t] of saved) assert.deepEqual(Array.from(sd.get(k)!.contiguous().data.subarray(0, t.numel)), Array.from(t.data), k);
  }
  assert.ok(seeds.some((s) => config(s).compression_config) && seeds.some((s) => config(s).quantization_config));
});

test('mutated compression_config / quantization_config: a model or a ShrinkError naming the folder', () => {
  fc.assert(fc.property(fc.integer(), (seed) => {
    const r = runCase(checkpointTarget, checkpointTarget.mutate(new Rng(seed), seeds));
    assert.equal(r, null, r ?? '');
  }), { numRuns: 250, seed: SEED });
});

function rejects(c: Case, re: RegExp): void {
  const dir = writeCase(c, 'bad');
  assert.throws(() => fromPretrained(dir), (e: unknown) => e instanceof ShrinkError && e.message.includes(dir) && re.test(e.message));
}

test('regressions found by fuzzing: null entries, absurd shapes, prototype paths', () => {
  const pruned = seeds[0]!;
  const quant = seeds.find((s) => config(s).quantization_config && !config(s).compression_config)!;
  const cc = config(pruned);
  const qc = config(quant);
  const qname = Object.keys(qc.quantization_config.modules)[0]!;
  // quantization_config.modules entry null: was a TypeError (reading 'shares')
  rejects(withConfig(quant, { ...qc, quantization_config: { ...qc.quantization_config, modules: { [qname]: null } } }), /modules\['.*'\]: expected an object/);
  // a shape claiming 6e9 codes: was a RangeError (Invalid typed array length)
  const big = { ...qc.quantization_config.modules[qname], shape: [2 ** 16, 98304], per_tensor: true };
  rejects(withConfig(quant, { ...qc, quantization_config: { ...qc.quantization_config, modules: { ...qc.quantization_config.modules, [qname]: big } } }), /\.shape: .*needs '.*' of shape|missing/);
  // a compression_config linear of 1e5 × 1e5: was a RangeError; now checked against the stored weight
  const lname = Object.keys(cc.compression_config.modules).find((k) => cc.compression_config.modules[k].type === 'linear')!;
  rejects(withConfig(pruned, { ...cc, compression_config: { format_version: 1, modules: { [lname]: { type: 'linear', in_features: 1e5, out_features: 1e5 } } } }), /describes a weight of shape \[100000, 100000\]/);
  // prototype paths: would have set a field on Module.prototype / Object.prototype
  for (const p of ['__proto__.polluted', 'constructor.prototype.polluted', 'bert.__proto__', 'toString']) {
    rejects(withConfig(pruned, { ...cc, compression_config: { format_version: 1, modules: { [p]: { type: 'none' } } } }), /has no/);
    assert.equal((Module.prototype as unknown as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  }
  // a structural field that is not a positive integer
  const attn = 'bert.encoder.layer.0.attention.self';
  rejects(withConfig(pruned, { ...cc, compression_config: { ...cc.compression_config, modules: { ...cc.compression_config.modules, [attn]: { type: 'fields', numHeads: -3 } } } }), /numHeads: expected a positive integer/);
  assert.ok(path.isAbsolute(writeCase(pruned, 'ok')));
});
