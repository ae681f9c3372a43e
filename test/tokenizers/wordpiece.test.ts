// BERT WordPiece (bert-base-uncased vocab.txt) against @huggingface/tokenizers on the same vocabulary's
// tokenizer.json, on real GLUE sentences; pinned ids for edge cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { HFJsonTokenizer, WordPieceTokenizer } from '../../src/tokenizers/wordpiece.ts';
import { loadGlue } from '../../src/data/glue.ts';
import { expectThrows } from '../harness/expect.ts';

const dir = path.resolve(import.meta.dirname, '../../data/tokenizers/bert-base-uncased');
const ours = WordPieceTokenizer.fromVocabFile(path.join(dir, 'vocab.txt'));
const hf = HFJsonTokenizer.fromDir(dir);

test('pinned ids (bert-base-uncased)', () => {
  assert.deepEqual(ours.encode('Hello, world! Unbelievable.'), [101, 7592, 1010, 2088, 999, 23653, 1012, 102]);
  assert.deepEqual(ours.encode('Café naïve 日本 x'), [101, 7668, 15743, 1864, 1876, 1060, 102]);
  assert.deepEqual(ours.encode(''), [101, 102]);
  assert.deepEqual(ours.encode('a'.repeat(101)), [101, 100, 102]);
  assert.deepEqual(ours.encodePair('first', 'second one'), { ids: [101, 2034, 102, 2117, 2028, 102], tokenTypeIds: [0, 0, 0, 1, 1, 1] });
  assert.equal(ours.decode(ours.encode("It's unbelievable, isn't it?")), "it's unbelievable, isn't it?");
});

test('identical to @huggingface/tokenizers on real GLUE sentences', () => {
  const sst = loadGlue('sst2', 'dev').texts.slice(0, 300).map(([s]) => s);
  const mrpc = loadGlue('mrpc', 'dev', { limit: 100 }).texts;
  for (const s of sst) assert.deepEqual(ours.encode(s), hf.encode(s), s);
  for (const [a, b] of mrpc) assert.deepEqual(ours.encodePair(a, b!), hf.encodePair(a, b!), `${a} ||| ${b}`);
});

test('a vocabulary without the BERT specials is rejected', () => {
  expectThrows(() => new WordPieceTokenizer(['a', 'b']), 'WordPiece vocabulary has no [PAD] token');
});
