/**
 * A Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) for model folders that have only the tokenizer files
 * Shrink reads natively, so exported ONNX folders load in transformers.js / `tokenizers`:
 *
 * - BERT `vocab.txt` → WordPiece: BertNormalizer (clean text, CJK spacing, lowercase and accent stripping as the
 *   folder's tokenizer_config.json says; Shrink's defaults otherwise: lowercase, strip accents = lowercase),
 *   BertPreTokenizer, WordPiece with `##` continuations and [UNK] (words over 100 characters too),
 *   TemplateProcessing `[CLS] $A [SEP]` / `[CLS] $A [SEP] $B [SEP]` (type ids 0 / 1), WordPiece decoder.
 * - llama2.c `tok512.bin` / `tokenizer.bin` (stories260K) → the Llama "legacy" SentencePiece layout: normalizer
 *   Prepend("▁") + Replace(" " → "▁") (SentencePiece's dummy prefix and space marker), no pre-tokenizer, BPE with
 *   byte_fallback over the pieces (spaces written as ▁; ids 0–2 named <unk>, <s>, </s>) and merges derived from the
 *   scores: every split of a piece into two pieces is a merge, ranked by the merged piece's score (highest first),
 *   which is llama2.c's rule "merge the adjacent pair whose concatenation is the piece with the highest score";
 *   TemplateProcessing `<s> $A`; decoder ▁ → space, byte fallback, fuse, strip the leading space.
 *
 * Both are checked by test/export/tokenizer-json.test.ts: @huggingface/tokenizers gives the same ids as Shrink's own
 * tokenizer. Known differences from llama2.c's encode(), both as with Hugging Face's own Llama tokenizer.json files:
 * `<unk>`, `<s>`, `</s>` written in the text are matched as the special tokens (added tokens), where llama2.c spells
 * them out piece by piece; and for the empty string @huggingface/tokenizers' Prepend still adds "▁" (one extra token
 * after <s>), where llama2.c gives only <s>.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { SentencePieceBPETokenizer } from '../tokenizers/sentencepiece.ts';

type Json = Record<string, unknown>;

export interface GeneratedTokenizer {
  /** The tokenizer.json object. */
  tokenizer: Json;
  /** A tokenizer_config.json for folders without one (transformers.js needs both files). */
  config: Json;
  /** What it was built from, e.g. "vocab.txt (WordPiece, lowercase)". */
  source: string;
}

const SPM_SPACE = '\u2581'; // ▁

function addedToken(id: number, content: string): Json {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** tokenizer.json of a BERT WordPiece vocabulary (line number = id), as HF's BertTokenizerFast writes it. */
export function wordPieceTokenizerJson(tokens: readonly string[], opts: { lowercase?: boolean; stripAccents?: boolean; maxInputCharsPerWord?: number } = {}): Json {
  const lowercase = opts.lowercase ?? true;
  const stripAccents = opts.stripAccents ?? lowercase;
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!Object.hasOwn(vocab, t)) vocab[t] = i; // first occurrence wins, as in Shrink's WordPieceTokenizer
  });
  const id = (t: string) => {
    if (!Object.hasOwn(vocab, t)) throw new Error(`WordPiece vocabulary has no ${t} token`);
    return vocab[t]!;
  };
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const seq = (s: 'A' | 'B', type: number) => ({ Sequence: { id: s, type_id: type } });
  const sp = (t: string, type: number) => ({ SpecialToken: { id: t, type_id: type } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => addedToken(id(t), t)).sort((a, b) => (a.id as number) - (b.id as number)),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: stripAccents, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [sp('[CLS]', 0), seq('A', 0), sp('[SEP]', 0)],
      pair: [sp('[CLS]', 0), seq('A', 0), sp('[SEP]', 0), seq('B', 1), sp('[SEP]', 1)],
      special_tokens: Object.fromEntries(['[CLS]', '[SEP]'].map((t) => [t, { id: t, ids: [id(t)], tokens: [t] }])),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: opts.maxInputCharsPerWord ?? 100, vocab },
  };
}

/**
 * tokenizer.json of a llama2.c / SentencePiece-style BPE vocabulary (pieces with plain spaces, their scores; ids
 * 0, 1, 2 = unk, bos, eos; 3..258 the byte pieces <0x00>..<0xFF>), in the layout of HF's Llama tokenizers.
 */
export function sentencePieceBpeTokenizerJson(pieces: readonly string[], scores: ArrayLike<number>): Json {
  const names = ['<unk>', '<s>', '</s>'];
  const toks = pieces.map((p, i) => (i < 3 ? names[i]! : p.replaceAll(' ', SPM_SPACE)));
  const vocab: Record<string, number> = {};
  toks.forEach((t, i) => {
    if (Object.hasOwn(vocab, t)) throw new Error(`SentencePiece vocabulary: piece ${JSON.stringify(t)} appears twice (ids ${vocab[t]} and ${i})`);
    vocab[t] = i;
  });
  // merges: each split (left, right) of a piece into two pieces, ranked by the piece's score (highest first; ties by
  // id, then by the split's ids) — llama2.c merges the adjacent pair whose concatenation scores highest
  const merges: { pair: [string, string]; score: number; id: number; l: number; r: number }[] = [];
  toks.forEach((t, id) => {
    if (id < 259) return; // specials and byte pieces are never merge results
    const cps = [...t];
    for (let k = 1; k < cps.length; k++) {
      const left = cps.slice(0, k).join('');
      const right = cps.slice(k).join('');
      const l = vocab[left];
      const r = vocab[right];
      if (l !== undefined && r !== undefined && l >= 3 && r >= 3) merges.push({ pair: [left, right], score: scores[id]!, id, l, r });
    }
  });
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.l - b.l || a.r - b.r);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: names.map((t, i) => addedToken(i, t)),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPM_SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPM_SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPM_SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => m.pair),
    },
  };
}

function readJson(p: string): Json {
  if (!fs.existsSync(p)) return {};
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8')) as Json;
  } catch (e) {
    throw new Error(`${p}: invalid JSON (${(e as Error).message})`);
  }
}

/**
 * A tokenizer.json for the model folder `dir` built from its vocab.txt (WordPiece) or llama2.c tokenizer
 * (tok512.bin / tokenizer.bin), or null when it has neither (or already has a tokenizer.json).
 * `modelMaxLength` goes into the generated tokenizer_config.json.
 */
export function tokenizerJsonFor(dir: string, modelMaxLength?: number): GeneratedTokenizer | null {
  const has = (f: string) => fs.existsSync(path.join(dir, f));
  if (has('tokenizer.json')) return null;
  const cfg = readJson(path.join(dir, 'tokenizer_config.json'));
  const maxLen = modelMaxLength !== undefined ? { model_max_length: modelMaxLength } : {};
  if (has('vocab.txt')) {
    const lowercase = typeof cfg.do_lower_case === 'boolean' ? cfg.do_lower_case : true;
    const stripAccents = typeof cfg.strip_accents === 'boolean' ? cfg.strip_accents : lowercase;
    const wp = WordPieceTokenizer.fromVocabFile(path.join(dir, 'vocab.txt'), { doLowerCase: lowercase, stripAccents });
    return {
      tokenizer: wordPieceTokenizerJson(wp.tokens, { lowercase, stripAccents }),
      config: {
        tokenizer_class: 'BertTokenizer',
        do_lower_case: lowercase,
        strip_accents: stripAccents,
        tokenize_chinese_chars: true,
        clean_up_tokenization_spaces: true,
        unk_token: '[UNK]',
        sep_token: '[SEP]',
        pad_token: '[PAD]',
        cls_token: '[CLS]',
        mask_token: '[MASK]',
        ...maxLen,
      },
      source: `vocab.txt (WordPiece${lowercase ? ', lowercase' : ', cased'}${stripAccents ? ', accents stripped' : ''})`,
    };
  }
  for (const f of ['tok512.bin', 'tokenizer.bin']) {
    if (!has(f)) continue;
    const sp = SentencePieceBPETokenizer.fromLlama2cBin(path.join(dir, f));
    return {
      tokenizer: sentencePieceBpeTokenizerJson(sp.pieces, sp.scores),
      config: {
        tokenizer_class: 'LlamaTokenizer',
        bos_token: '<s>',
        eos_token: '</s>',
        unk_token: '<unk>',
        add_bos_token: true,
        add_eos_token: false,
        legacy: true,
        clean_up_tokenization_spaces: false,
        ...maxLen,
      },
      source: `${f} (llama2.c SentencePiece BPE with byte fallback, merges ranked by piece score)`,
    };
  }
  return null;
}
