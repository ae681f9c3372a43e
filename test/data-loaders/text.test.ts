// Text corpora (WikiText-2 as the standard evaluations read it, Tiny Shakespeare) and causal-LM chunking
// (run_clm group_texts; the HF perplexity guide's strided sliding window).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  causalLabels, charVocab, chunkTokens, loadText, loadTinyShakespeare, loadWikiText, wikiTextFile, wikiTextLines, wordTokens,
} from '../../src/data/text.ts';
import { Generator } from '../../src/tensor/random.ts';
import { expectThrows } from '../harness/expect.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-text-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('files', () => {
  test('loadText strips a BOM and nothing else; a missing file is named', () => {
    const f = path.join(tmp, 'bom.txt');
    fs.writeFileSync(f, '\uFEFFa\r\nb\n');
    assert.equal(loadText(f), 'a\r\nb\n');
    expectThrows(() => loadText(path.join(tmp, 'nope.txt')), path.join(tmp, 'nope.txt'), 'cannot read (ENOENT)');
  });

  test('WikiText-2 rows as HF datasets yields them, joined as the perplexity guide does', () => {
    fs.mkdirSync(path.join(tmp, 'wt'));
    fs.writeFileSync(path.join(tmp, 'wt', 'valid.txt'), ' \n = T = \n \n a b <unk> , 1 @,@ 000 \n');
    const rows = wikiTextLines('valid', { dir: path.join(tmp, 'wt') });
    assert.deepEqual(rows, ['', ' = T = \n', '', ' a b <unk> , 1 @,@ 000 \n']);
    assert.equal(loadWikiText('valid', { dir: path.join(tmp, 'wt') }), '\n\n = T = \n\n\n\n\n a b <unk> , 1 @,@ 000 \n');
    assert.deepEqual(wordTokens(loadText(path.join(tmp, 'wt', 'valid.txt'))), ['<eos>', '=', 'T', '=', '<eos>', '<eos>', 'a', 'b', '<unk>', ',', '1', '@,@', '000', '<eos>']);
    expectThrows(() => wikiTextFile('train' as 'valid'), "unknown split 'train'");
  });

  test('bundled WikiText-2 valid/test: line and word-token counts of the standard corpus', () => {
    for (const [split, lines, tokens] of [['valid', 3760, 217646], ['test', 4358, 245569]] as const) {
      const rows = wikiTextLines(split);
      assert.equal(rows.length, lines);
      assert.equal(wordTokens(loadText(wikiTextFile(split))).length, tokens); // pytorch/examples word_language_model count
      const text = loadWikiText(split);
      assert.ok(text.includes('<unk>'));
      assert.equal(text, rows.join('\n\n'));
    }
    assert.ok(loadWikiText('valid').startsWith('\n\n = Homarus gammarus = \n\n\n\n\n Homarus gammarus , known as the European lobster'));
  });

  test('Tiny Shakespeare and its nanoGPT character vocabulary', () => {
    const text = loadTinyShakespeare();
    assert.equal(text.length, 1115394);
    assert.ok(text.startsWith('First Citizen:\nBefore we proceed any further, hear me speak.'));
    const v = charVocab(text);
    assert.equal(v.chars.join(''), "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    assert.deepEqual(v.encode('hii there'), [46, 47, 47, 1, 58, 46, 43, 56, 43]); // nanoGPT's example
    assert.equal(v.decode(v.encode(text.slice(0, 5000))), text.slice(0, 5000));
    expectThrows(() => v.encode('é'), 'character "é" (U+00E9) is not in the vocabulary');
    expectThrows(() => v.decode([65]), 'id 65 out of range [0, 65)');
  });
});

/** HF perplexity guide loop, transcribed: (begin, end, trg_len) per window. */
function hfWindows(n: number, maxLength: number, stride: number): { begin: number; end: number; trg: number }[] {
  const out: { begin: number; end: number; trg: number }[] = [];
  let prevEnd = 0;
  for (let begin = 0; begin < n; begin += stride) {
    const end = Math.min(begin + maxLength, n);
    const trg = end - prevEnd;
    out.push({ begin, end, trg });
    prevEnd = end;
    if (end === n) break;
  }
  return out;
}

describe('chunkTokens', () => {
  const ids = Array.from({ length: 11 }, (_, i) => 100 + i);

  test('group_texts: blockSize blocks, remainder dropped, documents concatenated', () => {
    assert.deepEqual(chunkTokens(ids, 4), [
      { ids: [100, 101, 102, 103], start: 0, context: 0 },
      { ids: [104, 105, 106, 107], start: 4, context: 0 },
    ]);
    assert.deepEqual(chunkTokens([[1, 2, 3], [4], [5, 6, 7]], 3).map((b) => b.ids), [[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(chunkTokens([1, 2], 3), []); // shorter than one block: nothing (as run_clm)
    assert.deepEqual(chunkTokens([], 3), []);
    assert.deepEqual(chunkTokens(ids, 11).length, 1);
  });

  test('sliding window: context tokens and labels as in the HF perplexity guide', () => {
    const w = chunkTokens(ids, 4, { stride: 2 });
    assert.deepEqual(w.map((b) => [b.start, b.ids.length, b.context]), [[0, 4, 0], [2, 4, 2], [4, 4, 2], [6, 4, 2], [8, 3, 2]]);
    assert.deepEqual(causalLabels(w[1]!), [-100, -100, 104, 105]);
    assert.deepEqual(causalLabels(w[4]!), [-100, -100, 110]);
    // stride = blockSize: disjoint windows, the short tail kept (perplexity scores every token)
    assert.deepEqual(chunkTokens(ids, 4, { stride: 4 }).map((b) => [b.ids, b.context]), [[[100, 101, 102, 103], 0], [[104, 105, 106, 107], 0], [[108, 109, 110], 0]]);
    assert.deepEqual(chunkTokens([7, 8], 4, { stride: 1 }), [{ ids: [7, 8], start: 0, context: 0 }]);
  });

  test('sliding window matches the transcribed HF loop and scores every token once', () => {
    const g = new Generator(3);
    for (let trial = 0; trial < 300; trial++) {
      const n = g.randint(0, 60);
      const block = g.randint(1, 12);
      const stride = g.randint(1, block + 1);
      const stream = Array.from({ length: n }, (_, i) => i);
      const got = chunkTokens(stream, block, { stride });
      const want = hfWindows(n, block, stride);
      assert.deepEqual(got.map((b) => [b.start, b.start + b.ids.length, b.ids.length - b.context]), want.map((x) => [x.begin, x.end, x.trg]), `n=${n} block=${block} stride=${stride}`);
      const targets = got.flatMap((b) => causalLabels(b).filter((l) => l !== -100));
      assert.deepEqual(targets, stream);
    }
  });

  test('bad sizes are rejected', () => {
    expectThrows(() => chunkTokens(ids, 0), 'blockSize must be a positive integer, got 0');
    expectThrows(() => chunkTokens(ids, 4, { stride: 0 }), 'stride must be an integer in [1, blockSize=4], got 0');
    expectThrows(() => chunkTokens(ids, 4, { stride: 5 }), 'got 5');
  });
});
