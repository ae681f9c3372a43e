/** Tokenizers behind one interface, and loading the right one for a model folder. */
import fs from 'node:fs';
import path from 'node:path';
import { ByteLevelBPETokenizer } from './bpe.ts';
import { HFJsonTokenizer } from './hf-json.ts';
import { SentencePieceBPETokenizer } from './sentencepiece.ts';
import { WordPieceTokenizer, type WordPieceOptions } from './wordpiece.ts';
import type { Tokenizer } from './types.ts';

export { ByteLevelBPETokenizer, bytesToUnicode, GPT2_PATTERN, parseMerges } from './bpe.ts';
export { HFJsonTokenizer } from './hf-json.ts';
export { trainByteLevelBpe, saveBpeTokenizer, bpeTokenizerJson, DEFAULT_SPECIAL_TOKENS, type TrainBpeOptions, type TrainedBpe } from './bpe-train.ts';
export { SentencePieceBPETokenizer } from './sentencepiece.ts';
export { WordPieceTokenizer, type WordPieceOptions } from './wordpiece.ts';
export type { Tokenizer, SpecialIds } from './types.ts';

function readConfig(dir: string): Record<string, unknown> {
  const p = path.join(dir, 'tokenizer_config.json');
  if (!fs.existsSync(p)) return {};
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${p}: invalid JSON (${(e as Error).message})`);
  }
}

/**
 * The tokenizer of a model folder, by what it contains, in this order:
 *  1. tokenizer.json (run by @huggingface/tokenizers);
 *  2. vocab.txt: BERT WordPiece, with do_lower_case / strip_accents from tokenizer_config.json when present;
 *  3. tok512.bin / tokenizer.bin (llama2.c) or tokenizer_vocab.json (its JSON dump): stories260K's SentencePiece BPE;
 *  4. encoder.json + merges.txt (or vocab.bpe): GPT-2 byte-level BPE.
 * Throws an error listing what it looked for when none is there.
 */
export function loadTokenizer(dir: string): Tokenizer {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`${dir}: not a folder (expected a model or tokenizer folder)`);
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  const at = (f: string) => path.join(dir, f);
  if (has('tokenizer.json')) return HFJsonTokenizer.fromDir(dir);
  if (has('vocab.txt')) {
    const cfg = readConfig(dir);
    const opts: WordPieceOptions = {};
    if (typeof cfg.do_lower_case === 'boolean') opts.doLowerCase = cfg.do_lower_case;
    if (typeof cfg.strip_accents === 'boolean') opts.stripAccents = cfg.strip_accents;
    return WordPieceTokenizer.fromVocabFile(at('vocab.txt'), opts);
  }
  for (const f of ['tok512.bin', 'tokenizer.bin']) if (has(f)) return SentencePieceBPETokenizer.fromLlama2cBin(at(f));
  if (has('tokenizer_vocab.json')) return SentencePieceBPETokenizer.fromVocabJson(at('tokenizer_vocab.json'));
  if (has('encoder.json')) {
    for (const f of ['merges.txt', 'vocab.bpe']) if (has(f)) return ByteLevelBPETokenizer.fromFiles(at('encoder.json'), at(f));
  }
  throw new Error(
    `${dir}: no tokenizer found (looked for tokenizer.json; vocab.txt; tok512.bin, tokenizer.bin or tokenizer_vocab.json; encoder.json with merges.txt or vocab.bpe)`,
  );
}
