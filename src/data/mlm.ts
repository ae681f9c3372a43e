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
