/**
 * Text corpora for language modelling: plain files, WikiText-2 read the way the standard evaluations read it,
 * Tiny Shakespeare with nanoGPT's character vocabulary, and token-stream chunking:
 *
 * - `chunkTokens(ids, blockSize)`: HF run_clm's `group_texts`: concatenate, split into blockSize blocks, drop the
 *   remainder (nothing at all when the stream is shorter than one block);
 * - `chunkTokens(ids, blockSize, { stride })`: HF's perplexity guide (fixed-length models): windows of at most
 *   blockSize tokens starting every `stride` tokens; in each window the leading `context` tokens were already scored
 *   by an earlier window and are context only (labels -100 there, see `causalLabels`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DATA_DIR } from './glue.ts';

/** A file's text as UTF-8 with a leading BOM removed; nothing else is changed (line ends are kept). */
export function loadText(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export type WikiTextSplit = 'valid' | 'test';

/** Path of a bundled (or `dir`) WikiText-2 split: `<dir>/<valid|test>.txt` (the tokenized v1 `wiki.*.tokens`). */
export function wikiTextFile(split: WikiTextSplit, dir: string = path.join(DATA_DIR, 'wikitext-2')): string {
  if (split !== 'valid' && split !== 'test') throw new Error(`WikiText-2: unknown split '${split}' (expected valid or test; train is not bundled)`);
  return path.join(dir, `${split}.txt`);
}

/**
 * The rows of HF `datasets`' wikitext-2 (v1) for a split: one row per file line, a line keeping its trailing "\n",
 * and whitespace-only lines as "" (exactly what its loading script yields). `<unk>`, `@-@`, `@,@`, headings kept.
 */
export function wikiTextLines(split: WikiTextSplit, opts: { dir?: string } = {}): string[] {
  const text = loadText(wikiTextFile(split, opts.dir));
  const rows = text.split(/(?<=\n)/); // keep each line's "\n"
  return rows.map((r) => (r.trim() === '' ? '' : r));
}

/**
 * WikiText-2 as one string, the way the standard LM evaluation builds it (HF perplexity guide:
 * `"\n\n".join(test["text"])` over the rows of `wikiTextLines`). Tokenize it as a whole, then `chunkTokens`.
 */
export function loadWikiText(split: WikiTextSplit, opts: { dir?: string } = {}): string {
  return wikiTextLines(split, opts).join('\n\n');
}

/**
 * Word-level tokens the way pytorch/examples word_language_model reads WikiText: each line split on whitespace,
 * followed by `<eos>` (valid: 217,646 tokens, test: 245,569). Lines are split on "\n" only.
 */
export function wordTokens(text: string, eos = '<eos>'): string[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop(); // the file's final newline ends the last line
  const out: string[] = [];
  for (const line of lines) {
    for (const w of line.split(/\s+/)) if (w !== '') out.push(w);
    out.push(eos);
  }
  return out;
}

/** Tiny Shakespeare (the 1,115,394-character char-rnn corpus), bundled at data/tinyshakespeare/input.txt. */
export function loadTinyShakespeare(opts: { dir?: string } = {}): string {
  return loadText(path.join(opts.dir ?? path.join(DATA_DIR, 'tinyshakespeare'), 'input.txt'));
}

export interface CharVocab {
  /** The distinct characters (code points), sorted by code point; id = index. */
  chars: string[];
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

/** nanoGPT's character vocabulary: `sorted(set(text))` (Tiny Shakespeare: 65 characters). */
export function charVocab(text: string): CharVocab {
  const chars = [...new Set(text)].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const stoi = new Map(chars.map((c, i) => [c, i]));
  return {
    chars,
    encode(s: string): number[] {
      const out: number[] = [];
      for (const c of s) {
        const id = stoi.get(c);
        if (id === undefined) throw new Error(`charVocab.encode: character ${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}) is not in the vocabulary`);
        out.push(id);
      }
      return out;
    },
    decode(ids: readonly number[]): string {
      let s = '';
      for (const id of ids) {
        const c = chars[id];
        if (c === undefined) throw new Error(`charVocab.decode: id ${id} out of range [0, ${chars.length})`);
        s += c;
      }
      return s;
    },
  };
}

export interface TokenBlock {
  /** The block's token ids. */
  ids: number[];
  /** Position of ids[0] in the concatenated stream. */
  start: number;
  /**
   * Leading tokens that are context only (already scored by an earlier window): their labels are -100. Always 0
   * for group_texts blocks and for the first window.
   */
  context: number;
}

/**
 * Split a token stream into blocks for causal-LM training or evaluation. `ids` is one stream or a list of
 * documents (concatenated as they are, with no separator, as run_clm does; add an EOS yourself if wanted).
 *
 * Without `stride`: HF run_clm's group_texts: floor(n / blockSize) blocks of exactly blockSize, remainder dropped.
 * With `stride` (1 <= stride <= blockSize): HF's sliding-window perplexity: windows
 * `[begin, min(begin + blockSize, n))` for begin = 0, stride, 2·stride, … until a window reaches the end; each
 * window's targets are the tokens after the previous window's end (`context` = the rest), so every token of the
 * stream is a target exactly once. With the usual shift (logits[:-1] vs labels[1:]) the first token of the stream
 * is never predicted: a model scores n - 1 tokens in total.
 */
export function chunkTokens(ids: readonly number[] | readonly (readonly number[])[], blockSize: number, opts: { stride?: number } = {}): TokenBlock[] {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`chunkTokens: blockSize must be a positive integer, got ${blockSize}`);
  const flat: number[] = ids.length > 0 && Array.isArray(ids[0]) ? (ids as readonly (readonly number[])[]).flat() : (ids as number[]);
  const n = flat.length;
  const out: TokenBlock[] = [];
  if (opts.stride === undefined) {
    for (let s = 0; s + blockSize <= n; s += blockSize) out.push({ ids: flat.slice(s, s + blockSize), start: s, context: 0 });
    return out;
  }
  const stride = opts.stride;
  if (!Number.isInteger(stride) || stride < 1 || stride > blockSize)
    throw new Error(`chunkTokens: stride must be an integer in [1, blockSize=${blockSize}], got ${stride}`);
  let prevEnd = 0;
  for (let begin = 0; begin < n; begin += stride) {
    const end = Math.min(begin + blockSize, n);
    const targets = end - prevEnd;
    out.push({ ids: flat.slice(begin, end), start: begin, context: end - begin - targets });
    prevEnd = end;
    if (end === n) break;
  }
  return out;
}

/** Labels for a block as HF builds them: the ids, with -100 on the leading context-only tokens. */
export function causalLabels(block: TokenBlock, ignoreIndex = -100): number[] {
  return block.ids.map((id, i) => (i < block.context ? ignoreIndex : id));
}
