/**
 * The tokenizer.json an ONNX export writes for folders without one: loaded by @huggingface/tokenizers (the library
 * transformers.js tokenizes with), it must give the same ids as Shrink's own tokenizer of the source folder —
 * WordPiece from vocab.txt (bert-teacher-sst2, bert-minilm), and the llama2.c SentencePiece BPE of stories260K.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import '../../src/index.ts'; // first: src/compress/index.ts (imported by src/export/index.ts) cannot be the entry point of the module graph
import { exportFolder } from '../../src/export/index.ts';
import { tokenizerJsonFor } from '../../src/export/tokenizer-json.ts';
import { loadTokenizer } from '../../src/tokenizers/index.ts';
import { HFJsonTokenizer } from '../../src/tokenizers/hf-json.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

const SENTENCES = [
  'Hello, world!',
  "The movie wasn't good; it was GREAT.",
  'A quiet, well-made film about grief — and Café au lait at 3:45pm?',
  "Lily and Ben played in the park. They saw a big dog! \"Look,\" said Lily, \"it's so fluffy.\"",
  '  leading and   repeated   spaces\tand a tab\nand a newline ',
  'naïve résumé – ÉCOLE Ünïcödé ß',
  'Numbers 1234567 and symbols #@%^&*()[]{}<>~`|\\/',
  'emoji 🙂 and CJK 你好世界 and a zero-width\u200bspace',
  'supercalifragilisticexpialidocious antidisestablishmentarianism',
  'Once upon a time, there was a little girl named Lily. She loved to play outside.',
  'x',
];

function hf(dir: string): HFTokenizer {
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  return new HFTokenizer(read('tokenizer.json'), read('tokenizer_config.json'));
}

function exported(model: string, fn: (out: string) => void): void {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-export-tok-'));
  try {
    const out = path.join(tmp, 'o');
    const r = exportFolder(path.join(ROOT, 'data/models', model), out, { format: 'onnx', dtype: 'fp16' });
    assert.deepEqual(r.generatedTokenizer?.files, ['tokenizer.json', 'tokenizer_config.json']);
    assert.ok(r.files.includes('tokenizer.json') && r.files.includes('tokenizer_config.json'), r.files.join(', '));
    assert.ok(!r.warnings.some((w) => w.includes('tokenizer.json')), r.warnings.join('; '));
    fn(out);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

for (const model of ['bert-teacher-sst2', 'bert-minilm']) {
  test(`${model}: tokenizer.json from vocab.txt (WordPiece) encodes like Shrink's WordPiece, singles and pairs`, () => {
    const shrink = loadTokenizer(path.join(ROOT, 'data/models', model));
    exported(model, (out) => {
      const tok = hf(out);
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8'));
      assert.equal(cfg.tokenizer_class, 'BertTokenizer');
      let n = 0;
      for (const s of [...SENTENCES, 'a [MASK] in the middle']) {
        const want = shrink.encode(s);
        const got = tok.encode(s).ids;
        assert.deepEqual(got, want, `${model}: ${JSON.stringify(s)}\n  hf:     ${tok.encode(s).tokens.join(' ')}\n  shrink: ${want.map((i) => shrink.idToToken(i)).join(' ')}`);
        assert.deepEqual(tok.encode(s, { add_special_tokens: false }).ids, shrink.encode(s, { addSpecialTokens: false }));
        n += want.length;
      }
      for (let k = 0; k + 1 < SENTENCES.length; k++) {
        const want = shrink.encodePair!(SENTENCES[k]!, SENTENCES[k + 1]!);
        const got = tok.encode(SENTENCES[k]!, { text_pair: SENTENCES[k + 1]!, return_token_type_ids: true });
        assert.deepEqual(got.ids, want.ids, `pair ${k}`);
        assert.deepEqual(got.token_type_ids, want.tokenTypeIds, `pair ${k} token types`);
      }
      // Shrink reading the exported folder (now through tokenizer.json) agrees with itself on the source folder
      const back = loadTokenizer(out);
      assert.ok(back instanceof HFJsonTokenizer);
      for (const s of SENTENCES) assert.deepEqual(back.encode(s), shrink.encode(s));
      console.log(`${model}: ${SENTENCES.length} sentences (${n} ids) and ${SENTENCES.length - 1} pairs identical`);
    });
  });
}

test("stories260K: tokenizer.json from tok512.bin (BPE, byte fallback, score-ranked merges) encodes like Shrink's llama2.c tokenizer", () => {
  const dir = path.join(ROOT, 'data/models/stories260K');
  const shrink = loadTokenizer(dir);
  exported('stories260K', (out) => {
    const tok = hf(out);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8'));
    assert.equal(cfg.tokenizer_class, 'LlamaTokenizer');
    const texts = [...SENTENCES];
    // a longer, realistic document, and every 2–3-character window of it
    const story = 'One day, a little boy named Tim went to the park with his mom. He saw a big red ball and wanted to play. "Can I have it?" he asked. His mom smiled and said yes. Tim was very happy!';
    texts.push(story);
    for (const f of ['data/tinystories-samples/stories260K-samples.txt', 'data/wikitext-2/valid.txt'])
      // (lines with a literal <unk>, as WikiText has, are left out: tokenizer.json's added tokens match <unk> / <s> /
      // </s> written in the text, llama2.c spells them out — the known difference described in tokenizer-json.ts)
      texts.push(...fs.readFileSync(path.join(ROOT, f), 'utf8').split('\n').filter((l) => l.trim() && !/<unk>|<\/?s>/.test(l)).slice(0, 150));
    // seeded random strings over letters, digits, punctuation, spaces and characters outside the vocabulary
    const alphabet = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?\'"-:;()\n\t  éü€你🙂'];
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < 300; k++) texts.push(Array.from({ length: 1 + Math.floor(rnd() * 30) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join(''));
    for (let k = 0; k + 3 <= story.length; k += 2) texts.push(story.slice(k, k + 2 + (k % 3 === 0 ? 1 : 0)));
    let n = 0;
    for (const s of texts) {
      const want = shrink.encode(s);
      const got = tok.encode(s).ids;
      assert.deepEqual(got, want, `${JSON.stringify(s)}\n  hf:     ${tok.encode(s).tokens.join('|')}\n  shrink: ${want.map((i) => shrink.idToToken(i)).join('|')}`);
      n += want.length;
      assert.equal(tok.decode(got, { skip_special_tokens: true }), shrink.decode(want), `decode ${JSON.stringify(s)}`);
    }
    console.log(`stories260K: ${texts.length} texts (${n} ids) encode and decode identically`);
  });
});

test('bert-base-uncased: the tokenizer.json built from its vocab.txt encodes SST-2 dev like the official tokenizer.json', () => {
  const dir = path.join(ROOT, 'data/tokenizers/bert-base-uncased');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-tokjson-bbu-'));
  try {
    fs.copyFileSync(path.join(dir, 'vocab.txt'), path.join(tmp, 'vocab.txt'));
    fs.copyFileSync(path.join(dir, 'tokenizer_config.json'), path.join(tmp, 'tokenizer_config.json'));
    const g = tokenizerJsonFor(tmp)!;
    const mine = new HFTokenizer(g.tokenizer as never, g.config as never);
    const official = hf(dir);
    const lines = fs.readFileSync(path.join(ROOT, 'data/glue/SST-2/dev.tsv'), 'utf8').split('\n').slice(1).filter(Boolean).map((l) => l.split('\t')[0]!);
    for (const s of [...lines, ...SENTENCES]) assert.deepEqual(mine.encode(s).ids, official.encode(s).ids, JSON.stringify(s));
    console.log(`bert-base-uncased: ${lines.length + SENTENCES.length} sentences encode as with the official tokenizer.json`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('tokenizerJsonFor: null when the folder already has tokenizer.json or no vocab.txt / llama2.c tokenizer; tokenizer_config.json is honoured', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-tokjson-'));
  try {
    assert.equal(tokenizerJsonFor(tmp), null);
    fs.writeFileSync(path.join(tmp, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'Hello', 'hello', '##s', ','].join('\n') + '\n');
    fs.writeFileSync(path.join(tmp, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }));
    const g = tokenizerJsonFor(tmp, 64)!;
    assert.equal((g.tokenizer.normalizer as { lowercase: boolean }).lowercase, false);
    assert.equal(g.config.model_max_length, 64);
    const tok = new HFTokenizer(g.tokenizer as never, g.config as never);
    const shrink = loadTokenizer(tmp);
    for (const s of ['Hello, hellos', 'hello Hellos, x']) assert.deepEqual(tok.encode(s).ids, shrink.encode(s));
    fs.writeFileSync(path.join(tmp, 'tokenizer.json'), '{}');
    assert.equal(tokenizerJsonFor(tmp), null);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
