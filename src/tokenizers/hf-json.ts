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
    return new HFJsonTokenizer(read('tokenizer.json', true), read('tokenizer_config.json', false));
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }
  encodePair(a: string, b: string): { ids: number[]; tokenTypeIds: number[] } {
    const e = this.tok.encode(a, { text_pair: b, return_token_type_ids: true }) as { ids: number[]; token_type_ids?: number[] };
    return { ids: e.ids, tokenTypeIds: e.token_type_ids ?? e.ids.map(() => 0) };
  }
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? true });
  }
  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.inv[id];
  }
}
