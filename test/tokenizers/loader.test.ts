// loadTokenizer picks the tokenizer a folder holds (tokenizer.json > vocab.txt > llama2.c .bin/JSON > encoder.json +
// merges), reads do_lower_case from tokenizer_config.json, and names what it looked for when nothing matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HFJsonTokenizer, loadTokenizer, SentencePieceBPETokenizer, WordPieceTokenizer } from '../../src/tokenizers/index.ts';

const root = path.resolve(import.meta.dirname, '../..');
const BERT = path.join(root, 'data/tokenizers/bert-base-uncased');

function withDir(files: Record<string, string | Buffer>, fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-tok-'));
  try {
    for (const [f, c] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), c);
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('bundled folders: bert-base-uncased (tokenizer.json) and stories260K (tok512.bin)', () => {
  const bert = loadTokenizer(BERT);
  assert.ok(bert instanceof HFJsonTokenizer);
  assert.deepEqual(bert.encode('Hello, world! Unbelievable.'), [101, 7592, 1010, 2088, 999, 23653, 1012, 102]);
  assert.deepEqual(bert.specialIds, { pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
  const sp = loadTokenizer(path.join(root, 'data/models/stories260K'));
  assert.ok(sp instanceof SentencePieceBPETokenizer);
  assert.deepEqual(sp.encode('Once upon a time'), [1, 403, 407, 261, 378]);
});

test('vocab.txt alone is WordPiece; do_lower_case comes from tokenizer_config.json', () => {
  const vocab = fs.readFileSync(path.join(BERT, 'vocab.txt'));
  withDir({ 'vocab.txt': vocab }, (dir) => {
    const t = loadTokenizer(dir);
    assert.ok(t instanceof WordPieceTokenizer);
    assert.deepEqual(t.encode('Hello'), [101, 7592, 102]);
  });
  withDir({ 'vocab.txt': vocab, 'tokenizer_config.json': JSON.stringify({ do_lower_case: false }) }, (dir) => {
    assert.deepEqual(loadTokenizer(dir).encode('Hello', { addSpecialTokens: false }), [100]); // no cased "Hello" piece
  });
});

test('tokenizer_vocab.json is read when there is no .bin', () => {
  const sp = SentencePieceBPETokenizer.fromLlama2cBin(path.join(root, 'data/models/stories260K/tok512.bin'));
  const tokens = sp.pieces.map((piece, id) => ({ id, piece, score: sp.scores[id] }));
  withDir({ 'tokenizer_vocab.json': JSON.stringify({ tokens }) }, (dir) => {
    assert.deepEqual(loadTokenizer(dir).encode('Once upon a time'), [1, 403, 407, 261, 378]);
  });
});

test('nothing found: the error lists what was looked for', () => {
  withDir({ 'config.json': '{}' }, (dir) => {
    assert.throws(() => loadTokenizer(dir), (e: Error) => {
      assert.match(e.message, /no tokenizer found/);
      for (const f of ['tokenizer.json', 'vocab.txt', 'tok512.bin', 'tokenizer_vocab.json', 'encoder.json', 'merges.txt', 'vocab.bpe']) assert.ok(e.message.includes(f), f);
      return true;
    });
  });
  withDir({ 'encoder.json': '{}' }, (dir) => assert.throws(() => loadTokenizer(dir), /no tokenizer found/)); // merges missing
  assert.throws(() => loadTokenizer('/nonexistent/model'), /\/nonexistent\/model: not a folder/);
  withDir({ 'tokenizer_config.json': '{bad', 'vocab.txt': '[PAD]\n' }, (dir) => assert.throws(() => loadTokenizer(dir), /tokenizer_config\.json: invalid JSON/));
});
