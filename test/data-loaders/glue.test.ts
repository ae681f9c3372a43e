// GLUE loaders on the bundled real files, and one clear error per bad row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadGlue } from '../../src/data/glue.ts';
import { expectThrows } from '../harness/expect.ts';

test('row counts and label balance match GLUE', () => {
  const sst = loadGlue('sst2', 'dev');
  assert.equal(sst.texts.length, 872);
  assert.equal(sst.labels.filter((l) => l === 1).length, 444);
  assert.equal(sst.metric, 'accuracy');
  assert.equal(loadGlue('sst2', 'train').texts.length, 67349);
  const mrpc = loadGlue('mrpc', 'dev');
  assert.equal(mrpc.texts.length, 408);
  assert.equal(mrpc.labels.filter((l) => l === 1).length, 279);
  assert.equal(mrpc.texts[0]![1]!.startsWith('"The foodservice'), true); // quotes are text, not CSV quoting
  const rte = loadGlue('rte', 'dev');
  assert.equal(rte.texts.length, 277);
  assert.equal(rte.labels.filter((l) => l === 0).length, 146); // entailment = 0
  const cola = loadGlue('cola', 'dev');
  assert.equal(cola.texts.length, 1043);
  assert.equal(cola.metric, 'matthews');
});

test('bad rows name the file and line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glue-'));
  fs.mkdirSync(path.join(dir, 'SST-2'));
  fs.writeFileSync(path.join(dir, 'SST-2', 'dev.tsv'), 'sentence\tlabel\ngood film \t1\nbad row without label\n');
  expectThrows(() => loadGlue('sst2', 'dev', { dir }), `${path.join(dir, 'SST-2', 'dev.tsv')}:3: expected 2 tab-separated columns, found 1`);
  fs.writeFileSync(path.join(dir, 'SST-2', 'dev.tsv'), 'sentence\tlabel\ngood film \tyes\n');
  expectThrows(() => loadGlue('sst2', 'dev', { dir }), ":2: invalid label 'yes'");
  expectThrows(() => loadGlue('sst2', 'train', { dir }), 'cannot read (ENOENT)');
  fs.rmSync(dir, { recursive: true });
});
