// stories260K's llama2.c tokenizer (data/models/stories260K/tok512.bin): llama2.c's encode() rule, pinned ids, exact
// round trips, the JSON dump reader, and the heap merge against llama2.c's plain rescan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SentencePieceBPETokenizer } from '../../src/tokenizers/sentencepiece.ts';
import { mergeHeap, mergeScan } from '../../src/tokenizers/merge.ts';

const root = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(root, 'data/models/stories260K/tok512.bin');
const tok = SentencePieceBPETokenizer.fromLlama2cBin(BIN);

/** llama2.c's encode() loop, transcribed literally (rescan for the best-scoring pair each time). */
function llama2cEncode(t: SentencePieceBPETokenizer, text: string): number[] {
  const tokens: number[] = text ? [t.tokenToId(' ')!] : [];
  for (const ch of text) {
    const id = t.tokenToId(ch);
    if (id !== undefined) tokens.push(id);
    else for (const b of Buffer.from(ch, 'utf8')) tokens.push(b + 3);
  }
  for (;;) {
    let best = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i + 1 < tokens.length; i++) {
      const id = t.tokenToId(t.idToToken(tokens[i]!)! + t.idToToken(tokens[i + 1]!)!);
      if (id !== undefined && t.scores[id]! > best) [best, bestId, bestIdx] = [t.scores[id]!, id, i];
    }
    if (bestIdx < 0) return tokens;
    tokens.splice(bestIdx, 2, bestId);
  }
}

test('vocabulary: 512 pieces, specials and byte fallback', () => {
  assert.equal(tok.vocabSize, 512);
  assert.deepEqual(tok.specialIds, { unk: 0, bos: 1, eos: 2 });
  assert.equal(tok.idToToken(3), '<0x00>');
  assert.equal(tok.idToToken(258), '<0xFF>');
  assert.equal(tok.tokenToId(' Once'), 403);
});

test('pinned ids', () => {
  assert.deepEqual(tok.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  assert.deepEqual(tok.encode('Once upon a time', { addSpecialTokens: false }), [403, 407, 261, 378]);
  assert.deepEqual(tok.encode('Once upon a time', { eos: true }), [1, 403, 407, 261, 378, 2]);
  // "é" is a piece; the emoji is not and falls back to its 4 UTF-8 bytes F0 9F 99 82 (id = byte + 3)
  assert.deepEqual(tok.encode('Café 🙂'), [1, 410, 457, 412, 431, 485, 410, 243, 162, 156, 133]);
  assert.deepEqual(tok.encode('Hello\nworld'), [1, 346, 306, 414, 13, 424, 304, 341]); // \n → <0x0A> = 13
  assert.deepEqual(tok.encode(''), [1]); // no dummy prefix for empty text
  // the reference sentence of data/README.md (stories260K)
  const ref = tok.encode('Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her friends.');
  assert.equal(ref.length, 35);
  assert.deepEqual(ref.slice(0, 10), [1, 403, 407, 261, 378, 432, 383, 286, 261, 376]);
});

test('decode(encode(x)) === x; llama2.c strips the dummy space after BOS', () => {
  for (const s of ['Once upon a time', 'café naïve 🙂', '  two  spaces  ', 'x', ' ', '', 'Tabs\tand\nnew lines\r\n', '日本語 ∑ 👨‍👩‍👧', '\ufeffBOM', 'Lily said, "Look!"']) {
    assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
    assert.equal(tok.decode(tok.encode(s, { addSpecialTokens: false })), s, JSON.stringify(s));
  }
  assert.equal(tok.decode([1, 403, 407, 2]), 'Once upon');
  assert.equal(tok.decode([1, 403, 407, 2], { skipSpecialTokens: false }), '\n<s>\nOnce upon\n</s>\n');
  assert.equal(tok.decode([403, 407, 403]), 'Once upon Once'); // a leading space is dropped only at the start and right after BOS
  assert.equal(tok.decode([1, 403, 1, 403]), 'OnceOnce'); // as llama2.c prints a stream with BOS separators
  assert.throws(() => tok.decode([512]), /out of range/);
});

test('identical to a literal transcription of llama2.c encode() on real text', () => {
  const lines = fs.readFileSync(path.join(root, 'data/wikitext-2/valid.txt'), 'utf8').split('\n').slice(0, 120);
  for (const l of lines) assert.deepEqual(tok.encode(l, { addSpecialTokens: false }), llama2cEncode(tok, l), l);
  const block = lines.join('\n').slice(0, 3000); // one long call: the heap path
  assert.deepEqual(tok.encode(block, { addSpecialTokens: false }), llama2cEncode(tok, block));
});

test('heap merge = rescan merge on random tables (ties to the leftmost pair)', () => {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let t = 0; t < 500; t++) {
    const V = 3 + Math.floor(rnd() * 6);
    const table = new Map<number, { id: number; priority: number }>();
    for (let k = 0; k < V * V; k++) if (rnd() < 0.4) table.set(k, { id: Math.floor(rnd() * V), priority: Math.floor(rnd() * 4) });
    const seq = Array.from({ length: Math.floor(rnd() * 120) }, () => Math.floor(rnd() * V));
    const look = (a: number, b: number) => table.get(a * V + b);
    assert.deepEqual(mergeHeap(seq, look), mergeScan(seq, look), JSON.stringify(seq));
  }
});

test('fromVocabJson reads the JSON dump (tokenizer_vocab.json layout) to the same tokenizer', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-sp-'));
  try {
    const tokens = tok.pieces.map((piece, id) => ({ id, piece, bytes_hex: Buffer.from(piece, 'utf8').toString('hex'), score: tok.scores[id] }));
    const file = path.join(dir, 'tokenizer_vocab.json');
    fs.writeFileSync(file, JSON.stringify({ vocab_size: 512, bos_id: 1, eos_id: 2, unk_id: 0, tokens }));
    const j = SentencePieceBPETokenizer.fromVocabJson(file);
    assert.deepEqual(j.pieces, tok.pieces);
    assert.deepEqual(j.encode('Once upon a time, Café 🙂'), tok.encode('Once upon a time, Café 🙂'));
    fs.writeFileSync(file, JSON.stringify({ tokens: [{ id: 0, piece: 'a', score: 0 }, { id: 0, piece: 'b', score: 0 }] }));
    assert.throws(() => SentencePieceBPETokenizer.fromVocabJson(file), /each once/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => SentencePieceBPETokenizer.fromLlama2cBin('/nonexistent/tok.bin'), /\/nonexistent\/tok\.bin: cannot read tokenizer \(ENOENT\)/);
});

test('about 1 MB of text encodes in one call in a few seconds', () => {
  const text = fs.readFileSync(path.join(root, 'data/wikitext-2/test.txt'), 'utf8').slice(0, 1_000_000);
  const t0 = performance.now();
  const ids = tok.encode(text);
  const ms = performance.now() - t0;
  assert.ok(ms < 15000, `${ms.toFixed(0)} ms`);
  assert.equal(tok.decode(ids), text);
});
