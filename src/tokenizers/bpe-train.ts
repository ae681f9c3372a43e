/**
 * Training a GPT-2 style byte-level BPE tokenizer from text, and saving it as a folder `loadTokenizer` reads.
 *
 * Semantics (as GPT-2 / Hugging Face's ByteLevel BPE trainer): each text is split by GPT2_PATTERN; each piece's UTF-8
 * bytes are mapped through bytesToUnicode, and identical pieces ("words") are counted. The starting vocabulary is the
 * special tokens (ids 0 … k-1, in the order given), then all 256 byte symbols in byte order (ids k … k+255), so any
 * input encodes without an unknown token. Then, repeatedly, the adjacent symbol pair with the highest total count
 * (each occurrence weighted by its word's frequency) is merged into a new token, given the next id, until the
 * vocabulary has `vocabSize` entries or the best pair occurs fewer than `minFrequency` times.
 *
 * Ties: among pairs of equal count the one whose (left, right) token strings are smallest wins, comparing the left
 * strings first and then the right ones, by UTF-16 code units (JavaScript's `<`; every byte-level symbol is in the
 * BMP, so this is also code-point order). The result depends on nothing else (not on the order of the texts, nor on
 * Map iteration order), so the same texts always give the same vocabulary and merges.
 *
 * Two corner cases: a merge whose result is a token string already in the vocabulary (reached by another split, e.g.
 * "ab"+"c" after "a"+"bc") is recorded as a merge rule but reuses that token's id and does not grow the vocabulary;
 * a merge whose result would spell a special token (e.g. "<s>" from "<s" + ">") is never made — that pair is
 * dropped — so a special token can only come from its id, never from text.
 *
 * Speed: pair counts are kept incrementally. Each pair knows its count and the words it occurs in; a merge rewrites
 * only those words and applies the count changes; the best pair comes from a lazy max-heap (an entry whose count is
 * out of date is re-pushed with its current count when it reaches the top).
 */
import fs from 'node:fs';
import path from 'node:path';
import { GPT2_PATTERN, bytesToUnicode } from './bpe.ts';
import { writeDirAtomic } from '../io/outdir.ts';

export interface TrainBpeOptions {
  /** Size of the final vocabulary, special tokens and the 256 byte symbols included. */
  vocabSize: number;
  /** A pair is merged only when it occurs at least this many times (default 2). */
  minFrequency?: number;
  /** Tokens that take the first ids, in this order (default ['<|endoftext|>']). */
  specialTokens?: string[];
  /** Called after the words are counted (done 0) and after every merge: done new tokens out of at most total. */
  onProgress?(done: number, total: number): void;
}

export interface TrainedBpe {
  /** Token string (byte-level characters, or a special token) → id. */
  vocab: Map<string, number>;
  /** Merge rules in the order learned (rank order). */
  merges: [string, string][];
  /** Texts read. */
  texts: number;
  /** GPT-2 pre-tokens ("words") counted over all texts. */
  words: number;
  /** Distinct pre-tokens. */
  distinctWords: number;
}

export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ['<|endoftext|>'];

/** The options with defaults filled in; throws on anything invalid. */
function checkOptions(opts: TrainBpeOptions): { vocabSize: number; minFrequency: number; specialTokens: string[] } {
  if (opts === null || typeof opts !== 'object') throw new Error('trainByteLevelBpe: options must be an object with vocabSize');
  const specialTokens = opts.specialTokens ?? [...DEFAULT_SPECIAL_TOKENS];
  if (!Array.isArray(specialTokens)) throw new Error('trainByteLevelBpe: specialTokens must be an array of strings');
  const table = new Set(bytesToUnicode());
  const seen = new Set<string>();
  for (const t of specialTokens) {
    if (typeof t !== 'string' || t === '') throw new Error(`trainByteLevelBpe: special tokens must be non-empty strings, got ${JSON.stringify(t)}`);
    if (seen.has(t)) throw new Error(`trainByteLevelBpe: special token ${JSON.stringify(t)} is listed twice`);
    if (table.has(t)) throw new Error(`trainByteLevelBpe: special token ${JSON.stringify(t)} is a byte symbol`);
    seen.add(t);
  }
  const min = 256 + specialTokens.length;
  const v = opts.vocabSize;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new Error(`trainByteLevelBpe: vocabSize must be an integer >= ${min} (256 byte symbols + ${specialTokens.length} special token${specialTokens.length === 1 ? '' : 's'}), got ${String(v)}`);
  if (v > 1 << 24) throw new Error(`trainByteLevelBpe: vocabSize must be at most ${1 << 24}, got ${v}`);
  const minFrequency = opts.minFrequency ?? 2;
  if (typeof minFrequency !== 'number' || !Number.isInteger(minFrequency) || minFrequency < 1)
    throw new Error(`trainByteLevelBpe: minFrequency must be an integer >= 1, got ${String(minFrequency)}`);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw new Error('trainByteLevelBpe: onProgress must be a function');
  return { vocabSize: v, minFrequency, specialTokens: [...specialTokens] };
}

/** Learn a byte-level BPE vocabulary and merge rules from texts (see the module comment for the exact rules). */
export function trainByteLevelBpe(texts: Iterable<string>, opts: TrainBpeOptions): TrainedBpe {
  const { vocabSize: V, minFrequency, specialTokens } = checkOptions(opts);
  if (texts === null || typeof texts !== 'object' || typeof (texts as Iterable<string>)[Symbol.iterator] !== 'function')
    throw new Error('trainByteLevelBpe: texts must be an iterable of strings');

  // 1. count pre-tokens
  const pieces = new Map<string, number>();
  let nTexts = 0;
  let nWords = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new Error(`trainByteLevelBpe: text ${nTexts} is not a string (${typeof text})`);
    nTexts++;
    for (const m of text.matchAll(GPT2_PATTERN)) {
      const w = m[0];
      pieces.set(w, (pieces.get(w) ?? 0) + 1);
      nWords++;
    }
  }

  // 2. initial vocabulary: specials, then the 256 byte symbols in byte order
  const byteSym = bytesToUnicode();
  const tokStr: string[] = [...specialTokens, ...byteSym];
  const vocab = new Map<string, number>();
  tokStr.forEach((t, i) => vocab.set(t, i));
  const specials = new Set(specialTokens);
  const k = specialTokens.length;

  // 3. words as symbol-id sequences (only those with at least one pair matter for merging)
  const enc = new TextEncoder();
  const words: Int32Array[] = [];
  const freqs: number[] = [];
  for (const [w, f] of pieces) {
    const bytes = enc.encode(w);
    if (bytes.length < 2) continue;
    const s = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) s[i] = k + bytes[i]!;
    words.push(s);
    freqs.push(f);
  }
  const wordLen = words.map((s) => s.length);

  // 4. pair statistics: key = left * V + right (ids < V)
  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (let wi = 0; wi < words.length; wi++) {
    const s = words[wi]!;
    const f = freqs[wi]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i]! * V + s[i + 1]!;
      counts.set(key, (counts.get(key) ?? 0) + f);
      let set = where.get(key);
      if (!set) where.set(key, (set = new Set()));
      set.add(wi);
    }
  }

  // lazy max-heap of (count, key): higher count first, then the smaller (left, right) strings
  const hc: number[] = [];
  const hk: number[] = [];
  const better = (i: number, j: number): boolean => {
    if (hc[i] !== hc[j]) return hc[i]! > hc[j]!;
    const a = hk[i]!;
    const b = hk[j]!;
    const la = tokStr[Math.floor(a / V)]!;
    const lb = tokStr[Math.floor(b / V)]!;
    if (la !== lb) return la < lb;
    return tokStr[a % V]! < tokStr[b % V]!;
  };
  const swap = (i: number, j: number) => {
    const c = hc[i]!;
    hc[i] = hc[j]!;
    hc[j] = c;
    const x = hk[i]!;
    hk[i] = hk[j]!;
    hk[j] = x;
  };
  const push = (count: number, key: number) => {
    hc.push(count);
    hk.push(key);
    let i = hc.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(i, p)) break;
      swap(i, p);
      i = p;
    }
  };
  const pop = () => {
    const last = hc.length - 1;
    swap(0, last);
    hc.pop();
    hk.pop();
    let i = 0;
    const n = hc.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && better(l, m)) m = l;
      if (r < n && better(r, m)) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
  };
  // keys are pushed in sorted order so that the heap's content does not depend on Map insertion order
  for (const key of [...counts.keys()].sort((a, b) => a - b)) push(counts.get(key)!, key);

  // 5. merges
  const merges: [string, string][] = [];
  const total = V - tokStr.length;
  opts.onProgress?.(0, total);
  while (vocab.size < V && hc.length > 0) {
    const count = hc[0]!;
    const key = hk[0]!;
    pop();
    const cur = counts.get(key) ?? 0;
    if (cur !== count) {
      if (cur > 0) push(cur, key); // stale entry: back in with its current count
      continue;
    }
    if (count < minFrequency) break;
    const a = Math.floor(key / V);
    const b = key % V;
    const merged = tokStr[a]! + tokStr[b]!;
    if (specials.has(merged)) {
      // never spell a special token from text: drop this pair for good
      counts.delete(key);
      where.delete(key);
      continue;
    }
    let id = vocab.get(merged);
    if (id === undefined) {
      id = tokStr.length;
      tokStr.push(merged);
      vocab.set(merged, id);
    }
    merges.push([tokStr[a]!, tokStr[b]!]);

    const delta = new Map<number, number>();
    const add = (kk: number, d: number) => delta.set(kk, (delta.get(kk) ?? 0) + d);
    const ws = where.get(key);
    where.delete(key);
    if (ws) {
      for (const wi of ws) {
        const s = words[wi]!;
        const n = wordLen[wi]!;
        const f = freqs[wi]!;
        // does the word still hold the pair? (its set entry may be stale)
        let hit = false;
        for (let i = 0; i + 1 < n; i++)
          if (s[i] === a && s[i + 1] === b) {
            hit = true;
            break;
          }
        if (!hit) continue;
        for (let i = 0; i + 1 < n; i++) add(s[i]! * V + s[i + 1]!, -f);
        let o = 0;
        for (let i = 0; i < n; ) {
          if (i + 1 < n && s[i] === a && s[i + 1] === b) {
            s[o++] = id;
            i += 2;
          } else s[o++] = s[i++]!;
        }
        wordLen[wi] = o;
        for (let i = 0; i + 1 < o; i++) {
          const kk = s[i]! * V + s[i + 1]!;
          add(kk, f);
          if (s[i] === id || s[i + 1] === id) {
            let set = where.get(kk);
            if (!set) where.set(kk, (set = new Set()));
            set.add(wi);
          }
        }
      }
    }
    counts.delete(key);
    for (const [kk, d] of delta) {
      if (d === 0 || kk === key) continue;
      const c = (counts.get(kk) ?? 0) + d;
      if (c <= 0) {
        counts.delete(kk);
        where.delete(kk);
      } else {
        counts.set(kk, c);
        if (d > 0) push(c, kk);
      }
    }
    opts.onProgress?.(vocab.size - (k + 256), total);
  }
  return { vocab, merges, texts: nTexts, words: nWords, distinctWords: pieces.size };
}

/** Special tokens of a vocabulary: the given ones that it holds (default ['<|endoftext|>']). */
function specialsOf(vocab: Map<string, number>, specialTokens: readonly string[]): { id: number; content: string }[] {
  return specialTokens.map((t) => {
    const id = vocab.get(t);
    if (id === undefined) throw new Error(`saveBpeTokenizer: special token ${JSON.stringify(t)} is not in the vocabulary`);
    return { id, content: t };
  });
}

/** The Hugging Face tokenizer.json of a byte-level BPE (GPT-2 layout: no normalizer, ByteLevel pre-tokenizer and decoder). */
export function bpeTokenizerJson(bpe: { vocab: Map<string, number>; merges: readonly (readonly [string, string])[] }, specialTokens: readonly string[] = DEFAULT_SPECIAL_TOKENS): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const sorted = [...bpe.vocab].sort((x, y) => x[1] - y[1]);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialsOf(bpe.vocab, specialTokens).map(({ id, content }) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(sorted),
      merges: bpe.merges.map(([a, b]) => [a, b]),
    },
  };
}

/**
 * Write a trained byte-level BPE as a tokenizer folder, atomically (a temp sibling renamed into place): tokenizer.json
 * (what loadTokenizer reads), vocab.json + merges.txt (GPT-2's layout, `#version: 0.2` header), tokenizer_config.json
 * and special_tokens_map.json (bos/eos/unk = the first special token). A non-empty `dir` is refused unless force.
 */
export function saveBpeTokenizer(
  dir: string,
  bpe: { vocab: Map<string, number>; merges: readonly (readonly [string, string])[] },
  opts: { specialTokens?: readonly string[]; force?: boolean } = {},
): void {
  const specialTokens = opts.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  for (const [a, b] of bpe.merges)
    if (a.includes(' ') || b.includes(' ') || a.includes('\n') || b.includes('\n')) throw new Error(`saveBpeTokenizer: merge ${JSON.stringify([a, b])} holds a space or newline (not byte-level symbols)`);
  const json = bpeTokenizerJson(bpe, specialTokens);
  const sorted = [...bpe.vocab].sort((x, y) => x[1] - y[1]);
  const first = specialTokens[0];
  const config: Record<string, unknown> = {
    tokenizer_class: 'GPT2Tokenizer',
    add_prefix_space: false,
    model_max_length: 1024,
    ...(first !== undefined ? { bos_token: first, eos_token: first, unk_token: first } : {}),
  };
  const map = first !== undefined ? { bos_token: first, eos_token: first, unk_token: first } : {};
  writeDirAtomic(
    dir,
    (tmp) => {
      const w = (f: string, text: string) => fs.writeFileSync(path.join(tmp, f), text);
      w('tokenizer.json', JSON.stringify(json) + '\n');
      w('vocab.json', JSON.stringify(Object.fromEntries(sorted)) + '\n');
      w('merges.txt', ['#version: 0.2', ...bpe.merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n');
      w('tokenizer_config.json', JSON.stringify(config, null, 2) + '\n');
      w('special_tokens_map.json', JSON.stringify(map, null, 2) + '\n');
    },
    { force: opts.force },
  );
}
