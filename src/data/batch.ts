/**
 * Batching: right padding with attention masks (`collate`), seeded reproducible shuffling with resumable state
 * (`BatchSampler` over indices, `DataLoader` over an array), optional length grouping (HF `group_by_length`).
 *
 * Shuffle order: epoch e of a sampler with seed s is a Fisher–Yates permutation drawn from
 * `new Generator(s * 1000003 + e)`, so an epoch's order depends only on (seed, epoch, size): `state()` is
 * `{ epoch, position, seed, size }` (JSON-safe) and a sampler restored with `setState` continues with the same
 * batches as the run that saved it.
 */
import { Tensor } from '../tensor/tensor.ts';
import { Generator } from '../tensor/random.ts';

export { maskTokens } from './mlm.ts';

export interface Encoded {
  ids: number[];
  tokenTypeIds?: number[];
}

export interface Batch {
  inputIds: Tensor;
  attentionMask: Tensor;
  tokenTypeIds?: Tensor;
}

export interface CollateOptions {
  padId: number;
  /** Truncate every sequence to at most this many tokens (the tail is cut). */
  maxLength?: number;
  /** 'longest' (default): pad to the longest sequence of the batch (after truncation); 'max': pad to maxLength. */
  padTo?: 'longest' | 'max';
}

/**
 * Right-pad (and truncate to maxLength) encoded sequences into int32 [B, T] tensors: inputIds (padId where padded),
 * attentionMask (1 on tokens, 0 on padding), and tokenTypeIds when any item has them (0 on padding and for items
 * without them).
 */
export function collate(items: readonly Encoded[], opts: CollateOptions): Batch {
  if (items.length === 0) throw new Error('collate: empty batch');
  const { padId, maxLength, padTo = 'longest' } = opts;
  if (!Number.isInteger(padId)) throw new Error(`collate: padId must be an integer, got ${padId}`);
  if (maxLength !== undefined && !(Number.isInteger(maxLength) && maxLength >= 1)) throw new Error(`collate: maxLength must be a positive integer, got ${maxLength}`);
  if (padTo !== 'longest' && padTo !== 'max') throw new Error(`collate: padTo must be 'longest' or 'max', got '${padTo}'`);
  if (padTo === 'max' && maxLength === undefined) throw new Error("collate: padTo 'max' needs maxLength");
  let longest = 0;
  items.forEach((e, b) => {
    if (e.tokenTypeIds && e.tokenTypeIds.length !== e.ids.length)
      throw new Error(`collate: item ${b} has ${e.ids.length} ids but ${e.tokenTypeIds.length} tokenTypeIds`);
    longest = Math.max(longest, e.ids.length);
  });
  const T = padTo === 'max' ? maxLength! : Math.min(maxLength ?? Infinity, longest);
  const B = items.length;
  const ids = new Int32Array(B * T).fill(padId);
  const mask = new Int32Array(B * T);
  const withTypes = items.some((e) => e.tokenTypeIds);
  const types = withTypes ? new Int32Array(B * T) : null;
  items.forEach((e, b) => {
    const n = Math.min(T, e.ids.length);
    for (let t = 0; t < n; t++) {
      ids[b * T + t] = e.ids[t]!;
      mask[b * T + t] = 1;
      if (types && e.tokenTypeIds) types[b * T + t] = e.tokenTypeIds[t]!;
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
  /** Items of the current epoch's order already handed out. */
  position: number;
  seed: number;
  /** Dataset size when saved (checked on restore; absent in states saved by older versions). */
  size?: number;
}

export interface SamplerOptions {
  /** Reshuffle every epoch (default true); false keeps 0..size-1 (length grouping still applies). */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last incomplete batch of each epoch. */
  dropLast?: boolean;
  /**
   * Per-index lengths for HF-style length grouping (`group_by_length`): the epoch's order is cut into megabatches
   * of megabatchMult·batchSize, each sorted by length (longest first, stable), and the longest item overall is
   * moved to the first batch. Batches then hold similar lengths, so padding shrinks.
   */
  lengths?: readonly number[];
  /** Default as HF: min(floor(size / (4·batchSize)), 50), at least 1. */
  megabatchMult?: number;
}

/** HF get_length_grouped_indices applied to a given order. */
function lengthGrouped(order: Int32Array, lengths: readonly number[], batchSize: number, mult?: number): Int32Array {
  const m = mult ?? Math.max(1, Math.min(Math.floor(order.length / (batchSize * 4)), 50));
  const size = m * batchSize;
  const megas: number[][] = [];
  for (let i = 0; i < order.length; i += size) megas.push(Array.from(order.subarray(i, i + size)).sort((a, b) => lengths[b]! - lengths[a]!));
  if (megas.length > 1) {
    let best = 0;
    for (let k = 1; k < megas.length; k++) if (lengths[megas[k]![0]!]! > lengths[megas[best]![0]!]!) best = k;
    [megas[0]![0], megas[best]![0]] = [megas[best]![0]!, megas[0]![0]!];
  }
  return Int32Array.from(megas.flat());
}

/** Mini-batches of indices over a dataset with a reproducible shuffle per epoch (seed, epoch) and resumable state. */
export class BatchSampler {
  epoch = 0;
  position = 0;
  private order: Int32Array;
  constructor(
    readonly size: number,
    readonly batchSize: number,
    readonly opts: SamplerOptions = {},
  ) {
    if (!(Number.isInteger(size) && size >= 0)) throw new Error(`BatchSampler: size must be a non-negative integer, got ${size}`);
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new Error(`BatchSampler: batchSize must be a positive integer, got ${batchSize}`);
    if (opts.lengths && opts.lengths.length !== size) throw new Error(`BatchSampler: ${opts.lengths.length} lengths for ${size} items`);
    this.order = this.orderFor(0);
  }
  get seed(): number {
    return this.opts.seed ?? 0;
  }
  /** The full index order of an epoch (deterministic in seed, epoch, size and lengths). */
  orderFor(epoch: number): Int32Array {
    let o: Int32Array = Int32Array.from({ length: this.size }, (_, i) => i);
    if (this.opts.shuffle ?? true) {
      const g = new Generator(this.seed * 1000003 + epoch);
      for (let i = o.length - 1; i > 0; i--) {
        const j = g.randint(0, i + 1);
        [o[i], o[j]] = [o[j]!, o[i]!];
      }
    }
    if (this.opts.lengths) o = lengthGrouped(o, this.opts.lengths, this.batchSize, this.opts.megabatchMult);
    return o;
  }
  get batchesPerEpoch(): number {
    return this.opts.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
  }
  /** Whether the current epoch has no batch left. */
  get epochDone(): boolean {
    const left = this.size - this.position;
    return left <= 0 || (!!this.opts.dropLast && left < this.batchSize);
  }
  /** Move to the start of the next (reshuffled) epoch. */
  nextEpoch(): void {
    this.epoch++;
    this.position = 0;
    this.order = this.orderFor(this.epoch);
  }
  /** The next batch of indices, moving to a new, reshuffled epoch when the current one has none left. */
  next(): number[] {
    if (this.batchesPerEpoch === 0)
      throw new Error(`BatchSampler: no batches (${this.size} items, batchSize ${this.batchSize}${this.opts.dropLast ? ', dropLast' : ''})`);
    if (this.epochDone) this.nextEpoch();
    const end = Math.min(this.size, this.position + this.batchSize);
    const out = Array.from(this.order.subarray(this.position, end));
    this.position = end;
    return out;
  }
  state(): LoaderState {
    return { epoch: this.epoch, position: this.position, seed: this.seed, size: this.size };
  }
  setState(s: LoaderState): void {
    if (s.seed !== this.seed) throw new Error(`BatchSampler.setState: saved seed ${s.seed} differs from ${this.seed}`);
    if (s.size !== undefined && s.size !== this.size) throw new Error(`BatchSampler.setState: saved for ${s.size} items, this sampler has ${this.size}`);
    if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.position) && s.position >= 0 && s.position <= this.size))
      throw new Error(`BatchSampler.setState: invalid epoch ${s.epoch} / position ${s.position} (size ${this.size})`);
    this.epoch = s.epoch;
    this.position = s.position;
    this.order = this.orderFor(s.epoch);
  }
}

export interface DataLoaderOptions<T, B> extends Omit<SamplerOptions, 'lengths'> {
  batchSize: number;
  /** Turns the batch's items into what the loader yields (default: the items array). */
  collate?: (items: T[], indices: number[]) => B;
  /** Item length for length grouping (see SamplerOptions.lengths); computed once per item. */
  lengthOf?: (item: T) => number;
}

/**
 * Batches over an array, reshuffled every epoch with a seed, resumable:
 *
 *     const loader = new DataLoader(examples, { batchSize: 32, seed: 1, collate: (xs) => collate(xs, { padId: 0 }) });
 *     for (let e = 0; e < 3; e++) for (const batch of loader) step(batch);   // one epoch per for-of
 *     save(loader.state());  …  loader.setState(saved);                       // continues with the same order
 *
 * `for (… of loader)` yields the batches left in the current epoch (starting the next epoch first when the current
 * one is finished); `next()` is an endless stream across epochs. Pass the loader as a Trainer `stateful` entry.
 */
export class DataLoader<T, B = T[]> implements Iterable<B> {
  readonly sampler: BatchSampler;
  private readonly collateFn: (items: T[], indices: number[]) => B;
  constructor(
    readonly dataset: readonly T[],
    opts: DataLoaderOptions<T, B>,
  ) {
    const { collate: c, lengthOf, ...rest } = opts;
    this.sampler = new BatchSampler(dataset.length, opts.batchSize, { ...rest, lengths: lengthOf ? dataset.map(lengthOf) : undefined });
    this.collateFn = c ?? ((items) => items as unknown as B);
  }
  get batchSize(): number {
    return this.sampler.batchSize;
  }
  get epoch(): number {
    return this.sampler.epoch;
  }
  get position(): number {
    return this.sampler.position;
  }
  /** Batches per epoch. */
  get length(): number {
    return this.sampler.batchesPerEpoch;
  }
  private fetch(indices: number[]): B {
    return this.collateFn(
      indices.map((i) => this.dataset[i]!),
      indices,
    );
  }
  /** The next batch, rolling over into the next epoch. */
  next(): B {
    return this.fetch(this.sampler.next());
  }
  *[Symbol.iterator](): Iterator<B> {
    if (this.sampler.batchesPerEpoch === 0) return;
    if (this.sampler.epochDone) this.sampler.nextEpoch();
    while (!this.sampler.epochDone) yield this.fetch(this.sampler.next());
  }
  state(): LoaderState {
    return this.sampler.state();
  }
  setState(s: LoaderState): void {
    this.sampler.setState(s);
  }
}
