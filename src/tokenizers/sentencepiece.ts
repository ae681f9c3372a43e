/**
 * The 512-token Llama/SentencePiece-style BPE tokenizer of stories260K, read from llama2.c's tokenizer .bin
 * (int32 max_token_length, then per token: float32 score, int32 byte length, bytes) or from its JSON dump
 * (tokenizer_vocab.json). Encoding follows llama2.c's `encode()`, the reference this model was trained with: a
 * dummy-prefix space before non-empty text (SentencePiece's add_dummy_prefix), each UTF-8 character mapped to its
 * piece or to byte-fallback tokens <0xNN> (id = byte + 3), then repeatedly merge the adjacent pair whose concatenation
 * is a piece with the highest score (ties: leftmost). Pieces use a plain space where SentencePiece writes ▁.
 * Merging runs on a heap (same order as llama2.c's rescan), so a whole document can be encoded in one call.
 */
import fs from 'node:fs';
import { mergePairs } from './merge.ts';
import type { SpecialIds, Tokenizer } from './types.ts';

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

export class SentencePieceBPETokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds = { unk: 0, bos: 1, eos: 2 };
  private readonly ids = new Map<string, number>();
  /** pair key a * vocabSize + b → merged id and priority (-score); null when the pair does not merge */
  private readonly pairCache = new Map<number, { id: number; priority: number } | null>();
  private readonly charCache = new Map<string, number[]>();
  /** byte value of each <0xNN> piece, -1 for other pieces */
  private readonly byteOf: Int16Array;
  private readonly pieceBytes: Uint8Array[];

  constructor(
    readonly pieces: string[],
    readonly scores: Float32Array,
  ) {
    if (pieces.length !== scores.length) throw new Error(`SentencePieceBPETokenizer: ${pieces.length} pieces but ${scores.length} scores`);
    this.vocabSize = pieces.length;
    this.byteOf = new Int16Array(pieces.length).fill(-1);
    const enc = new TextEncoder();
    this.pieceBytes = pieces.map((p) => enc.encode(p));
    pieces.forEach((p, i) => {
      if (!this.ids.has(p)) this.ids.set(p, i);
      const m = BYTE_PIECE.exec(p);
      if (m) this.byteOf[i] = parseInt(m[1]!, 16);
    });
    let bytesOk = pieces.length >= 259;
    for (let b = 0; bytesOk && b < 256; b++) bytesOk = this.byteOf[3 + b] === b;
    if (!bytesOk) throw new Error('SentencePieceBPETokenizer: expected <unk>, <s>, </s> then the 256 byte pieces <0x00>..<0xFF> at ids 3..258');
    for (let i = 0; i < scores.length; i++)
      if (!Number.isFinite(scores[i]!)) throw new Error(`SentencePieceBPETokenizer: token ${i} has a non-finite score ${scores[i]}`);
  }

  /** Read llama2.c's tokenizer.bin (e.g. stories260K's tok512.bin); vocabSize defaults to every entry in the file. */
  static fromLlama2cBin(path: string, vocabSize?: number): SentencePieceBPETokenizer {
    if (vocabSize !== undefined && (!Number.isInteger(vocabSize) || vocabSize < 0))
      throw new Error(`${path}: vocabSize must be a non-negative integer, got ${vocabSize}`);
    let buf: Buffer;
    try {
      buf = fs.readFileSync(path);
    } catch (e) {
      throw new Error(`${path}: cannot read tokenizer (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (buf.length < 4) throw new Error(`${path}: too short for a llama2.c tokenizer (${buf.length} bytes)`);
    const pieces: string[] = [];
    const scores: number[] = [];
    let off = 4; // max_token_length
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    while (off < buf.length && (vocabSize === undefined || pieces.length < vocabSize)) {
      if (off + 8 > buf.length) throw new Error(`${path}: truncated at token ${pieces.length} (byte ${off})`);
      scores.push(buf.readFloatLE(off));
      const len = buf.readInt32LE(off + 4);
      if (len < 0 || off + 8 + len > buf.length) throw new Error(`${path}: token ${pieces.length} has an invalid length ${len}`);
      pieces.push(dec.decode(buf.subarray(off + 8, off + 8 + len)));
      off += 8 + len;
    }
    if (vocabSize !== undefined && pieces.length < vocabSize) throw new Error(`${path}: expected ${vocabSize} tokens, found ${pieces.length}`);
    try {
      return new SentencePieceBPETokenizer(pieces, Float32Array.from(scores));
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  /** Read the JSON dump of a llama2.c tokenizer: `{ tokens: [{ id, piece, bytes_hex?, score }, …] }`. */
  static fromVocabJson(path: string): SentencePieceBPETokenizer {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path}: cannot read tokenizer JSON (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const toks = json !== null && typeof json === 'object' ? (json as { tokens?: unknown }).tokens : undefined;
    if (!Array.isArray(toks)) throw new Error(`${path}: no "tokens" array`);
    const pieces = new Array<string>(toks.length);
    const scores = new Float32Array(toks.length);
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    toks.forEach((t: unknown, k) => {
      if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new Error(`${path}: tokens[${k}] is not an object`);
      const { id, piece, bytes_hex: hex, score } = t as { id?: unknown; piece?: unknown; bytes_hex?: unknown; score?: unknown };
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= toks.length || pieces[id] !== undefined)
        throw new Error(`${path}: tokens[${k}].id: token ids must be 0..${toks.length - 1}, each once (bad id ${JSON.stringify(id)})`);
      if (hex !== undefined && (typeof hex !== 'string' || !/^(?:[0-9A-Fa-f]{2})*$/.test(hex)))
        throw new Error(`${path}: tokens[${k}].bytes_hex must be a string of hex byte pairs`);
      if (hex === undefined && typeof piece !== 'string') throw new Error(`${path}: tokens[${k}].piece must be a string`);
      if (typeof score !== 'number' || !Number.isFinite(score)) throw new Error(`${path}: tokens[${k}].score must be a finite number`);
      pieces[id] = typeof hex === 'string' ? dec.decode(Buffer.from(hex, 'hex')) : (piece as string);
      scores[id] = score;
    });
    try {
      return new SentencePieceBPETokenizer(pieces, scores);
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }
  idToToken(id: number): string | undefined {
    return this.pieces[id];
  }

  private pair = (a: number, b: number): { id: number; priority: number } | undefined => {
    const key = a * this.vocabSize + b;
    let m = this.pairCache.get(key);
    if (m === undefined) {
      const id = this.ids.get(this.pieces[a]! + this.pieces[b]!);
      m = id === undefined ? null : { id, priority: -this.scores[id]! };
      this.pairCache.set(key, m);
    }
    return m ?? undefined;
  };

  private charIds(ch: string): number[] {
    let ids = this.charCache.get(ch);
    if (ids === undefined) {
      const id = this.ids.get(ch);
      ids = id !== undefined ? [id] : [...new TextEncoder().encode(ch)].map((b) => b + 3); // byte fallback <0xNN>
      this.charCache.set(ch, ids);
    }
    return ids;
  }

  /** llama2.c encode(): [bos] (addSpecialTokens, default true), dummy-prefix space, pieces, [eos] (opts.eos). */
  encode(text: string, opts: { addSpecialTokens?: boolean; eos?: boolean } = {}): number[] {
    const tokens: number[] = [];
    if (text.length > 0) {
      const dummy = this.ids.get(' ');
      if (dummy !== undefined) tokens.push(dummy);
    }
    for (const ch of text) for (const id of this.charIds(ch)) tokens.push(id);
    const merged = mergePairs(tokens, this.pair);
    if (opts.addSpecialTokens ?? true) merged.unshift(this.specialIds.bos!);
    if (opts.eos) merged.push(this.specialIds.eos!);
    return merged;
  }

  /**
   * Pieces back to text: <0xNN> pieces become bytes, the dummy-prefix space is dropped after BOS (as llama2.c does)
   * and at the start of the sequence, so decode(encode(x)) === x. BOS/EOS are skipped unless skipSpecialTokens is false.
   */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const skip = opts.skipSpecialTokens ?? true;
    const bytes: number[] = [];
    let prev = -1;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`decode: token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
      if (skip && (id === this.specialIds.bos || id === this.specialIds.eos)) {
        prev = id;
        continue;
      }
      const b = this.byteOf[id]!;
      if (b >= 0) bytes.push(b);
      else {
        const pb = this.pieceBytes[id]!;
        const from = (prev === this.specialIds.bos || prev === -1) && pb[0] === 0x20 ? 1 : 0;
        for (let k = from; k < pb.length; k++) bytes.push(pb[k]!);
      }
      prev = id;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes));
  }
}
