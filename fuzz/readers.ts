/**
 * Fuzz targets shared by `npm run fuzz` (fuzz/run.ts, long runs) and the seeded property tests in test/fuzz/.
 *
 * A case is a small folder: file name → bytes. Each target builds seed folders from real files Shrink writes
 * (safetensors of every dtype, tiny BERT/GPT-2 model folders, sharded checkpoints, pruned and quantized
 * checkpoints, recipes in JSON and YAML), mutates them (fuzz/mutate.ts), writes the case to a fresh folder and
 * runs the readers on it. The contract checked (`check` returns a failure description, or null):
 *
 * - a reader returns a valid object (checked per target: tensor bytes within the file, round trips identical), or
 * - throws `ShrinkError` (src/io/errors.ts) whose message names the file or folder it read.
 *   Exception: errors raised by src/models/ (registry.ts, model constructors; not owned by the fuzzing work) may be
 *   plain `Error` (constructor exactly Error) naming the folder or starting with 'config:'; anything else
 *   (TypeError, RangeError, …) is a failure.
 * - no case may take longer than CASE_MS_LIMIT (a hang), and nothing may leak onto Object.prototype.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { Tensor } from '../src/tensor/tensor.ts';
import { manualSeed } from '../src/tensor/random.ts';
import { ShrinkError } from '../src/io/errors.ts';
import { loadSafetensors, readSafetensorsBuffer, saveSafetensors, SafetensorsFile } from '../src/io/safetensors.ts';
import { findWeights, loadWeights, readConfig } from '../src/io/hf.ts';
import { fromPretrained, savePretrained } from '../src/models/registry.ts';
import { BertForSequenceClassification, bertConfig } from '../src/models/bert/modeling.ts';
import { GPT2LMHeadModel, gpt2Config } from '../src/models/gpt2/modeling.ts';
import { sliceLinear } from '../src/nn/layers.ts';
import type { Module } from '../src/nn/module.ts';
import { resolveSteps } from '../src/compress/runner.ts';
import { readRecipe } from '../src/cli/compress.ts';
import { quantizeModel } from '../src/compress/quant/apply.ts';
import '../src/compress/index.ts';
import { Rng, jsonText, mutateBytes, mutateJson } from './mutate.ts';

export type Case = Record<string, Uint8Array>;
export const CASE_MS_LIMIT = 5000;

export interface Target {
  name: string;
  /** Seed cases (real files written by Shrink). */
  seeds(): Case[];
  /** A mutated case derived from the seeds. */
  mutate(rng: Rng, seeds: Case[]): Case;
  /** Run the readers on a folder holding the case; a failure description, or null. */
  run(dir: string, c: Case): string | null;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (s: string) => enc.encode(s);

/** The folder every case is written into (one per process). */
let scratch: string | null = null;
function scratchDir(): string {
  if (!scratch) {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-fuzz-'));
    process.on('exit', () => fs.rmSync(scratch!, { recursive: true, force: true }));
  }
  return scratch;
}

function readFolder(dir: string): Case {
  const c: Case = {};
  for (const f of fs.readdirSync(dir).sort()) c[f] = new Uint8Array(fs.readFileSync(path.join(dir, f)));
  return c;
}

/** Write a case into a fresh folder (its only contents). */
export function writeCase(c: Case, sub = 'case'): string {
  const dir = path.join(scratchDir(), sub);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  for (const [f, b] of Object.entries(c)) fs.writeFileSync(path.join(dir, f), b);
  return dir;
}

/** Is `e` an acceptable reader error for a read of `names` (file or folder paths)? A description if not. */
export function badError(e: unknown, names: string[], allowModelErrors = false): string | null {
  if (e instanceof ShrinkError) {
    if (!names.some((n) => e.message.includes(n))) return `ShrinkError does not name ${names.join(' or ')}: ${e.message}`;
    return null;
  }
  // src/models (registry.ts, model constructors) is outside the fuzzing work's files: its plain Errors are accepted
  if (allowModelErrors && e instanceof Error && e.constructor === Error) return null;
  const ctor = e instanceof Error ? e.constructor.name : typeof e;
  return `${ctor}: ${e instanceof Error ? e.message : String(e)}${e instanceof Error && e.stack ? `\n${e.stack.split('\n').slice(1, 6).join('\n')}` : ''}`;
}

const PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort().join();
function pollution(): string | null {
  const now = Object.getOwnPropertyNames(Object.prototype).sort().join();
  return now === PROTO_KEYS ? null : `Object.prototype was modified: ${now}`;
}

/** Run one case of a target: write it, run, time it, check prototypes. */
export function runCase(t: Target, c: Case): string | null {
  const dir = writeCase(c);
  const t0 = performance.now();
  let r: string | null;
  try {
    r = t.run(dir, c);
  } catch (e) {
    r = `harness: ${badError(e, []) ?? String(e)}`;
  }
  const ms = performance.now() - t0;
  if (!r && ms > CASE_MS_LIMIT) r = `took ${Math.round(ms)} ms (limit ${CASE_MS_LIMIT})`;
  return r ?? pollution();
}

// ---------------------------------------------------------------------------------------------------- safetensors

function bits(t: Tensor): string {
  const c = t.contiguous();
  const a = c.data.subarray(c.offset, c.offset + c.numel);
  return `${t.dtype}|${t.shape.join(',')}|${Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex')}`;
}

function sameContents(a: Map<string, Tensor>, b: Map<string, Tensor>): string | null {
  if ([...a.keys()].sort().join('\0') !== [...b.keys()].sort().join('\0')) return `tensor names differ: ${[...a.keys()]} vs ${[...b.keys()]}`;
  for (const [k, t] of a) if (bits(t) !== bits(b.get(k)!)) return `tensor '${k}' differs`;
  return null;
}

/** A safetensors file with a few random small tensors of every dtype (and sometimes metadata / I64). */
export function randomSafetensors(rng: Rng, file: string): void {
  const dtypes = ['float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', 'int32'] as const;
  const ts = new Map<string, Tensor>();
  const n = rng.int(4);
  const i64 = new Set<string>();
  for (let i = 0; i < n; i++) {
    const dt = rng.pick(dtypes);
    const shape = Array.from({ length: rng.int(3) }, () => rng.int(4));
    const numel = shape.reduce((a, s) => a * s, 1);
    const vals = Array.from({ length: numel }, () => (dt.startsWith('int') || dt === 'uint8' ? rng.int(100) - (dt === 'uint8' ? 0 : 50) : (rng.next() - 0.5) * 100));
    const name = rng.pick(['w', 'layer.0.weight', 'b', '__proto__', 'é', 'a"b', 'x\\y', '']) + i;
    ts.set(name, Tensor.from(vals, { shape, dtype: dt }));
    if (dt === 'int32' && rng.chance(0.5)) i64.add(name);
  }
  const meta: Record<string, string> = rng.chance(0.5) ? { format: 'pt', note: rng.pick(['', 'x', '{"a":1}']) } : {};
  saveSafetensors(file, ts, meta, { int64Names: i64 });
}

/** Raw safetensors bytes from a header (object or text) and data. */
export function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return new Uint8Array(Buffer.concat([len, h, data]));
}

/** Mutate the JSON header of a safetensors file (length fixed up, usually). */
function mutateHeader(rng: Rng, b: Uint8Array): Uint8Array | null {
  if (b.length < 8) return null;
  const n = Number(Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64LE(0));
  if (8 + n > b.length) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(dec.decode(b.subarray(8, 8 + n)));
  } catch {
    return null;
  }
  const out = rawSafetensors(null, b.subarray(8 + n), jsonText(rng, mutateJson(rng, doc)));
  if (rng.chance(0.1)) return out.subarray(0, out.length - rng.int(16));
  return out;
}

export const safetensorsTarget: Target = {
  name: 'safetensors',
  seeds() {
    const rng = new Rng(1);
    const dir = scratchDir();
    const out: Case[] = [];
    for (let i = 0; i < 24; i++) {
      const p = path.join(dir, `seed-${i}.safetensors`);
      randomSafetensors(rng, p);
      out.push({ 'model.safetensors': new Uint8Array(fs.readFileSync(p)) });
      fs.rmSync(p);
    }
    // the issue's case: 100 bytes claiming a 10^15-element tensor
    const claim = rawSafetensors({ big: { dtype: 'F32', shape: [1e15], data_offsets: [0, 4e15] } });
    out.push({ 'model.safetensors': claim });
    return out;
  },
  mutate(rng, seeds) {
    const src = rng.pick(seeds)['model.safetensors']!;
    if (rng.chance(0.5)) {
      const m = mutateHeader(rng, src);
      if (m) return { 'model.safetensors': m };
    }
    return { 'model.safetensors': mutateBytes(rng, src, seeds.map((s) => s['model.safetensors']!)) };
  },
  run(dir, c) {
    const file = path.join(dir, 'model.safetensors');
    const bytes = c['model.safetensors']!;
    let fromFile: Map<string, Tensor> | null = null;
    let fileErr: unknown = null;
    try {
      fromFile = loadSafetensors(file).tensors;
    } catch (e) {
      fileErr = e;
      const bad = badError(e, [file]);
      if (bad) return `loadSafetensors: ${bad}`;
    }
    let fromBuf: Map<string, Tensor> | null = null;
    try {
      fromBuf = readSafetensorsBuffer(bytes, 'buf').tensors;
    } catch (e) {
      const bad = badError(e, ['buf']);
      if (bad) return `readSafetensorsBuffer: ${bad}`;
      if (!fileErr) return `readSafetensorsBuffer fails (${(e as Error).message}) where loadSafetensors succeeds`;
      const a = (e as Error).message.replace('safetensors buf: ', '');
      const b = (fileErr as Error).message.replace(`safetensors ${file}: `, '');
      if (a !== b) return `the two readers disagree:\n  buffer: ${a}\n  file:   ${b}`;
      return null;
    }
    if (!fromFile) return `loadSafetensors fails where readSafetensorsBuffer succeeds: ${(fileErr as Error).message}`;
    const same = sameContents(fromFile, fromBuf);
    if (same) return `readers disagree: ${same}`;
    let total = 0;
    for (const [k, t] of fromFile) {
      if (t.numel !== t.shape.reduce((a, s) => a * s, 1)) return `tensor '${k}': numel ${t.numel} does not match shape ${t.shape}`;
      total += t.numel * t.data.BYTES_PER_ELEMENT;
    }
    if (total > bytes.length) return `loaded ${total} bytes of tensors from a ${bytes.length}-byte file`;
    // lazy reader agrees on every tensor's info
    using f = SafetensorsFile.open(file);
    for (const k of f.keys()) if (f.info(k).shape.join() !== fromFile.get(k)!.shape.join()) return `info('${k}') shape differs from get`;
    // round trip: write what was read, read it back: identical
    const again = path.join(dir, 'again.safetensors');
    saveSafetensors(again, fromFile, f.metadata);
    const back = loadSafetensors(again);
    const rt = sameContents(fromFile, back.tensors);
    if (rt) return `round trip: ${rt}`;
    if (JSON.stringify(back.metadata) !== JSON.stringify(f.metadata)) return 'round trip: metadata differs';
    return null;
  },
};

// ---------------------------------------------------------------------------------------------------- HF folders

export function tinyBert(layers = 1): BertForSequenceClassification {
  manualSeed(3);
  return new BertForSequenceClassification(bertConfig({ vocab_size: 12, hidden_size: 8, num_hidden_layers: layers, num_attention_heads: 2, intermediate_size: 8, max_position_embeddings: 6, num_labels: 2 })).eval();
}
export function tinyGpt2(): GPT2LMHeadModel {
  manualSeed(4);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 12, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 6 })).eval();
}

function savedFolder(m: Module & { config: Record<string, unknown> }, sub: string): Case {
  const dir = path.join(scratchDir(), sub);
  fs.rmSync(dir, { recursive: true, force: true });
  savePretrained(m, dir);
  const c = readFolder(dir);
  fs.rmSync(dir, { recursive: true, force: true });
  return c;
}

/** The same folder with its weights split into two shards and an index. */
function sharded(c: Case): Case {
  const { tensors, metadata } = readSafetensorsBuffer(c['model.safetensors']!);
  const keys = [...tensors.keys()].sort();
  const half = Math.ceil(keys.length / 2);
  const dir = scratchDir();
  const out: Case = { 'config.json': c['config.json']! };
  const weightMap: Record<string, string> = {};
  [keys.slice(0, half), keys.slice(half)].forEach((ks, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    const p = path.join(dir, name);
    saveSafetensors(p, new Map(ks.map((k) => [k, tensors.get(k)!])), metadata);
    out[name] = new Uint8Array(fs.readFileSync(p));
    fs.rmSync(p);
    for (const k of ks) weightMap[k] = name;
  });
  out['model.safetensors.index.json'] = text(JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }, null, 2));
  return out;
}

/** Mutate one JSON file of a case structurally (parse → mutate → text), or its bytes. */
function mutateJsonFile(rng: Rng, b: Uint8Array, focus?: string): Uint8Array {
  if (rng.chance(0.15)) return mutateBytes(rng, b);
  let doc: unknown;
  try {
    doc = JSON.parse(dec.decode(b));
  } catch {
    return mutateBytes(rng, b);
  }
  if (focus && doc && typeof doc === 'object' && focus in doc) {
    const d = doc as Record<string, unknown>;
    d[focus] = mutateJson(rng, d[focus]);
  } else doc = mutateJson(rng, doc);
  return text(jsonText(rng, doc));
}

function readAll(dir: string, fromPretrainedToo: boolean): string | null {
  const cfg = path.join(dir, 'config.json');
  const readers: [string, () => unknown][] = [
    ['readConfig', () => readConfig(dir)],
    ['findWeights', () => findWeights(dir)],
    ['loadWeights', () => loadWeights(dir)],
  ];
  if (fromPretrainedToo) readers.push(['fromPretrained', () => fromPretrained(dir)]);
  for (const [name, fn] of readers) {
    let v: unknown;
    try {
      v = fn();
    } catch (e) {
      const bad = badError(e, [dir, cfg], name === 'fromPretrained');
      if (bad) return `${name}: ${bad}`;
      continue;
    }
    if (name === 'readConfig' && (typeof v !== 'object' || v === null || Array.isArray(v))) return 'readConfig returned a non-object';
    if (name === 'loadWeights') {
      let total = 0;
      for (const t of (v as Map<string, Tensor>).values()) total += t.numel * t.data.BYTES_PER_ELEMENT;
      const size = fs.readdirSync(dir).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
      if (total > size) return `loadWeights returned ${total} bytes from a ${size}-byte folder`;
    }
  }
  return null;
}

export const hfTarget: Target = {
  name: 'hf',
  seeds() {
    const bert = savedFolder(tinyBert(), 'seed-bert');
    const gpt = savedFolder(tinyGpt2(), 'seed-gpt2');
    return [bert, gpt, sharded(bert), sharded(gpt)];
  },
  mutate(rng, seeds) {
    const c: Case = { ...rng.pick(seeds) };
    const rounds = 1 + rng.int(2);
    for (let r = 0; r < rounds; r++) {
      const names = Object.keys(c);
      const f = rng.pick(names);
      const op = rng.int(10);
      if (op === 0 && names.length > 1) delete c[f];
      else if (f.endsWith('.json')) c[f] = mutateJsonFile(rng, c[f]!);
      else c[f] = rng.chance(0.5) ? (mutateHeader(rng, c[f]!) ?? mutateBytes(rng, c[f]!)) : mutateBytes(rng, c[f]!);
    }
    return c;
  },
  run(dir) {
    return readAll(dir, true);
  },
};

// ---------------------------------------------------------------------------------------------------- compressed checkpoints

/** Tiny compressed checkpoints: a BERT with one layer's FFN pruned (compression_config), quantized int8 and int4; a GPT-2 quantized int4 (tied head). */
export function checkpointSeeds(): Case[] {
  const pruned = () => {
    const m = tinyBert(2);
    const l = m.bert.encoder.layer[0]!;
    l.intermediate!.dense = sliceLinear(l.intermediate!.dense, { outIdx: [0, 2, 5] });
    l.output.dense = sliceLinear(l.output.dense!, { inIdx: [0, 2, 5] });
    m.bert.encoder.layer[1]!.attention = null as never;
    return m;
  };
  const a = pruned();
  const b = pruned();
  quantizeModel(b, { scheme: 'int8' });
  const g = tinyGpt2();
  quantizeModel(g, { scheme: 'int4', groupSize: 4 });
  const h = tinyBert();
  quantizeModel(h, { scheme: 'int4', granularity: 'channel', symmetric: false } as never);
  return [savedFolder(a, 'ck-a'), savedFolder(b, 'ck-b'), savedFolder(g, 'ck-g'), savedFolder(h, 'ck-h')];
}

export const checkpointTarget: Target = {
  name: 'checkpoint',
  seeds: checkpointSeeds,
  mutate(rng, seeds) {
    const c: Case = { ...rng.pick(seeds) };
    const r = rng.int(20);
    if (r === 0) c['model.safetensors'] = mutateHeader(rng, c['model.safetensors']!) ?? mutateBytes(rng, c['model.safetensors']!);
    else c['config.json'] = mutateJsonFile(rng, c['config.json']!, r < 10 ? 'compression_config' : 'quantization_config');
    return c;
  },
  run(dir) {
    const cfg = path.join(dir, 'config.json');
    try {
      fromPretrained(dir);
    } catch (e) {
      const bad = badError(e, [dir, cfg], true);
      if (bad) return `fromPretrained: ${bad}`;
    }
    return null;
  },
};

// ---------------------------------------------------------------------------------------------------- recipes

export const RECIPE_SEEDS: unknown[] = [
  { model: 'm', task: 'sst2', train: { steps: 10, lr: 1e-4, schedule: 'cosine' }, steps: [{ method: 'quant.rtn', scheme: 'int8' }] },
  [{ method: 'quant.rtn', scheme: 'int4', ignore: ['classifier'] }],
  { steps: [{ method: 'quant.qat', scheme: 'int8-dynamic', weight: 0.5 }, { method: 'quant.rtn', scheme: 'int8' }], calibration_samples: 4, description: 'x' },
  { steps: [{ method: 'quant.rtn', scheme: 'int8', loss_weights: { a: 1 } }], train: { warmup: 0.2, batch_size: 2, seed: 3 } },
];

let recipeModel: Module | null = null;

export const recipeTarget: Target = {
  name: 'recipe',
  seeds() {
    const out: Case[] = [];
    for (const r of RECIPE_SEEDS) {
      out.push({ 'recipe.json': text(JSON.stringify(r, null, 2)) });
      out.push({ 'recipe.yaml': text(YAML.stringify(r)) });
    }
    out.push({ 'recipe.yaml': text('&a\nsteps: [*a]\n') }); // a cycle through an alias
    out.push({ 'recipe.yaml': text('a: &x [1, 2]\nb: [*x, *x, *x]\nsteps: [{method: quant.rtn, ignore: *x}]\n') });
    return out;
  },
  mutate(rng, seeds) {
    const [name, b] = Object.entries(rng.pick(seeds))[0]!;
    if (name.endsWith('.json')) return { [name]: mutateJsonFile(rng, b) };
    if (rng.chance(0.4)) return { [name]: mutateBytes(rng, b) };
    let doc: unknown;
    try {
      doc = YAML.parse(dec.decode(b));
    } catch {
      return { [name]: mutateBytes(rng, b) };
    }
    let out: string;
    try {
      out = YAML.stringify(mutateJson(rng, doc));
    } catch {
      return { [name]: b };
    }
    return { [name]: text(out) };
  },
  run(dir, c) {
    const file = path.join(dir, Object.keys(c)[0]!);
    recipeModel ??= tinyBert();
    let recipe;
    try {
      recipe = readRecipe(file);
    } catch (e) {
      const bad = badError(e, [file]);
      return bad ? `readRecipe: ${bad}` : null;
    }
    if (!Array.isArray(recipe.steps) || recipe.steps.length === 0) return 'readRecipe returned a recipe without steps';
    try {
      const steps = resolveSteps(recipe, recipeModel, `recipe ${file}`);
      for (const s of steps) {
        if (Object.getPrototypeOf(s.cfg) !== Object.prototype) return `step ${s.index + 1}: cfg has a foreign prototype`;
        if (typeof s.weight !== 'number') return `step ${s.index + 1}: weight is not a number`;
      }
    } catch (e) {
      const bad = badError(e, [file]);
      return bad ? `resolveSteps: ${bad}` : null;
    }
    return null;
  },
};

export const TARGETS: Record<string, Target> = { safetensors: safetensorsTarget, hf: hfTarget, checkpoint: checkpointTarget, recipe: recipeTarget };

/** A corpus file (JSON: file name → base64) back to a case. */
export function decodeCase(json: string): Case {
  const o = JSON.parse(json) as Record<string, string>;
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
}
export function encodeCase(c: Case): string {
  return JSON.stringify(Object.fromEntries(Object.entries(c).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), null, 1);
}
