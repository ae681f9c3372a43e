/**
 * Any Hugging Face tokenizer.json folder (WordPiece, BPE, Unigram, …) through @huggingface/tokenizers (pure JS),
 * behind the common Tokenizer interface. tokenizer_config.json is read when present.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import type { SpecialIds, Tokenizer } from './types.ts';

type Json = Record<string, unknown>;

/** A tokenizer.json folder through @huggingface/tokenizers, behind the same interface. */
export class HFJsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  private readonly tok: HFTokenizer;
  private readonly vocab: Map<string, number>;
  private readonly inv: string[];

  constructor(tokenizerJson: Json, tokenizerConfig: Json = {}) {
    this.tok = new HFTokenizer(tokenizerJson as never, tokenizerConfig as never);
    const model = (tokenizerJson as { model?: { vocab?: Record<string, number> | [string, number][] } }).model;
    const v = model?.vocab ?? {};
    // Unigram vocabularies are [piece, score] lists (id = index); the others map token → id
    this.vocab = new Map(Array.isArray(v) ? v.map(([t], i) => [t, i] as [string, number]) : Object.entries(v));
    for (const a of (tokenizerJson.added_tokens ?? []) as { id: number; content: string }[]) if (!this.vocab.has(a.content)) this.vocab.set(a.content, a.id);
    this.inv = [];
    for (const [t, i] of this.vocab) this.inv[i] = t;
    this.vocabSize = this.inv.length;
    const id = (key: string, ...defaults: string[]) => {
      const c = tokenizerConfig[key];
      const name = typeof c === 'string' ? c : c && typeof c === 'object' ? (c as { content?: string }).content : undefined;
      for (const t of name !== undefined ? [name] : defaults) {
        const i = this.vocab.get(t);
        if (i !== undefined) return i;
      }
      return undefined;
    };
    const ids: SpecialIds = {
      pad: id('pad_token', '[PAD]', '<pad>'),
      unk: id('unk_token', '[UNK]', '<unk>'),
      cls: id('cls_token', '[CLS]'),
      sep: id('sep_token', '[SEP]'),
      mask: id('mask_token', '[MASK]', '<mask>'),
      bos: id('bos_token', '<s>', '<|endoftext|>'),
      eos: id('eos_token', '</s>', '<|endoftext|>'),
    };
    for (const k of Object.keys(ids) as (keyof SpecialIds)[]) if (ids[k] === undefined) delete ids[k];
    this.specialIds = ids;
  }

  /** dir/tokenizer.json (required) and dir/tokenizer_config.json (optional). */
  static fromDir(dir: string): HFJsonTokenizer {
    const read = (f: string, required: boolean): Json => {
      const p = path.join(dir, f);
      if (!fs.existsSync(p)) {
        if (required) throw new Error(`${p}: missing`);
        return {};
      }
      try {
        return JSON.parse(fs.readFileSync(p, 'utf8')) as Json;
      } catch (e) {
        throw new Error(`${p}: invalid JSON (${(e as Error).message})`);
      }
    };
    const file = path.join(dir, 'tokenizer.json');
    const json = read('tokenizer.json', true);
    const cfg = read('tokenizer_config.json', false);
    checkTokenizerJson(json, file);
    if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new Error(`${path.join(dir, 'tokenizer_config.json')}: not a JSON object`);
    try {
      const tok = new HFJsonTokenizer(json, cfg);
      // @huggingface/tokenizers builds normalizers, pre-tokenizers and decoders lazily from whatever the file says:
      // run them once so that a file that cannot encode fails here, with its name, rather than in the first encode.
      tok.decode(tok.encode('Hello, world! 1 é 中', { addSpecialTokens: true }), { skipSpecialTokens: false });
      return tok;
    } catch (e) {
      throw new Error(`${file}: not a usable tokenizer.json (${(e as Error)?.message ?? String(e)})`);
    }
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }
  encodePair(a: string, b: string): { ids: number[]; tokenTypeIds: number[] } {
    const e = this.tok.encode(a, { text_pair: b, return_token_type_ids: true }) as { ids: number[]; token_type_ids?: number[] };
    return { ids: e.ids, tokenTypeIds: e.token_type_ids ?? e.ids.map(() => 0) };
  }
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`decode: token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
    if (ids.length === 0) return ''; // @huggingface/tokenizers throws on an empty list
    return this.tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? true });
  }
  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.inv[id];
  }
}

/**
 * The parts of a tokenizer.json this class reads itself, checked before @huggingface/tokenizers sees them: a JSON
 * object; model.vocab a token → id object (or a Unigram [piece, score] list); added_tokens a list of { id, content }.
 * Ids must be integers below the number of entries the file defines (vocab + added tokens), so a file cannot claim a
 * vocabulary larger than itself.
 */
function checkTokenizerJson(json: unknown, file: string): asserts json is Json {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${file}: not a JSON object`);
  const j = json as { model?: unknown; added_tokens?: unknown };
  if (j.model === null || typeof j.model !== 'object' || Array.isArray(j.model)) throw new Error(`${file}: model must be an object`);
  const vocab = (j.model as { vocab?: unknown }).vocab;
  const added = j.added_tokens ?? [];
  if (!Array.isArray(added)) throw new Error(`${file}: added_tokens must be an array`);
  let entries = added.length;
  if (Array.isArray(vocab)) {
    entries += vocab.length;
    vocab.forEach((e: unknown, i) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1]))
        throw new Error(`${file}: model.vocab[${i}] must be a [piece, score] pair`);
    });
  } else if (vocab !== null && typeof vocab === 'object') {
    const v = vocab as Record<string, unknown>;
    const keys = Object.keys(v);
    entries += keys.length;
    for (const t of keys) {
      const id = v[t];
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= entries)
        throw new Error(`${file}: model.vocab[${JSON.stringify(t).slice(0, 80)}] must be an integer id in [0, ${entries}), got ${String(JSON.stringify(id)).slice(0, 40)}`);
    }
  } else throw new Error(`${file}: model.vocab must be an object of token → id or a list of [piece, score]`);
  added.forEach((a: unknown, i) => {
    const { id, content } = (a ?? {}) as { id?: unknown; content?: unknown };
    if (a === null || typeof a !== 'object' || typeof content !== 'string') throw new Error(`${file}: added_tokens[${i}].content must be a string`);
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= entries)
      throw new Error(`${file}: added_tokens[${i}].id must be an integer in [0, ${entries}), got ${String(JSON.stringify(id)).slice(0, 40)}`);
  });
}
