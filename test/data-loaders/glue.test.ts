// GLUE loaders on the bundled real files (row counts and label balance as published), their quirks (BOM, header,
// CoLA without header, MRPC id columns, RTE string labels), and one clear error per bad row on synthetic files.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadGlue, type GlueTask } from '../../src/data/glue.ts';
import { expectThrows } from '../harness/expect.ts';

const count = (xs: number[], v: number) => xs.filter((x) => x === v).length;

describe('real GLUE files', () => {
  const table: [GlueTask, 'train' | 'dev', number, number, number][] = [
    // task, split, rows, label-0 count, label-1 count (from the staging README / GLUE)
    ['sst2', 'train', 67349, 29780, 37569],
    ['sst2', 'dev', 872, 428, 444],
    ['mrpc', 'train', 3668, 1194, 2474],
    ['mrpc', 'dev', 408, 129, 279],
    ['rte', 'train', 2490, 1249, 1241],
    ['rte', 'dev', 277, 146, 131],
    ['cola', 'train', 8551, 2528, 6023],
    ['cola', 'dev', 1043, 322, 721],
  ];
  for (const [task, split, rows, n0, n1] of table)
    test(`${task} ${split}: ${rows} rows, ${n0} / ${n1}`, () => {
      const d = loadGlue(task, split);
      assert.equal(d.texts.length, rows);
      assert.equal(d.labels.length, rows);
      assert.equal(count(d.labels, 0), n0);
      assert.equal(count(d.labels, 1), n1);
      assert.equal(d.numLabels, 2);
      const pair = task === 'mrpc' || task === 'rte';
      for (const t of d.texts) assert.equal(t.length, pair ? 2 : 1);
    });

  test('metrics, label names and exact texts', () => {
    const sst = loadGlue('sst2', 'dev');
    assert.equal(sst.metric, 'accuracy');
    assert.deepEqual(sst.labelNames, ['negative', 'positive']);
    assert.deepEqual(sst.texts[0], ["it 's a charming and often affecting journey . "]); // GLUE's trailing space kept, as HF
    assert.equal(sst.labels[0], 1);
    const mrpc = loadGlue('mrpc', 'dev');
    assert.equal(mrpc.metric, 'f1');
    assert.equal(mrpc.labels[0], 1); // the BOM does not spoil the first row's label column
    assert.equal(mrpc.texts[0]![0], "He said the foodservice pie business doesn't fit the company's long-term growth strategy.");
    assert.ok(mrpc.texts[0]![1]!.startsWith('"The foodservice pie')); // quotes are text, not CSV quoting
    const rte = loadGlue('rte', 'train');
    assert.deepEqual(rte.labelNames, ['entailment', 'not_entailment']);
    assert.deepEqual(rte.texts[0], ['No Weapons of Mass Destruction Found in Iraq Yet.', 'Weapons of Mass Destruction Found in Iraq.']);
    assert.equal(rte.labels[0], 1); // not_entailment
    const cola = loadGlue('cola', 'dev');
    assert.equal(cola.metric, 'matthews');
    assert.deepEqual(cola.texts[0], ['The sailors rode the breeze clear of the rocks.']); // no header row to skip
    assert.deepEqual(cola.texts.at(-1), ['John talked to Bill about himself.']); // last line has no newline
  });

  test('limit keeps the first rows', () => {
    const all = loadGlue('rte', 'dev');
    const few = loadGlue('rte', 'dev', { limit: 5 });
    assert.deepEqual(few.texts, all.texts.slice(0, 5));
    assert.deepEqual(few.labels, all.labels.slice(0, 5));
    assert.equal(loadGlue('sst2', 'train', { limit: 0 }).texts.length, 0);
    expectThrows(() => loadGlue('sst2', 'dev', { limit: 1.5 }), 'limit must be a non-negative integer');
  });
});

describe('synthetic files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-glue-'));
  const write = (sub: string, split: string, body: string) => {
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
    const f = path.join(dir, sub, `${split}.tsv`);
    fs.writeFileSync(f, body);
    return f;
  };
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('BOM, CRLF, blank trailing lines and quotes are handled', () => {
    write('MRPC', 'train', '\uFEFFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n0\t1\t2\tHe said "hi\tShe said "bye"\r\n1\t3\t4\ta\tb\r\n\r\n');
    const d = loadGlue('mrpc', 'train', { dir });
    assert.deepEqual(d.texts, [['He said "hi', 'She said "bye"'], ['a', 'b']]);
    assert.deepEqual(d.labels, [0, 1]);
    write('RTE', 'train', 'index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n1\tC\tD\tnot_entailment');
    assert.deepEqual(loadGlue('rte', 'train', { dir }).labels, [0, 1]);
    write('CoLA', 'train', 'src\t0\t*\tBad sentence.\nsrc\t1\t\tGood sentence.\n');
    assert.deepEqual(loadGlue('cola', 'train', { dir }), {
      task: 'cola', split: 'train', file: path.join(dir, 'CoLA', 'train.tsv'),
      texts: [['Bad sentence.'], ['Good sentence.']], labels: [0, 1], numLabels: 2, labelNames: ['unacceptable', 'acceptable'], metric: 'matthews',
    });
  });

  test('a wrong column count names file, line and the expected columns', () => {
    const f = write('SST-2', 'dev', 'sentence\tlabel\ngood film \t1\nbad row without label\n');
    expectThrows(() => loadGlue('sst2', 'dev', { dir }), `${f}:3: expected 2 tab-separated columns (sentence | label), found 1`);
    const m = write('MRPC', 'dev', '\uFEFFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tonly one string\n');
    expectThrows(() => loadGlue('mrpc', 'dev', { dir }), `${m}:2: expected 5 tab-separated columns (Quality | #1 ID | #2 ID | #1 String | #2 String), found 4`);
    const c = write('CoLA', 'dev', 'src\t1\t\tfine.\nsrc\t1\tno sentence\n');
    expectThrows(() => loadGlue('cola', 'dev', { dir }), `${c}:2: expected 4 tab-separated columns (source | label | original judgement | sentence), found 3`);
  });

  test('a bad label names file, line, column and the accepted values', () => {
    const f = write('SST-2', 'dev', 'sentence\tlabel\ngood film \tyes\n');
    expectThrows(() => loadGlue('sst2', 'dev', { dir }), `${f}:2: invalid label "yes" in column 2 (expected "0" or "1")`);
    const r = write('RTE', 'dev', 'index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n1\tC\tD\tentailed\n');
    expectThrows(() => loadGlue('rte', 'dev', { dir }), `${r}:3: invalid label "entailed" in column 4 (expected "entailment" or "not_entailment")`);
    // a CoLA test-style file (with a header) is not a CoLA train/dev file
    const c = write('CoLA', 'dev', 'src\tlabel\tjudgement\tsentence\nsrc\t1\t\tfine.\n');
    expectThrows(() => loadGlue('cola', 'dev', { dir }), `${c}:1: invalid label "label" in column 2`);
  });

  test('a missing or wrong header is an error on line 1', () => {
    const f = write('SST-2', 'train', 'good film \t1\n');
    expectThrows(() => loadGlue('sst2', 'train', { dir }), `${f}:1: expected the sst2 header "sentence\\tlabel", found "good film \\t1"`);
    write('RTE', 'dev', '');
    expectThrows(() => loadGlue('rte', 'dev', { dir }), 'RTE/dev.tsv:1: expected the rte header');
  });

  test('unknown task, split or file', () => {
    expectThrows(() => loadGlue('qnli' as GlueTask, 'dev', { dir }), "unknown task 'qnli'");
    expectThrows(() => loadGlue('sst2', 'test' as 'dev', { dir }), "unknown split 'test'");
    fs.rmSync(path.join(dir, 'MRPC'), { recursive: true });
    expectThrows(() => loadGlue('mrpc', 'dev', { dir }), path.join(dir, 'MRPC', 'dev.tsv'), 'cannot read (ENOENT)');
  });
});
