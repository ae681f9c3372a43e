/**
 * Batching: dynamic padding with attention masks, seeded reproducible shuffling with resumable state, and
 * BERT-style MLM masking (HF DataCollatorForLanguageModeling: 15 % of non-special tokens; of those 80 % [MASK],
 * 10 % a random token, 10 % unchanged; labels -100 elsewhere).
 */
import { Tensor } from '../tensor/tensor.ts';
import { Generator } from '../tensor/random.ts';

export interface Encoded {
  ids: number[];
  tokenTypeIds?: number[];
}

export interface Batch {
  inputIds: Tensor;
  attentionMask: Tensor;
  tokenTypeIds?: Tensor;
}

/** Right-pad (and truncate to maxLength) a list of encoded sequences into int32 [B, T] tensors. */
export function collate(items: Encoded[], opts: { padId: number; maxLength?: number }): Batch {
  if (items.length === 0) throw new Error('collate: empty batch');
  const maxLen = opts.maxLength ?? Infinity;
  const T = Math.min(maxLen, Math.max(...items.map((e) => e.ids.length)));
  const B = items.length;
  const ids = new Int32Array(B * T).fill(opts.padId);
  const mask = new Int32Array(B * T);
  const withTypes = items.some((e) => e.tokenTypeIds);
  const types = withTypes ? new Int32Array(B * T) : null;
  items.forEach((e, b) => {
    const n = Math.min(T, e.ids.length);
    for (let t = 0; t < n; t++) {
      ids[b * T + t] = e.ids[t]!;
      mask[b * T + t] = 1;
      if (types) types[b * T + t] = e.tokenTypeIds?.[t] ?? 0;
    }
  });
  return {
    inputIds: new Tensor(ids, [B, T], 'int32'),
    attentionMask: new Tensor(mask, [B, T], 'int32'),
    ...(types ? { tokenTypeIds: new Tensor(types, [B, T], 'int32') } : {}),
  };
}

export interface LoaderState {
  epoch: number;
  position: number;
  seed: number;
}

/** Mini-batches of indices over a dataset with a reproducible shuffle per epoch (seed + epoch). */
export class BatchSampler {
  epoch = 0;
  position = 0;
  private order: Int32Array;
  constructor(
    readonly size: number,
    readonly batchSize: number,
    readonly opts: { shuffle?: boolean; seed?: number; dropLast?: boolean } = {},
  ) {
    if (!(batchSize >= 1)) throw new Error(`BatchSampler: batchSize must be >= 1, got ${batchSize}`);
    this.order = this.shuffled(0);
  }
  private shuffled(epoch: number): Int32Array {
    const o = Int32Array.from({ length: this.size }, (_, i) => i);
    if (this.opts.shuffle ?? true) {
      const g = new Generator((this.opts.seed ?? 0) * 1000003 + epoch);
      for (let i = o.length - 1; i > 0; i--) {
        const j = g.randint(0, i + 1);
        [o[i], o[j]] = [o[j]!, o[i]!];
      }
    }
    return o;
  }
  get batchesPerEpoch(): number {
    return this.opts.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
  }
  /** The next batch of indices (moving to a new, reshuffled epoch when one ends). */
  next(): number[] {
    const end = Math.min(this.size, this.position + this.batchSize);
    if (this.position >= this.size || (this.opts.dropLast && end - this.position < this.batchSize)) {
      this.epoch++;
      this.position = 0;
      this.order = this.shuffled(this.epoch);
      return this.next();
    }
    const out = Array.from(this.order.subarray(this.position, end));
    this.position = end;
    return out;
  }
  state(): LoaderState {
    return { epoch: this.epoch, position: this.position, seed: this.opts.seed ?? 0 };
  }
  setState(s: LoaderState): void {
    if (s.seed !== (this.opts.seed ?? 0)) throw new Error(`BatchSampler.setState: saved seed ${s.seed} differs from ${this.opts.seed ?? 0}`);
    this.epoch = s.epoch;
    this.position = s.position;
    this.order = this.shuffled(s.epoch);
  }
}

/** HF DataCollatorForLanguageModeling masking. Special and padding positions are never chosen. */
export function maskTokens(
  inputIds: Tensor,
  opts: { maskId: number; vocabSize: number; specialIds: Iterable<number>; mlmProbability?: number; generator?: Generator },
): { inputIds: Tensor; labels: Tensor } {
  const p = opts.mlmProbability ?? 0.15;
  const g = opts.generator ?? new Generator(0);
  const special = new Set(opts.specialIds);
  const src = inputIds.contiguous().toArray() as Int32Array;
  const ids = Int32Array.from(src);
  const labels = new Int32Array(ids.length).fill(-100);
  for (let i = 0; i < ids.length; i++) {
    if (special.has(src[i]!) || g.random() >= p) continue;
    labels[i] = src[i]!;
    const r = g.random();
    if (r < 0.8) ids[i] = opts.maskId;
    else if (r < 0.9) ids[i] = g.randint(0, opts.vocabSize);
  }
  return { inputIds: new Tensor(ids, [...inputIds.shape], 'int32'), labels: new Tensor(labels, [...inputIds.shape], 'int32') };
}
