/**
 * The 512-token Llama/SentencePiece-style BPE tokenizer of stories260K, read from llama2.c's tokenizer .bin
 * (int32 max_token_length, then per token: float32 score, int32 byte length, bytes). Encoding follows llama2.c's
 * `encode()`, the reference this model was trained with: a dummy-prefix space, each UTF-8 character mapped to its
 * piece or to byte-fallback tokens <0xNN> (id = byte + 3), then repeatedly merge the adjacent pair whose
 * concatenation is a piece with the highest score. Pieces use a plain space where SentencePiece writes ▁.
 */
import fs from 'node:fs';
import type { SpecialIds, Tokenizer } from './types.ts';

export class SentencePieceBPETokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds = { unk: 0, bos: 1, eos: 2 };
  private readonly ids = new Map<string, number>();
  private readonly bytePiece = /^<0x([0-9A-F]{2})>$/;

  constructor(
    readonly pieces: string[],
    readonly scores: Float32Array,
  ) {
    this.vocabSize = pieces.length;
    pieces.forEach((p, i) => {
      if (!this.ids.has(p)) this.ids.set(p, i);
    });
  }

  /** Read llama2.c's tokenizer.bin (e.g. stories260K's tok512.bin); vocabSize defaults to every entry in the file. */
  static fromLlama2cBin(path: string, vocabSize?: number): SentencePieceBPETokenizer {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(path);
    } catch (e) {
      throw new Error(`${path}: cannot read tokenizer (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const pieces: string[] = [];
    const scores: number[] = [];
    let off = 4; // max_token_length
    const dec = new TextDecoder('utf-8');
    while (off < buf.length && (vocabSize === undefined || pieces.length < vocabSize)) {
      if (off + 8 > buf.length) throw new Error(`${path}: truncated at token ${pieces.length} (byte ${off})`);
      scores.push(buf.readFloatLE(off));
      const len = buf.readInt32LE(off + 4);
      if (len < 0 || off + 8 + len > buf.length) throw new Error(`${path}: token ${pieces.length} has an invalid length ${len}`);
      pieces.push(dec.decode(buf.subarray(off + 8, off + 8 + len)));
      off += 8 + len;
    }
    if (vocabSize !== undefined && pieces.length < vocabSize) throw new Error(`${path}: expected ${vocabSize} tokens, found ${pieces.length}`);
    return new SentencePieceBPETokenizer(pieces, Float32Array.from(scores));
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }
  idToToken(id: number): string | undefined {
    return this.pieces[id];
  }

  encode(text: string, opts: { addSpecialTokens?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.addSpecialTokens ?? true) out.push(this.specialIds.bos!);
    const tokens: number[] = [];
    if (text.length > 0) {
      const dummy = this.ids.get(' ');
      if (dummy !== undefined) tokens.push(dummy);
    }
    for (const ch of text) {
      const id = this.ids.get(ch);
      if (id !== undefined) tokens.push(id);
      else for (const b of new TextEncoder().encode(ch)) tokens.push(b + 3); // byte fallback <0xNN>
    }
    // greedy merges, best score first (ties: leftmost), as llama2.c
    for (;;) {
      let best = -Infinity;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i + 1 < tokens.length; i++) {
        const id = this.ids.get(this.pieces[tokens[i]!]! + this.pieces[tokens[i + 1]!]!);
        if (id !== undefined && this.scores[id]! > best) {
          best = this.scores[id]!;
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    out.push(...tokens);
    if (opts.eos) out.push(this.specialIds.eos!);
    return out;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const bytes: number[] = [];
    const enc = new TextEncoder();
    let prev = -1;
    for (const id of ids) {
      if (id < 0 || id >= this.vocabSize) throw new Error(`decode: token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
      if ((opts.skipSpecialTokens ?? true) && (id === this.specialIds.bos || id === this.specialIds.eos)) {
        prev = id;
        continue;
      }
      let piece = this.pieces[id]!;
      if (prev === this.specialIds.bos && piece.startsWith(' ')) piece = piece.slice(1); // llama2.c strips the dummy space after BOS
      if (prev === -1 && piece.startsWith(' ')) piece = piece.slice(1);
      const m = this.bytePiece.exec(piece);
      if (m) bytes.push(parseInt(m[1]!, 16));
      else bytes.push(...enc.encode(piece));
      prev = id;
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
  }
}
