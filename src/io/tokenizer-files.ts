/** The tokenizer files a model folder may carry, copied along whenever a tool writes a new folder from it. */
import fs from 'node:fs';
import path from 'node:path';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'tok512.bin', 'tokenizer.bin', 'tokenizer_vocab.json', 'encoder.json', 'merges.txt', 'vocab.bpe', 'vocab.json', 'tokenizer.model'];

/** Copy every tokenizer file of `src` that exists into `dst`; returns the names copied. */
export function copyTokenizerFiles(src: string, dst: string): string[] {
  const copied: string[] = [];
  for (const f of TOKENIZER_FILES) {
    const from = path.join(src, f);
    if (!fs.existsSync(from)) continue;
    fs.copyFileSync(from, path.join(dst, f));
    copied.push(f);
  }
  return copied;
}

/** Whether `dir` holds any tokenizer file. */
export function hasTokenizer(dir: string): boolean {
  return TOKENIZER_FILES.some((f) => fs.existsSync(path.join(dir, f)));
}
