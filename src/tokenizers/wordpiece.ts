/**
 * BERT WordPiece tokenization from a vocab.txt, as bert-base-uncased does it (HF BertTokenizer / the original
 * tokenization.py): clean text (drop control characters, map whitespace to spaces), put spaces around CJK
 * ideographs, lower-case and strip accents (NFD, drop combining marks), split on whitespace and punctuation, then
 * greedy longest-match-first WordPiece with `##` continuations; a word that cannot be covered, or is longer than
 * 100 characters, becomes [UNK]. Checked against @huggingface/tokenizers on real GLUE sentences.
 */
import fs from 'node:fs';
import { HFJsonTokenizer } from './hf-json.ts';
import type { SpecialIds, Tokenizer } from './types.ts';

export { HFJsonTokenizer };

/** BERT's _is_whitespace: space, \t, \n, \r and Unicode Zs. */
function isWhitespace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || /\p{Zs}/u.test(c);
}
/** BERT's _is_control: any Unicode C* category (Cc, Cf, Cn, Co, Cs) except \t, \n, \r. */
function isControl(c: string): boolean {
  if (c === '\t' || c === '\n' || c === '\r') return false;
  return /\p{C}/u.test(c);
}
function isPunctuation(c: string): boolean {
  const cp = c.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return /\p{P}/u.test(c);
}
/**
 * The characters that separate words both before and after BERT's cleaning: whitespace by _is_whitespace
 * (\t \n \r and Zs) plus \u2028/\u2029, which Python's str.split() also splits on. (\v, \f and \uFEFF are in JS's \s
 * but are control characters that cleaning deletes, so they must not separate words.)
 */
const WORD_SEP = /[\t\n\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export interface WordPieceOptions {
  doLowerCase?: boolean;
  /** Default: same as doLowerCase (HF BertTokenizer). */
  stripAccents?: boolean;
  maxInputCharsPerWord?: number;
}

export class WordPieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  private readonly vocab = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  /** whitespace-free chunk of raw text → its ids (the whole pipeline is a function of the chunk) */
  private readonly chunkCache = new Map<string, number[]>();
  private readonly lower: boolean;
  private readonly strip: boolean;
  private readonly maxChars: number;
  /** matches the special tokens ([CLS], [SEP], [MASK], …) written in the text, which map to their ids */
  private readonly specialRe: RegExp;

  constructor(readonly tokens: string[], opts: WordPieceOptions = {}) {
    tokens.forEach((t, i) => {
      if (!this.vocab.has(t)) this.vocab.set(t, i);
    });
    this.vocabSize = tokens.length;
    this.lower = opts.doLowerCase ?? true;
    this.strip = opts.stripAccents ?? this.lower;
    this.maxChars = opts.maxInputCharsPerWord ?? 100;
    const need = (t: string) => {
      const id = this.vocab.get(t);
      if (id === undefined) throw new Error(`WordPiece vocabulary has no ${t} token`);
      return id;
    };
    this.specialIds = { pad: need('[PAD]'), unk: need('[UNK]'), cls: need('[CLS]'), sep: need('[SEP]'), mask: need('[MASK]') };
    const names = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => t.replace(/[[\]]/g, '\\$&'));
    this.specialRe = new RegExp(`(${names.join('|')})`);
  }

  /**
   * A folder's tokenizer.json (and tokenizer_config.json) run by @huggingface/tokenizers instead of this class; it
   * gives the same ids as fromVocabFile on bert-base-uncased (checked on GLUE sentences).
   */
  static fromTokenizerJson(dir: string): HFJsonTokenizer {
    return HFJsonTokenizer.fromDir(dir);
  }

  /** One token per line (BERT's vocab.txt); the line number is the id. */
  static fromVocabFile(path: string, opts: WordPieceOptions = {}): WordPieceTokenizer {
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (e) {
      throw new Error(`${path}: cannot read vocabulary (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    try {
      return new WordPieceTokenizer(lines.map((l) => l.replace(/\r$/, '')), opts);
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  /** BasicTokenizer: words and punctuation marks. */
  basicTokenize(text: string): string[] {
    let clean = '';
    for (const c of text) {
      const cp = c.codePointAt(0)!;
      if (cp === 0 || cp === 0xfffd || isControl(c)) continue;
      if (isWhitespace(c)) clean += ' ';
      else if (isCjk(cp)) clean += ` ${c} `;
      else clean += c;
    }
    const out: string[] = [];
    // whitespace_tokenize: Python's str.split() also splits on \u2028/\u2029 etc., which survive cleaning
    for (let word of clean.split(/\s+/u)) {
      if (!word) continue;
      if (this.lower) word = word.toLowerCase();
      if (this.strip) word = word.normalize('NFD').replace(/\p{Mn}/gu, '');
      let cur = '';
      for (const c of word) {
        if (isPunctuation(c)) {
          if (cur) out.push(cur);
          out.push(c);
          cur = '';
        } else cur += c;
      }
      if (cur) out.push(cur);
    }
    return out;
  }

  /** Greedy longest-match-first WordPiece of one word. */
  wordPiece(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const chars = [...word];
    let ids: number[] = [];
    if (chars.length > this.maxChars) ids = [this.specialIds.unk!];
    else {
      let start = 0;
      while (start < chars.length) {
        let end = chars.length;
        let found: number | undefined;
        while (start < end) {
          const sub = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
          found = this.vocab.get(sub);
          if (found !== undefined) break;
          end--;
        }
        if (found === undefined) {
          ids = [this.specialIds.unk!];
          break;
        }
        ids.push(found);
        start = end;
      }
    }
    if (this.cache.size < 200000) this.cache.set(word, ids);
    return ids;
  }

  /** Ids without [CLS]/[SEP] around them; special tokens written in the text ("[MASK]") become their ids, as in HF. */
  private pieces(text: string): number[] {
    const out: number[] = [];
    const parts = text.split(this.specialRe); // odd indices are the specials
    for (let k = 0; k < parts.length; k++) {
      if (k % 2 === 1) out.push(this.vocab.get(parts[k]!)!);
      else
        for (const chunk of parts[k]!.split(WORD_SEP)) {
          if (!chunk) continue;
          let ids = this.chunkCache.get(chunk);
          if (ids === undefined) {
            ids = [];
            for (const w of this.basicTokenize(chunk)) for (const id of this.wordPiece(w)) ids.push(id);
            if (this.chunkCache.size >= 200000) this.chunkCache.clear();
            this.chunkCache.set(chunk, ids);
          }
          for (const id of ids) out.push(id);
        }
    }
    return out;
  }

  /** [CLS] text [SEP] (addSpecialTokens, default true). */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.pieces(text);
    return (opts.addSpecialTokens ?? true) ? [this.specialIds.cls!, ...ids, this.specialIds.sep!] : ids;
  }

  /** [CLS] a [SEP] b [SEP] with token type ids 0 … 0 1 … 1. */
  encodePair(a: string, b: string): { ids: number[]; tokenTypeIds: number[] } {
    const pa = this.pieces(a);
    const pb = this.pieces(b);
    const { cls, sep } = this.specialIds;
    return { ids: [cls!, ...pa, sep!, ...pb, sep!], tokenTypeIds: [...new Array(pa.length + 2).fill(0), ...new Array(pb.length + 1).fill(1)] };
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    const special = new Set(Object.values(this.specialIds));
    const toks: string[] = [];
    for (const id of ids) {
      const t = this.tokens[id];
      if (t === undefined) throw new Error(`decode: token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
      if (skip && special.has(id)) continue;
      toks.push(t);
    }
    // join ## continuations (convert_tokens_to_string), then HF's clean_up_tokenization
    return toks
      .join(' ')
      .replace(/ ##/g, '')
      .trim()
      .replace(/ \./g, '.')
      .replace(/ \?/g, '?')
      .replace(/ !/g, '!')
      .replace(/ ,/g, ',')
      .replace(/ ' /g, "'")
      .replace(/ n't/g, "n't")
      .replace(/ 'm/g, "'m")
      .replace(/ 's/g, "'s")
      .replace(/ 've/g, "'ve")
      .replace(/ 're/g, "'re");
  }
}

