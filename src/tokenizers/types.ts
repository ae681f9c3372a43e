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
  /** Token ids of one text; addSpecialTokens (default true) adds the model's own specials ([CLS] … [SEP], BOS). */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** A text pair as the model expects it (BERT: [CLS] a [SEP] b [SEP], token types 0 … 0 1 … 1). */
  encodePair?(a: string, b: string): { ids: number[]; tokenTypeIds: number[] };
  /** Text of the ids; skipSpecialTokens defaults to true. */
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}
