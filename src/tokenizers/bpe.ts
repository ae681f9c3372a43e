/**
 * GPT-2 style byte-level BPE. Text is split by GPT-2's pre-tokenization regex; each piece's UTF-8 bytes are mapped
 * to printable characters by GPT-2's bytes_to_unicode table (so the vocabulary has no raw bytes or spaces: a space is
 * "Ġ"); then the pair with the lowest merge rank is merged repeatedly. Words are cached. Decoding maps the characters
 * back to bytes, so decode(encode(x)) === x for any string of valid UTF-16.
 *
 * Special tokens such as <|endoftext|> are not recognised inside text (as GPT-2's own encoder.py); add their ids directly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { mergePairs } from './merge.ts';
import type { SpecialIds, Tokenizer } from './types.ts';

/** GPT-2's pre-tokenizer: contractions, letters, numbers, other symbols (each with an optional leading space), spaces. */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's bytes_to_unicode: the 188 printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the
 * other 68 bytes, in increasing order, get the code points 256, 257, ….
 */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(printable(b) ? b : 256 + extra++);
  return table;
}

export class ByteLevelBPETokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  private readonly vocab: Map<string, number>;
  private readonly inv: string[] = [];
  /** key a * vocabSize + b → { merged id, rank } */
  private readonly merges = new Map<number, { id: number; priority: number }>();
  private readonly byteIds = new Int32Array(256);
  private readonly charToByte = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();

  /**
   * @param vocab token string (byte-level characters) → id
   * @param merges merge rules in rank order, each a pair of token strings
   */
  constructor(vocab: Map<string, number> | Record<string, number>, merges: readonly (readonly [string, string])[], opts: { specialTokens?: string[] } = {}) {
    if (vocab === null || typeof vocab !== 'object' || Array.isArray(vocab)) throw new Error('ByteLevelBPETokenizer: the vocabulary must be an object of token → id');
    this.vocab = vocab instanceof Map ? new Map(vocab) : new Map(Object.entries(vocab));
    let maxId = -1;
    // ids index the vocabulary: one past the last id cannot exceed the number of entries (no huge claimed sizes)
    const count = this.vocab.size;
    for (const [t, i] of this.vocab) {
      if (!Number.isInteger(i) || i < 0 || i >= count)
        throw new Error(`ByteLevelBPETokenizer: token ${JSON.stringify(t).slice(0, 80)} has an invalid id ${JSON.stringify(i)?.slice(0, 40)} (expected an integer in [0, ${count}))`);
      this.inv[i] = t;
      if (i > maxId) maxId = i;
    }
    this.vocabSize = maxId + 1;
    const table = bytesToUnicode();
    for (let b = 0; b < 256; b++) {
      const id = this.vocab.get(table[b]!);
      if (id === undefined) throw new Error(`ByteLevelBPETokenizer: the vocabulary lacks the byte token ${JSON.stringify(table[b])} (byte ${b})`);
      this.byteIds[b] = id;
      this.charToByte.set(table[b]!, b);
    }
    merges.forEach(([a, b], rank) => {
      if (typeof a !== 'string' || typeof b !== 'string') throw new Error(`ByteLevelBPETokenizer: merge ${rank} is not a pair of strings`);
      const ia = this.vocab.get(a);
      const ib = this.vocab.get(b);
      const im = this.vocab.get(a + b);
      if (ia === undefined || ib === undefined || im === undefined) return; // a rule that cannot apply
      const key = ia * this.vocabSize + ib;
      if (!this.merges.has(key)) this.merges.set(key, { id: im, priority: rank });
    });
    const specials = opts.specialTokens ?? ['<|endoftext|>'];
    const special = specials.map((t) => this.vocab.get(t)).find((i) => i !== undefined);
    this.specialIds = special === undefined ? {} : { bos: special, eos: special };
  }

  /** GPT-2's encoder.json (token → id) and vocab.bpe / merges.txt (one "a b" rule per line, optional #version header). */
  static fromFiles(encoderJsonPath: string, mergesPath: string): ByteLevelBPETokenizer {
    const read = (p: string) => {
      try {
        return fs.readFileSync(p, 'utf8');
      } catch (e) {
        throw new Error(`${p}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    };
    let vocab: Record<string, number>;
    try {
      vocab = JSON.parse(read(encoderJsonPath));
    } catch (e) {
      if ((e as Error).message.startsWith(encoderJsonPath)) throw e;
      throw new Error(`${encoderJsonPath}: invalid JSON (${(e as Error).message})`);
    }
    const merges = parseMerges(read(mergesPath), mergesPath);
    try {
      return new ByteLevelBPETokenizer(vocab, merges);
    } catch (e) {
      throw new Error(`${encoderJsonPath}: ${(e as Error).message}`);
    }
  }

  /** A Hugging Face tokenizer.json with a BPE model (e.g. gpt2's); `p` is the file or its folder. */
  static fromTokenizerJson(p: string): ByteLevelBPETokenizer {
    const file = fs.existsSync(p) && fs.statSync(p).isDirectory() ? path.join(p, 'tokenizer.json') : p;
    let json: { model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] }; added_tokens?: { content: string; special?: boolean }[] };
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${file}: cannot read tokenizer.json (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const m = json !== null && typeof json === 'object' ? json.model : undefined;
    if (!m || typeof m !== 'object' || (m.type !== undefined && m.type !== 'BPE') || !m.vocab || typeof m.vocab !== 'object' || Array.isArray(m.vocab) || !Array.isArray(m.merges))
      throw new Error(`${file}: not a BPE tokenizer.json (model.type ${JSON.stringify(m?.type)?.slice(0, 40)}; need model.vocab and model.merges)`);
    const merges = m.merges.map((r, i) => {
      if (Array.isArray(r) && r.length === 2 && typeof r[0] === 'string' && typeof r[1] === 'string') return [r[0], r[1]] as const;
      if (typeof r === 'string') return splitRule(r, `${file}: model.merges[${i}]`);
      throw new Error(`${file}: model.merges[${i}] is neither "a b" nor ["a", "b"]`);
    });
    const added = json.added_tokens ?? [];
    if (!Array.isArray(added)) throw new Error(`${file}: added_tokens must be an array`);
    const specials = added.map((t, i) => {
      if (t === null || typeof t !== 'object' || typeof t.content !== 'string') throw new Error(`${file}: added_tokens[${i}].content must be a string`);
      return t.special ? t.content : undefined;
    }).filter((t): t is string => t !== undefined);
    try {
      return new ByteLevelBPETokenizer(m.vocab, merges, specials.length ? { specialTokens: specials } : {});
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
  }

  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.inv[id];
  }

  /** Split into GPT-2 pre-tokens (before the byte mapping). */
  preTokenize(text: string): string[] {
    return text.match(GPT2_PATTERN) ?? [];
  }

  private pair = (a: number, b: number) => this.merges.get(a * this.vocabSize + b);

  /** BPE ids of one pre-token. */
  wordIds(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const bytes = this.encoder.encode(word);
    const sym = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) sym[i] = this.byteIds[bytes[i]!]!;
    const ids = mergePairs(sym, this.pair);
    if (this.cache.size >= 100000) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /** Ids of the text; GPT-2 adds no special tokens, so opts.addSpecialTokens has no effect. */
  encode(text: string, _opts: { addSpecialTokens?: boolean } = {}): number[] {
    const out: number[] = [];
    for (const m of text.matchAll(GPT2_PATTERN)) for (const id of this.wordIds(m[0])) out.push(id);
    return out;
  }

  /** Exact text back (invalid UTF-8 from a partial sequence becomes U+FFFD); <|endoftext|> is skipped by default. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    const bytes: number[] = [];
    const enc = this.encoder;
    for (const id of ids) {
      const t = this.inv[id];
      if (t === undefined) throw new Error(`decode: token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
      if (id === this.specialIds.eos) {
        if (skip) continue;
        for (const b of enc.encode(t)) bytes.push(b);
        continue;
      }
      for (const ch of t) {
        const b = this.charToByte.get(ch);
        if (b !== undefined) bytes.push(b);
        else for (const x of enc.encode(ch)) bytes.push(x); // not a byte-level character (an added token): as text
      }
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes));
  }
}

function splitRule(line: string, where: string): readonly [string, string] {
  const sp = line.indexOf(' ');
  if (sp <= 0 || sp === line.length - 1 || line.indexOf(' ', sp + 1) !== -1) throw new Error(`${where}: bad merge rule ${JSON.stringify(line.slice(0, 120))}`);
  return [line.slice(0, sp), line.slice(sp + 1)] as const;
}

/** Merge rules of a vocab.bpe / merges.txt, in rank order. */
export function parseMerges(text: string, file = 'merges'): (readonly [string, string])[] {
  const out: (readonly [string, string])[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    out.push(splitRule(line, `${file}:${i + 1}`));
  });
  return out;
}
