// Byte-level BPE training (src/tokenizers/bpe-train.ts): exact merges on a hand-checked corpus, the saved folder
// through loadTokenizer (@huggingface/tokenizers) against ByteLevelBPETokenizer on vocab.json + merges.txt,
// determinism, limits, option errors, and `shrink train-tokenizer` as a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { trainByteLevelBpe, saveBpeTokenizer } from '../../src/tokenizers/bpe-train.ts';
import { ByteLevelBPETokenizer, bytesToUnicode } from '../../src/tokenizers/bpe.ts';
import { HFJsonTokenizer } from '../../src/tokenizers/hf-json.ts';
import { loadTokenizer } from '../../src/tokenizers/index.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-bpe-train-'));

// Sennrich et al.'s example, one word per text (so no leading-space "Ġ" symbols): low ×5, lower ×2, newest ×6, widest ×3
const CLASSIC = [...Array(5).fill('low'), ...Array(2).fill('lower'), ...Array(6).fill('newest'), ...Array(3).fill('widest')];
// By hand (count; ties → smallest (left, right) strings):
//  e s 9 (tie with s t 9: "e" < "s") · es t 9 · l o 7 (tie with o w 7) · lo w 7 · e w 6 (tie with n e, w est) ·
//  ew est 6 (tie with n ew: "ew" < "n") · n ewest 6 · d est 3 (tie with i d, w i) · i dest 3 · w idest 3 ·
//  e r 2 (tie with low e: "e" < "low") · low er 2
const CLASSIC_MERGES = ['e s', 'es t', 'l o', 'lo w', 'e w', 'ew est', 'n ewest', 'd est', 'i dest', 'w idest', 'e r', 'low er'];

const TEXT = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.',
  "It's a fox's den, isn't it? They'll say we've seen 12 foxes in 2024 — 3.5 per day.",
  'Café naïve résumé, Ünïcödé ÆØÅ, 日本語のテキスト, русский текст.',
  'emoji 😀👍🏽 and a family 👨‍👩‍👧\nnew line\n\n  indented\ttab\r\nwindows line',
].join('\n');
const CORPUS = Array.from({ length: 30 }, (_, i) => `${TEXT} Line ${i}: the fox and the dog, again and again.`);

test('the classic low/lower/newest/widest example: exact merges, ids, ties by the smaller (left, right) strings', () => {
  const r = trainByteLevelBpe(CLASSIC, { vocabSize: 1000 });
  assert.deepEqual(r.merges.map(([a, b]) => `${a} ${b}`), CLASSIC_MERGES);
  assert.equal(r.vocab.size, 1 + 256 + CLASSIC_MERGES.length);
  assert.equal(r.vocab.get('<|endoftext|>'), 0);
  const table = bytesToUnicode();
  for (let b = 0; b < 256; b++) assert.equal(r.vocab.get(table[b]!), 1 + b);
  CLASSIC_MERGES.forEach((m, i) => assert.equal(r.vocab.get(m.replace(' ', '')), 257 + i));
  assert.equal(r.texts, CLASSIC.length);
  assert.equal(r.words, CLASSIC.length);
  assert.equal(r.distinctWords, 4);
  // the order of the texts does not matter
  assert.deepEqual(trainByteLevelBpe([...CLASSIC].reverse(), { vocabSize: 1000 }).merges, r.merges);
});

test('vocabSize and minFrequency stop the merges; several special tokens take the first ids', () => {
  const four = trainByteLevelBpe(CLASSIC, { vocabSize: 261 });
  assert.equal(four.vocab.size, 261);
  assert.deepEqual(four.merges.map(([a, b]) => `${a} ${b}`), CLASSIC_MERGES.slice(0, 4));
  // the last two merges occur twice: minFrequency 3 stops before them
  const min3 = trainByteLevelBpe(CLASSIC, { vocabSize: 1000, minFrequency: 3 });
  assert.deepEqual(min3.merges.map(([a, b]) => `${a} ${b}`), CLASSIC_MERGES.slice(0, 10));
  const sp = trainByteLevelBpe(CLASSIC, { vocabSize: 300, specialTokens: ['<s>', '</s>', '<pad>'] });
  assert.deepEqual(['<s>', '</s>', '<pad>'].map((t) => sp.vocab.get(t)), [0, 1, 2]);
  assert.equal(sp.vocab.get(bytesToUnicode()[0]!), 3); // byte 0
  assert.equal(sp.vocab.get('!'), 3 + 0x21);
  assert.deepEqual(sp.merges, trainByteLevelBpe(CLASSIC, { vocabSize: 300 }).merges);
  const big = trainByteLevelBpe(CORPUS, { vocabSize: 400 });
  assert.equal(big.vocab.size, 400);
  assert.deepEqual([...big.vocab.values()].sort((a, b) => a - b), Array.from({ length: 400 }, (_, i) => i));
  let progress = 0;
  trainByteLevelBpe(CORPUS, { vocabSize: 300, onProgress: (done, total) => { assert.equal(total, 43); progress = done; } });
  assert.equal(progress, 43);
});

test('a merge never spells a special token', () => {
  // '<|>' is one pre-token: '<' '|' (tie with '|' '>': '<' < '|') is merged, then '<|' '>' would spell the special
  const r = trainByteLevelBpe(Array(10).fill('<|>'), { vocabSize: 300, specialTokens: ['<|>'] });
  assert.deepEqual(r.merges, [['<', '|']]);
  assert.equal(r.vocab.get('<|>'), 0);
  assert.equal(r.vocab.size, 258);
});

test('option errors', () => {
  const bad: [unknown, string][] = [
    [{ vocabSize: 256 }, 'trainByteLevelBpe: vocabSize must be an integer >= 257 (256 byte symbols + 1 special token), got 256'],
    [{ vocabSize: 300.5 }, 'trainByteLevelBpe: vocabSize must be an integer >= 257 (256 byte symbols + 1 special token), got 300.5'],
    [{ vocabSize: 258, specialTokens: ['<s>', '</s>', '<pad>'] }, 'trainByteLevelBpe: vocabSize must be an integer >= 259 (256 byte symbols + 3 special tokens), got 258'],
    [{}, 'trainByteLevelBpe: vocabSize must be an integer >= 257 (256 byte symbols + 1 special token), got undefined'],
    [{ vocabSize: 300, minFrequency: 0 }, 'trainByteLevelBpe: minFrequency must be an integer >= 1, got 0'],
    [{ vocabSize: 300, specialTokens: ['<s>', '<s>'] }, 'trainByteLevelBpe: special token "<s>" is listed twice'],
    [{ vocabSize: 300, specialTokens: [''] }, 'trainByteLevelBpe: special tokens must be non-empty strings, got ""'],
    [{ vocabSize: 300, specialTokens: ['a'] }, 'trainByteLevelBpe: special token "a" is a byte symbol'],
  ];
  for (const [opts, message] of bad) assert.throws(() => trainByteLevelBpe(['low'], opts as never), { message });
  assert.throws(() => trainByteLevelBpe(['ok', 3 as never], { vocabSize: 300 }), { message: 'trainByteLevelBpe: text 1 is not a string (number)' });
  assert.throws(() => trainByteLevelBpe(null as never, { vocabSize: 300 }), { message: 'trainByteLevelBpe: texts must be an iterable of strings' });
});

test('saved folder: loadTokenizer round-trips any text, matches ByteLevelBPETokenizer on vocab.json + merges.txt; deterministic files', () => {
  const dir = tmp();
  try {
    const r = trainByteLevelBpe(CORPUS, { vocabSize: 450 });
    const out = path.join(dir, 'tok');
    saveBpeTokenizer(out, r);
    assert.deepEqual(fs.readdirSync(out).sort(), ['merges.txt', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json']);
    assert.ok(fs.readFileSync(path.join(out, 'merges.txt'), 'utf8').startsWith('#version: 0.2\n'));
    const tok = loadTokenizer(out);
    assert.ok(tok instanceof HFJsonTokenizer);
    assert.equal(tok.vocabSize, 450);
    assert.deepEqual(tok.specialIds, { unk: 0, bos: 0, eos: 0 });
    const direct = new ByteLevelBPETokenizer(JSON.parse(fs.readFileSync(path.join(out, 'vocab.json'), 'utf8')), r.merges);
    const samples = [
      ...TEXT.split('\n'),
      TEXT,
      'Unseen words: zebra quartz xylophone — ∑∫√ ©®™ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦊🐶🇫🇷',
      'Ünïcödé at the start\n\n\n and   spaces    ',
      '\u0000\u00ad\u200b\ufeff control',
      ' leading space',
      '',
    ];
    for (const s of samples) {
      const ids = tok.encode(s, { addSpecialTokens: false });
      assert.deepEqual(ids, direct.encode(s), JSON.stringify(s));
      assert.equal(tok.decode(ids), s, JSON.stringify(s));
      assert.equal(direct.decode(ids), s);
    }
    // the learned merges shorten the training text
    assert.ok(tok.encode(TEXT).length < Buffer.byteLength(TEXT) / 2);
    // same input twice → identical files
    const again = path.join(dir, 'again');
    saveBpeTokenizer(again, trainByteLevelBpe(CORPUS, { vocabSize: 450 }));
    for (const f of fs.readdirSync(out)) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(again, f))), f);
    // a non-empty folder needs force
    assert.throws(() => saveBpeTokenizer(out, r), /exists and is not empty \(use --force to replace it\)/);
    saveBpeTokenizer(out, r, { force: true });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink train-tokenizer on a text file writes a loadable folder; a non-empty -o needs --force', () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'corpus.txt');
    fs.writeFileSync(file, CORPUS.join('\n') + '\n');
    const out = path.join(dir, 'tok');
    const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), 'train-tokenizer', ...args], { encoding: 'utf8', cwd: root });
    const r = run('--corpus', file, '--vocab-size', '400', '-o', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.vocabSize, 400);
    assert.equal(s.merges, 400 - 257);
    assert.ok(s.documents > 0 && s.words > 0 && s.distinctPreTokens > 0 && s.tokensPerWord > 0 && s.tokensPerWord < 3, r.stdout);
    const tok = loadTokenizer(out);
    assert.equal(tok.vocabSize, 400);
    assert.equal(tok.decode(tok.encode(TEXT)), TEXT);
    const again = run('--corpus', file, '--vocab-size', '400', '-o', out);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^shrink: output folder .*tok exists and is not empty \(use --force to replace it\)\n$/);
    const forced = run('--corpus', file, '--vocab-size', '300', '-o', out, '--force');
    assert.equal(forced.status, 0, forced.stderr);
    assert.match(forced.stdout, /^wrote .*tok: vocabulary 300 \(43 merges learned\)/);
    assert.match(forced.stderr, /documents of corpus\.txt/);
    assert.equal(loadTokenizer(out).vocabSize, 300);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
