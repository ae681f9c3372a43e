/** Tokenizer loading by what a model folder contains. */
import fs from 'node:fs';
import path from 'node:path';
import { SentencePieceBPETokenizer } from './sentencepiece.ts';
import type { Tokenizer } from './types.ts';

export { SentencePieceBPETokenizer };
export type { Tokenizer, SpecialIds } from './types.ts';

/** The tokenizer of a model folder; an error lists what was looked for when none is found. */
export function loadTokenizer(dir: string): Tokenizer {
  const tok512 = path.join(dir, 'tok512.bin');
  if (fs.existsSync(tok512)) return SentencePieceBPETokenizer.fromLlama2cBin(tok512);
  const tokenizerBin = path.join(dir, 'tokenizer.bin');
  if (fs.existsSync(tokenizerBin)) return SentencePieceBPETokenizer.fromLlama2cBin(tokenizerBin);
  throw new Error(`${dir}: no tokenizer found (looked for tok512.bin, tokenizer.bin)`);
}
