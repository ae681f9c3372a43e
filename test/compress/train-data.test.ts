// Recipe `train.data` (and `shrink compress --train-data`): a training stage draws its batches from another train
// file in the task's train.tsv format (what `shrink augment` writes) instead of the task's train split. Checked: the
// sampler sees only the file's rows and the task's own split is never drawn; a stage trained on a file whose labels
// are all 1 predicts 1 everywhere (dev accuracy = the dev set's share of 1s); the key is inherited by a step's own
// `train` like every other train key (and `null` goes back to the task's split); the errors, word for word, naming
// the file and the key, before any work; relative paths against the recipe file's folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compress, noGrad, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';
import type { ModelInputs, ModelOutput } from '../../src/models/outputs.ts';
import { loadGlue } from '../../src/data/glue.ts';
import { encodeExample } from '../../src/eval/glue.ts';
import { WordPieceTokenizer } from '../../src/tokenizers/wordpiece.ts';
import { compressFolder, resolveDataPath } from '../../src/cli/compress.ts';
import { cyclicTask, randomClsBatches } from '../harness/tasks.ts';
import { tinyBert } from '../harness/tiny-models.ts';
import { cli, run } from '../cli/helpers.ts';

const { glueTaskData, runRecipe, parseRecipe } = compress;
type Fwd = Module & { forward(i: ModelInputs): ModelOutput };

const WORDS = ['the', 'a', 'movie', 'film', 'is', 'it', 'good', 'bad', 'great', 'dull', 'and', 'of', 'to', 'not', 'very', 'fun', 'story', 'this', 'that', 'with', '.', ','];
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'train-data-'));

/** A tiny BERT classifier folder (vocab 50, 16 positions, 3 labels) with a vocab.txt its ids fit. */
function tinyFolder(): string {
  const dir = tmp();
  savePretrained(tinyBert(), dir);
  const vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...WORDS];
  fs.writeFileSync(path.join(dir, 'vocab.txt'), vocab.join('\n') + '\n');
  return dir;
}

/** An SST-2 train TSV: header, then `rows` sentences, every label `label`. */
function sst2Tsv(file: string, rows: string[], label = '1'): string {
  fs.writeFileSync(file, ['sentence\tlabel', ...rows.map((r) => `${r} \t${label}`)].join('\n') + '\n');
  return file;
}
const ROWS = ['the movie is good .', 'a great film', 'very fun story', 'this is not dull', 'good and great', 'it is fun'];

test('withTrainData: batches come from the file only, labels included; dev, calibration and latency inputs stay the task\'s', () => {
  const dir = tinyFolder();
  const file = sst2Tsv(path.join(dir, 'aug.tsv'), ROWS);
  const task = glueTaskData(dir, 'sst2', { batchSize: 4, maxLength: 16 });
  const before = JSON.stringify(task.sampler.state());
  const t = task.withTrainData!(file);
  assert.equal(t.trainFile, file);
  assert.equal(t.trainRows, ROWS.length);
  assert.equal(task.withTrainData!(file), t, 'the same file gives the same task (one sampler per file)');
  const tok = WordPieceTokenizer.fromVocabFile(path.join(dir, 'vocab.txt'));
  const want = new Set(ROWS.map((r) => JSON.stringify(encodeExample(tok, [`${r} `], 16).ids)));
  let rows = 0;
  for (let b = 0; b < 6; b++) {
    const batch = t.nextBatch();
    assert.deepEqual(Array.from(batch.labels!.data as Int32Array), new Array(batch.labels!.shape[0]).fill(1));
    const [B, T] = batch.inputIds.shape as [number, number];
    const ids = Array.from(batch.inputIds.data as Int32Array);
    const mask = Array.from(batch.attentionMask!.data as Int32Array);
    for (let i = 0; i < B; i++) {
      const row = ids.slice(i * T, (i + 1) * T).filter((_, j) => mask[i * T + j] === 1);
      assert.ok(want.has(JSON.stringify(row)), `batch ${b} row ${i} is one of the file's rows`);
      rows++;
    }
  }
  assert.equal(rows, 18, 'three epochs of the 6 rows, in batches of 4 and 2');
  assert.equal(JSON.stringify(task.sampler.state()), before, 'the task\'s own train split was never drawn');
  assert.equal(t.evaluate, task.evaluate);
  assert.equal(t.calibration, task.calibration);
  assert.equal(t.latencyInputs, task.latencyInputs);
  assert.deepEqual(t.evalArgs, ['-t', 'sst2']);
});

test('a stage trains on train.data (all labels 1 → predicts 1); a step\'s own train inherits it, and "data": null goes back to the task split', () => {
  const dir = tinyFolder();
  const file = sst2Tsv(path.join(dir, 'aug.tsv'), ROWS);
  const task = glueTaskData(dir, 'sst2', { batchSize: 4, maxLength: 16 });
  const fileTask = task.withTrainData!(file);
  const model = tinyBert();
  const lines: string[] = [];
  const r = runRecipe(
    model,
    {
      train: { steps: 40, lr: 1e-2, warmup: 0, schedule: 'constant', data: file },
      steps: [{ method: 'finetune' }, { method: 'finetune', train: { steps: 3 } }, { method: 'finetune', train: { steps: 2, data: null } }],
    },
    { task, log: (l) => lines.push(l) },
  );
  assert.equal(r.interrupted, false);
  // stages 1 and 2 drew 40 + 3 batches from the file's 6 rows (4 + 2 per epoch: 21 epochs and a batch), stage 3
  // two batches of 4 from the task's split
  assert.deepEqual(fileTask.sampler.state(), { epoch: 21, position: 4, seed: 0, size: 6 });
  assert.deepEqual(task.sampler.state(), { epoch: 0, position: 8, seed: 0, size: 67349 });
  assert.equal(lines.filter((l) => l.includes(`training batches from ${file} (6 rows)`)).length, 2, lines.join('\n'));
  assert.deepEqual((r.recipe.train as Record<string, unknown>).data, file);
  // the resolved recipe keeps each step's own train block as given
  assert.deepEqual((r.recipe.steps as { train?: unknown }[]).map((s) => s.train), [undefined, { steps: 3 }, { steps: 2, data: null }]);

  // a model trained on the all-1 file alone predicts 1 on every dev input
  const m2 = tinyBert();
  runRecipe(m2, { train: { steps: 40, lr: 1e-2, warmup: 0, schedule: 'constant', data: file }, steps: [{ method: 'finetune' }] }, { task: glueTaskData(dir, 'sst2', { batchSize: 4, maxLength: 16 }) });
  m2.eval();
  const logits = noGrad(() => (m2 as unknown as Fwd).forward(task.latencyInputs(32)).logits);
  assert.deepEqual(Array.from(logits.argmax(-1).data as Int32Array), new Array(32).fill(1));
});

test('train.data errors, word for word: recipe fields, a task that cannot train on a file', () => {
  assert.throws(() => parseRecipe({ train: { data: 5 }, steps: [{ method: 'finetune' }] }), { message: 'recipe: train.data: expected string, got 5' });
  assert.throws(() => parseRecipe({ train: { data: '' }, steps: [{ method: 'finetune' }] }), { message: 'recipe: train.data: expected the path of a train file, got ""' });
  assert.throws(() => parseRecipe({ steps: [{ method: 'finetune', train: { data: ['a'] } }] }), { message: 'recipe: step 1 (finetune): train.data: expected string, got ["a"]' });
  assert.doesNotThrow(() => parseRecipe({ train: { data: null }, steps: [{ method: 'finetune' }] }));
  const task = cyclicTask(randomClsBatches(1, 2, 4, 6, 50, 3));
  assert.throws(() => runRecipe(tinyBert(), { train: { steps: 1, data: 'x.tsv' }, steps: [{ method: 'finetune' }] }, { task }), {
    message: 'recipe: train.data: task synthetic cannot train on a file (train.data takes a GLUE task: sst2, mrpc, rte, cola)',
  });
});

test('compressFolder: train.data errors name the recipe, the key and the file, before any work', () => {
  const dir = tinyFolder();
  const work = tmp();
  const out = path.join(work, 'out');
  const recipeFile = (train: Record<string, unknown>, steps: unknown[] = [{ method: 'finetune' }]) => {
    const f = path.join(work, 'recipe.json');
    fs.writeFileSync(f, JSON.stringify({ task: 'sst2', train: { steps: 2, max_length: 16, ...train }, steps }));
    return f;
  };
  const fails = (recipe: string, message: string, extra: { trainData?: string } = {}) => {
    assert.throws(() => compressFolder(dir, { recipe, out, ...extra }), (e: Error) => {
      assert.equal(e.message, message);
      return true;
    });
    assert.equal(fs.existsSync(out), false, 'no output folder');
  };
  let r = recipeFile({ data: 'missing.tsv' });
  fails(r, `recipe ${r}: train.data: ${path.join(work, 'missing.tsv')}: cannot read (ENOENT)`);

  const header = fs.writeFileSync(path.join(work, 'header.tsv'), 'text\tlabel\ngood\t1\n');
  void header;
  r = recipeFile({ data: 'header.tsv' });
  fails(r, `recipe ${r}: train.data: ${path.join(work, 'header.tsv')}:1: expected the sst2 header "sentence\\tlabel", found "text\\tlabel"`);

  fs.writeFileSync(path.join(work, 'cols.tsv'), 'sentence\tlabel\ngood \t1\nbad\t0\textra\n');
  r = recipeFile({ data: 'cols.tsv' });
  fails(r, `recipe ${r}: train.data: ${path.join(work, 'cols.tsv')}:3: expected 2 tab-separated columns (sentence | label), found 3`);

  fs.writeFileSync(path.join(work, 'label.tsv'), 'sentence\tlabel\ngood \t1\nbad \tpositive\n');
  r = recipeFile({ data: 'label.tsv' });
  fails(r, `recipe ${r}: train.data: ${path.join(work, 'label.tsv')}:3: invalid label "positive" in column 2 (expected "0" or "1")`);

  fs.writeFileSync(path.join(work, 'empty.tsv'), 'sentence\tlabel\n');
  r = recipeFile({ data: 'empty.tsv' });
  fails(r, `recipe ${r}: train.data: ${path.join(work, 'empty.tsv')}: no examples (expected rows in the sst2 train.tsv format)`);

  // a step's own train.data names the step
  r = recipeFile({}, [{ method: 'finetune' }, { method: 'finetune', train: { steps: 1, data: 'label.tsv' } }]);
  fails(r, `recipe ${r}: step 2 (finetune): train.data: ${path.join(work, 'label.tsv')}:3: invalid label "positive" in column 2 (expected "0" or "1")`);

  // --train-data: relative to the working directory, named as the flag
  r = recipeFile({});
  fails(r, `recipe ${r}: train.data (--train-data): ${path.resolve('no-such-train.tsv')}: cannot read (ENOENT)`, { trainData: 'no-such-train.tsv' });
});

test('shrink compress --train-data: the flag is in --help and its error is one line naming the key and the file', async () => {
  const dir = tinyFolder();
  const work = tmp();
  const recipe = path.join(work, 'r.json');
  fs.writeFileSync(recipe, JSON.stringify({ task: 'sst2', train: { steps: 1, max_length: 16 }, steps: [{ method: 'finetune' }] }));
  const missing = path.join(work, 'nope.tsv');
  const r = await cli('compress', dir, '--recipe', recipe, '-o', path.join(work, 'out'), '--train-data', missing);
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes(`recipe ${recipe}: train.data (--train-data): ${missing}: cannot read (ENOENT)`), r.stderr);
  assert.equal(fs.existsSync(path.join(work, 'out')), false);
  const help = run('compress', '--help');
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /--train-data <tsv>\s+train on this TSV/);
});

test('relative train.data paths: the recipe file\'s folder first, then as model (working directory, then the package)', () => {
  const work = tmp();
  const sub = path.join(work, 'recipes');
  fs.mkdirSync(sub);
  const recipe = path.join(sub, 'r.json');
  fs.writeFileSync(path.join(sub, 'aug.tsv'), 'sentence\tlabel\n');
  assert.equal(resolveDataPath('aug.tsv', recipe), path.join(sub, 'aug.tsv'));
  assert.equal(resolveDataPath('/abs/x.tsv', recipe), '/abs/x.tsv');
  // not beside the recipe, but from the working directory / the package (as the recipe's "model" resolves)
  assert.equal(resolveDataPath('data/glue/SST-2/dev.tsv', recipe), path.resolve(import.meta.dirname, '../../data/glue/SST-2/dev.tsv'));
  // found nowhere: named against the recipe's folder (the error says where it was looked for)
  assert.equal(resolveDataPath('nope.tsv', recipe), path.join(sub, 'nope.tsv'));
  // a recipe in memory: the working directory
  assert.equal(resolveDataPath('nope.tsv', null), path.resolve('nope.tsv'));
});

test('compressFolder trains on a train.data file beside the recipe: dev accuracy = the share of 1s (predicts 1), report records the absolute path', () => {
  const dir = tinyFolder();
  const work = tmp();
  const sub = path.join(work, 'recipes');
  fs.mkdirSync(sub);
  sst2Tsv(path.join(sub, 'ones.tsv'), ROWS);
  const recipe = path.join(sub, 'r.json');
  fs.writeFileSync(recipe, JSON.stringify({ task: 'sst2', train: { steps: 40, lr: 1e-2, warmup: 0, schedule: 'constant', batch_size: 4, max_length: 16, data: 'ones.tsv' }, steps: [{ method: 'finetune' }] }));
  const out = path.join(work, 'out');
  const lines: string[] = [];
  const report = compressFolder(dir, { recipe, out, log: (l) => lines.push(l) });
  assert.ok(lines.some((l) => l.includes(`training batches from ${path.join(sub, 'ones.tsv')} (6 rows)`)), lines.join('\n'));
  assert.equal((report.recipe.train as Record<string, unknown>).data, path.join(sub, 'ones.tsv'));
  const dev = loadGlue('sst2', 'dev');
  const share = dev.labels.filter((l) => l === 1).length / dev.labels.length;
  assert.ok(Math.abs(report.after.metric! - share) < 1e-9, `accuracy ${report.after.metric} = share of label 1 (${share})`);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')).recipe.train.data, path.join(sub, 'ones.tsv'));
});
