/** The interface every tokenizer implements. */
export interface SpecialIds {
  pad?: number;
  unk?: number;
  cls?: number;
  sep?: number;
  mask?: number;
  bos?: number;
  eos?: number;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}
