/**
 * BERT-style masked-LM masking, as HF DataCollatorForLanguageModeling.torch_mask_tokens does it:
 *
 * - every position that is neither a special token nor padding is chosen independently with probability
 *   mlmProbability (Bernoulli, so about 15 % of them, not exactly 15 %);
 * - labels = the original id at chosen positions, -100 everywhere else;
 * - a chosen position becomes [MASK] with probability maskReplaceProb (0.8), otherwise a uniformly random id in
 *   [0, vocabSize) with probability randomReplaceProb (0.1; like HF, the random id may be a special token or the
 *   original one), otherwise it is left unchanged (0.1).
 *
 * The stream is this library's Generator (not torch's), so masks are reproducible under a seed but not
 * bit-identical to torch's.
 */
import { Tensor } from '../tensor/tensor.ts';
import { Generator } from '../tensor/random.ts';

export interface MaskOptions {
  maskId: number;
  vocabSize: number;
  /** Ids never chosen ([CLS], [SEP], …; padId is added). */
  specialIds: Iterable<number>;
  /** Padding id, never chosen. */
  padId?: number;
  mlmProbability?: number;
  maskReplaceProb?: number;
  randomReplaceProb?: number;
  /** Random stream (default: a fresh Generator(0), i.e. the same mask on every call). */
  generator?: Generator;
  /** Shape for a flat Int32Array input (default [length]). */
  shape?: readonly number[];
}

function toIds(inputIds: Tensor | Int32Array | readonly (readonly number[])[], shape?: readonly number[]): { ids: Int32Array; shape: number[] } {
  if (inputIds instanceof Tensor) {
    if (inputIds.dtype !== 'int32') throw new Error(`maskTokens: inputIds must be int32, got ${inputIds.dtype}`);
    return { ids: inputIds.toArray() as Int32Array, shape: [...inputIds.shape] };
  }
  if (inputIds instanceof Int32Array) {
    const s = shape ? [...shape] : [inputIds.length];
    if (s.reduce((a, b) => a * b, 1) !== inputIds.length) throw new Error(`maskTokens: shape [${s}] does not hold ${inputIds.length} ids`);
    return { ids: Int32Array.from(inputIds), shape: s };
  }
  const B = inputIds.length;
  const T = B > 0 ? inputIds[0]!.length : 0;
  const ids = new Int32Array(B * T);
  inputIds.forEach((row, b) => {
    if (row.length !== T) throw new Error(`maskTokens: row ${b} has ${row.length} ids, row 0 has ${T} (pad the batch first, e.g. with collate)`);
    for (let t = 0; t < T; t++) ids[b * T + t] = row[t]!;
  });
  return { ids, shape: [B, T] };
}

/** HF DataCollatorForLanguageModeling masking. Returns new int32 tensors of the input's shape. */
export function maskTokens(inputIds: Tensor | Int32Array | readonly (readonly number[])[], opts: MaskOptions): { inputIds: Tensor; labels: Tensor } {
  const p = opts.mlmProbability ?? 0.15;
  const pMask = opts.maskReplaceProb ?? 0.8;
  const pRandom = opts.randomReplaceProb ?? 0.1;
  const prob = (name: string, v: number) => {
    if (!(v >= 0 && v <= 1)) throw new Error(`maskTokens: ${name} must be in [0, 1], got ${v}`);
  };
  prob('mlmProbability', p);
  prob('maskReplaceProb', pMask);
  prob('randomReplaceProb', pRandom);
  if (pMask + pRandom > 1 + 1e-12) throw new Error(`maskTokens: maskReplaceProb + randomReplaceProb = ${pMask + pRandom} > 1`);
  if (!(Number.isInteger(opts.vocabSize) && opts.vocabSize >= 1)) throw new Error(`maskTokens: vocabSize must be a positive integer, got ${opts.vocabSize}`);
  if (!Number.isInteger(opts.maskId)) throw new Error(`maskTokens: maskId must be an integer, got ${opts.maskId}`);
  const g = opts.generator ?? new Generator(0);
  const special = new Set(opts.specialIds);
  if (opts.padId !== undefined) special.add(opts.padId);
  const { ids, shape } = toIds(inputIds, opts.shape);
  const labels = new Int32Array(ids.length).fill(-100);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (special.has(id) || g.random() >= p) continue;
    labels[i] = id;
    const r = g.random();
    if (r < pMask) ids[i] = opts.maskId;
    else if (r < pMask + pRandom) ids[i] = g.randint(0, opts.vocabSize);
  }
  return { inputIds: new Tensor(ids, shape, 'int32'), labels: new Tensor(labels, shape, 'int32') };
}

export interface WholeWordMaskOptions extends MaskOptions {
  /**
   * Whether a token id continues the word before it (WordPiece `##` pieces): a Uint8Array/boolean array indexed by
   * id, or a function. Build it with `continuationTable(tokens)`.
   */
  isContinuation: ArrayLike<number | boolean> | ((id: number) => boolean);
  /** Most tokens chosen per sequence (HF's max_predictions, default 512). */
  maxPredictions?: number;
}

/** Python's round(): halves go to the even neighbour (HF computes the budget with it). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** `table[id] = 1` for WordPiece continuation pieces (`##…`), 0 otherwise. */
export function continuationTable(tokens: readonly string[]): Uint8Array {
  return Uint8Array.from(tokens, (t) => (t.startsWith('##') ? 1 : 0));
}

/**
 * Whole-word masking, as HF DataCollatorForWholeWordMask does it (and Google BERT's create_pretraining_data.py with
 * do_whole_word_mask): words, not pieces, are the units chosen, so every WordPiece piece of a chosen word is masked
 * together.
 *
 * Per sequence (row): the words are runs of one piece plus the `##` pieces after it (special tokens and padding are
 * never part of one; a `##` piece first in a row starts a word of its own). They are shuffled; the budget is
 * `min(maxPredictions, max(1, round(n · mlmProbability)))` tokens, where n counts the row's non-padding tokens
 * (special tokens included, as HF counts them; rounded half to even like Python); words are taken in shuffled order, skipping any that would exceed
 * the budget. Every piece of a chosen word gets its label; each chosen piece then becomes [MASK] with probability
 * 0.8, a uniformly random id with 0.1, or stays with 0.1 — decided per piece, as HF and Google's code do.
 *
 * The stream is the given Generator (checkpoint it and masking resumes exactly); HF uses Python's `random.shuffle`,
 * so masks are reproducible under a seed but not identical to HF's.
 */
export function wholeWordMask(inputIds: Tensor | Int32Array | readonly (readonly number[])[], opts: WholeWordMaskOptions): { inputIds: Tensor; labels: Tensor } {
  const p = opts.mlmProbability ?? 0.15;
  const pMask = opts.maskReplaceProb ?? 0.8;
  const pRandom = opts.randomReplaceProb ?? 0.1;
  for (const [name, v] of [['mlmProbability', p], ['maskReplaceProb', pMask], ['randomReplaceProb', pRandom]] as const)
    if (!(v >= 0 && v <= 1)) throw new Error(`wholeWordMask: ${name} must be in [0, 1], got ${v}`);
  if (pMask + pRandom > 1 + 1e-12) throw new Error(`wholeWordMask: maskReplaceProb + randomReplaceProb = ${pMask + pRandom} > 1`);
  if (!(Number.isInteger(opts.vocabSize) && opts.vocabSize >= 1)) throw new Error(`wholeWordMask: vocabSize must be a positive integer, got ${opts.vocabSize}`);
  if (!Number.isInteger(opts.maskId)) throw new Error(`wholeWordMask: maskId must be an integer, got ${opts.maskId}`);
  const maxPred = opts.maxPredictions ?? 512;
  const g = opts.generator ?? new Generator(0);
  const special = new Set(opts.specialIds);
  const pad = opts.padId;
  const cont = typeof opts.isContinuation === 'function' ? opts.isContinuation : ((t: ArrayLike<number | boolean>) => (id: number) => !!t[id])(opts.isContinuation);
  const { ids, shape } = toIds(inputIds, opts.shape);
  const T = shape.length ? shape[shape.length - 1]! : ids.length;
  const rows = T === 0 ? 0 : ids.length / T;
  const labels = new Int32Array(ids.length).fill(-100);
  for (let r = 0; r < rows; r++) {
    const base = r * T;
    // words: [start, end) runs of a piece and its ## continuations
    const words: [number, number][] = [];
    let n = 0;
    for (let t = 0; t < T; t++) {
      const id = ids[base + t]!;
      if (pad !== undefined && id === pad) continue;
      n++;
      if (special.has(id)) continue;
      const last = words[words.length - 1];
      if (last && cont(id) && last[1] === t) last[1] = t + 1;
      else words.push([t, t + 1]);
    }
    if (words.length === 0) continue;
    for (let i = words.length - 1; i > 0; i--) {
      const j = g.randint(0, i + 1);
      [words[i], words[j]] = [words[j]!, words[i]!];
    }
    const budget = Math.min(maxPred, Math.max(1, roundHalfEven(n * p)));
    let chosen = 0;
    for (const [s, e] of words) {
      if (chosen >= budget) break;
      if (chosen + (e - s) > budget) continue;
      chosen += e - s;
      for (let t = s; t < e; t++) labels[base + t] = ids[base + t]!;
    }
    for (let t = 0; t < T; t++) {
      const i = base + t;
      if (labels[i] === -100) continue;
      const u = g.random();
      if (u < pMask) ids[i] = opts.maskId;
      else if (u < pMask + pRandom) ids[i] = g.randint(0, opts.vocabSize);
    }
  }
  return { inputIds: new Tensor(ids, shape, 'int32'), labels: new Tensor(labels, shape, 'int32') };
}
