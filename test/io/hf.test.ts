// Hugging Face folders: config.json, single and sharded safetensors weights, the pickled-weights conversion hint,
// writePretrained, and the real fixture folders.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findWeights, loadWeights, readConfig, weightIndex, writePretrained } from '../../src/io/hf.ts';
import { SafetensorsFile, saveSafetensors } from '../../src/io/safetensors.ts';
import { Tensor, tensor } from '../../src/index.ts';
import { expectThrows } from '../harness/expect.ts';
import { modelFixtureDir } from '../harness/fixtures.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-hf-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fresh folder with the given files (string → text, Uint8Array → bytes, Record → JSON). */
function folder(files: Record<string, string | Uint8Array | object> = {}): string {
  const d = path.join(tmp, `m${n++}`);
  fs.mkdirSync(d);
  for (const [f, c] of Object.entries(files))
    fs.writeFileSync(path.join(d, f), typeof c === 'string' || c instanceof Uint8Array ? c : JSON.stringify(c));
  return d;
}

describe('readConfig', () => {
  test('parses config.json', () => {
    const d = folder({ 'config.json': { model_type: 'bert', hidden_size: 64 } });
    assert.deepEqual(readConfig(d), { model_type: 'bert', hidden_size: 64 });
  });
  test('errors name the folder or file', () => {
    const missing = path.join(tmp, 'nope');
    expectThrows(() => readConfig(missing), `model folder ${missing} does not exist`);
    const file = path.join(folder({ 'x.txt': 'x' }), 'x.txt');
    expectThrows(() => readConfig(file), `model folder ${file} is not a directory`);
    const empty = folder();
    expectThrows(() => readConfig(empty), `${path.join(empty, 'config.json')}: missing (a Hugging Face model folder needs config.json)`);
    const bad = folder({ 'config.json': '{"model_type": ' });
    expectThrows(() => readConfig(bad), `${path.join(bad, 'config.json')}: invalid JSON (`);
    const arr = folder({ 'config.json': '[1]' });
    expectThrows(() => readConfig(arr), `${path.join(arr, 'config.json')}: expected a JSON object, got an array`);
  });
});

describe('findWeights / loadWeights', () => {
  test('single model.safetensors', () => {
    const d = folder();
    saveSafetensors(path.join(d, 'model.safetensors'), { w: tensor([1, 2]) }, { format: 'pt' });
    assert.deepEqual(findWeights(d), [path.join(d, 'model.safetensors')]);
    assert.deepEqual(loadWeights(d).get('w')!.tolist(), [1, 2]);
    assert.equal(loadWeights(d, { dtype: 'float16' }).get('w')!.dtype, 'float16');
  });

  function sharded(extraMap: Record<string, string> = {}): string {
    const d = folder();
    saveSafetensors(path.join(d, 'model-00001-of-00002.safetensors'), { a: tensor([1]), b: tensor([2]) });
    saveSafetensors(path.join(d, 'model-00002-of-00002.safetensors'), { c: tensor([3], { dtype: 'int32' }) });
    const weight_map = { c: 'model-00002-of-00002.safetensors', a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', ...extraMap };
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 12 }, weight_map }));
    return d;
  }

  test('sharded: index → sorted shard list, weight_map, tensors across shards', () => {
    const d = sharded();
    const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((f) => path.join(d, f));
    assert.deepEqual(findWeights(d), shards);
    const idx = weightIndex(d);
    assert.equal(idx.indexPath, path.join(d, 'model.safetensors.index.json'));
    assert.deepEqual(Object.fromEntries(idx.weightMap!), { c: shards[1], a: shards[0], b: shards[0] });
    const w = loadWeights(d);
    assert.deepEqual([...w.keys()].sort(), ['a', 'b', 'c']);
    assert.equal(w.get('c')!.dtype, 'int32');
    assert.deepEqual(w.get('c')!.tolist(), [3]);
  });

  test('sharded: bad index, missing shard, unsafe shard names, map/shard mismatches', () => {
    const idx = (d: string) => path.join(d, 'model.safetensors.index.json');
    const badJson = folder({ 'model.safetensors.index.json': '{"weight_map": {' });
    expectThrows(() => findWeights(badJson), `${idx(badJson)}: invalid JSON (`);
    const noMap = folder({ 'model.safetensors.index.json': { metadata: {} } });
    expectThrows(() => findWeights(noMap), `${idx(noMap)}: missing "weight_map" object`);
    const nullIdx = folder({ 'model.safetensors.index.json': 'null' });
    expectThrows(() => findWeights(nullIdx), `${idx(nullIdx)}: missing "weight_map" object`);
    const emptyMap = folder({ 'model.safetensors.index.json': { weight_map: {} } });
    expectThrows(() => findWeights(emptyMap), `${idx(emptyMap)}: "weight_map" is empty`);
    const missing = folder({ 'model.safetensors.index.json': { weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors' } } });
    expectThrows(() => findWeights(missing), `${idx(missing)}: shard model-00001-of-00002.safetensors (2 tensors, e.g. 'a') is missing from ${missing}`);
    const escape = folder({ 'model.safetensors.index.json': { weight_map: { a: '../../etc/passwd' } } });
    expectThrows(() => findWeights(escape), `${idx(escape)}: weight_map['a'] must be a file name in the model folder, got "../../etc/passwd"`);
    const notStr = folder({ 'model.safetensors.index.json': { weight_map: { a: 3 } } });
    expectThrows(() => findWeights(notStr), `weight_map['a'] must be a file name in the model folder, got 3`);
    const wrongShard = sharded({ c: 'model-00001-of-00002.safetensors' });
    expectThrows(() => loadWeights(wrongShard), `${idx(wrongShard)}: weight_map puts 'c' in model-00001-of-00002.safetensors but that file has no such tensor`);
    const dup = sharded();
    saveSafetensors(path.join(dup, 'model-00002-of-00002.safetensors'), { a: tensor([9]), c: tensor([3]) });
    expectThrows(() => loadWeights(dup), `${dup}: tensor 'a' appears in both model-00001-of-00002.safetensors and model-00002-of-00002.safetensors`);
  });

  test('pickled weights only: error says safetensors is required and gives a conversion command', () => {
    const d = folder({ 'pytorch_model.bin': 'x', 'config.json': { architectures: ['BertForMaskedLM'], model_type: 'bert' } });
    expectThrows(
      () => findWeights(d),
      `${d}: found pytorch_model.bin but no model.safetensors`,
      'Shrink reads safetensors only',
      `python -c "from transformers import BertForMaskedLM; BertForMaskedLM.from_pretrained('${d}').save_pretrained('${d}', safe_serialization=True)"`,
    );
    expectThrows(() => loadWeights(d), 'found pytorch_model.bin');
    const sharded = folder({ 'pytorch_model.bin.index.json': { weight_map: {} }, 'pytorch_model-00001-of-00002.bin': 'x' });
    expectThrows(() => findWeights(sharded), `${sharded}: found pytorch_model.bin.index.json but no model.safetensors`, 'from transformers import AutoModel; AutoModel.from_pretrained(');
    const quote = path.join(tmp, "it's");
    fs.mkdirSync(quote);
    fs.writeFileSync(path.join(quote, 'pytorch_model.bin'), 'x');
    expectThrows(() => findWeights(quote), `from_pretrained('${quote.replace("'", "\\'")}')`);
  });

  test('no weights at all, or shards without an index: says what was looked for where, no conversion command', () => {
    const looked = 'looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json';
    const empty = folder({ 'config.json': {} });
    expectThrows(() => findWeights(empty), `${empty}: no model.safetensors (or model.safetensors.index.json) found: ${looked} in ${empty}, which holds config.json`);
    const bare = folder();
    expectThrows(() => findWeights(bare), `${bare}: no model.safetensors (or model.safetensors.index.json) found: ${looked} in ${bare}, which is empty`);
    // A tokenizer's .bin (stories260K's tok512.bin) or stray .pt/.pth files are not a checkpoint transformers could convert.
    for (const files of [{ 'config.json': {}, 'tok512.bin': 'x' }, { 'weights.pt': 'x', 'more.pth': 'x' }] as Record<string, string | object>[]) {
      const d = folder(files);
      const names = Object.keys(files).sort().join(', ');
      let msg = '';
      assert.throws(() => findWeights(d), (e: Error) => ((msg = e.message), true));
      assert.equal(msg, `${d}: no model.safetensors (or model.safetensors.index.json) found: ${looked} in ${d}, which holds ${names}`);
      assert.ok(!/found .* but no|python|Convert/.test(msg), msg);
    }
    const many = folder(Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${String(i).padStart(2, '0')}.txt`, 'x'])));
    expectThrows(() => findWeights(many), `which holds f00.txt, f01.txt, f02.txt, f03.txt, f04.txt, f05.txt, f06.txt, f07.txt, f08.txt, f09.txt, … and 2 more`);
    const orphan = folder();
    saveSafetensors(path.join(orphan, 'model-00001-of-00002.safetensors'), { a: tensor([1]) });
    expectThrows(() => findWeights(orphan), `${orphan}: no model.safetensors or model.safetensors.index.json, only model-00001-of-00002.safetensors`);
    const missing = path.join(tmp, 'no-such-dir');
    expectThrows(() => loadWeights(missing), `model folder ${missing} does not exist`);
  });
});

describe('writePretrained', () => {
  test('creates the folder, pretty config.json, model.safetensors with format=pt; round-trips', () => {
    const out = path.join(tmp, 'new', 'nested', 'model');
    const w = new Map([['w', Tensor.arange(6).float().reshape(2, 3)], ['ids', tensor([1, 2], { dtype: 'int32' })]]);
    writePretrained(out, { config: { model_type: 'bert', architectures: ['BertForMaskedLM'] }, tensors: w, int64Names: new Set(['ids']) });
    assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors']);
    assert.equal(fs.readFileSync(path.join(out, 'config.json'), 'utf8'), '{\n  "model_type": "bert",\n  "architectures": [\n    "BertForMaskedLM"\n  ]\n}\n');
    assert.equal(readConfig(out).model_type, 'bert');
    const f = SafetensorsFile.open(path.join(out, 'model.safetensors'));
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.equal(f.info('ids').dtype, 'I64');
    f.close();
    const back = loadWeights(out);
    assert.deepEqual(back.get('w')!.tolist(), [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual(back.get('ids')!.tolist(), [1, 2]);
  });

  test('existing folder: files replaced, extra metadata kept with format=pt, stale shards removed, other files kept', () => {
    const d = folder({ 'vocab.txt': '[PAD]\n', 'config.json': { old: true }, 'model.safetensors.index.json': { weight_map: { a: 'model-00001-of-00001.safetensors' } } });
    saveSafetensors(path.join(d, 'model-00001-of-00001.safetensors'), { a: tensor([1]) });
    writePretrained(d, { config: { model_type: 'gpt2' }, tensors: { b: tensor([2]) }, metadata: { shrink_recipe: '[]' } });
    assert.deepEqual(fs.readdirSync(d).sort(), ['config.json', 'model.safetensors', 'vocab.txt']);
    assert.deepEqual(readConfig(d), { model_type: 'gpt2' });
    assert.deepEqual([...loadWeights(d).keys()], ['b']);
    const f = SafetensorsFile.open(path.join(d, 'model.safetensors'));
    assert.deepEqual(f.metadata, { format: 'pt', shrink_recipe: '[]' });
    f.close();
  });

  test('invalid input leaves the folder untouched', () => {
    const d = folder({ 'config.json': { keep: 1 } });
    expectThrows(() => writePretrained(d, { config: [] as never, tensors: {} }), `writePretrained ${d}: config must be an object`);
    expectThrows(() => writePretrained(d, { config: {}, tensors: { a: tensor([1]) }, metadata: { n: 1 as never } }), "metadata 'n' must be a string");
    assert.deepEqual(fs.readdirSync(d), ['config.json']);
    assert.deepEqual(readConfig(d), { keep: 1 });
  });
});

// The fixtures (test/harness/fixtures.ts: $SHRINK_FIXTURES or the repo's copy) are required: a missing folder fails.
describe('Hugging Face fixture folders', () => {
  for (const [model, type, key, shape] of [
    ['bert_mlm', 'bert', 'bert.embeddings.word_embeddings.weight', [1000, 64]],
    ['gpt2', 'gpt2', 'transformer.wte.weight', [1000, 64]],
    ['llama_gqa', 'llama', 'model.embed_tokens.weight', [512, 64]],
  ] as const)
    test(`${model}: config and weights`, () => {
      const dir = modelFixtureDir(model);
      assert.equal(readConfig(dir).model_type, type);
      assert.deepEqual(findWeights(dir), [path.join(dir, 'model.safetensors')]);
      const w = loadWeights(dir);
      assert.deepEqual(w.get(key)!.shape, shape);
      assert.equal(w.get(key)!.dtype, 'float32');
      const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { model_safetensors_keys?: unknown };
      const keys = expected.model_safetensors_keys;
      assert.ok(Array.isArray(keys) && keys.length > 0, `${dir}/expected.json: model_safetensors_keys must be a non-empty list`);
      assert.deepEqual([...w.keys()].sort(), [...(keys as string[])].sort());
    });
});
