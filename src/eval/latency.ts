/**
 * Latency measurement that can be reproduced on a shared, noisy machine: untimed warm-up calls first (JIT, packing
 * buffers, first touch of fresh memory), then several timed calls reported as best and median. To compare variants
 * (fp32 against int8, one kernel against another), `compareLatency` runs them round by round — A B C, A B C, … — so
 * a burst of load from elsewhere hits every variant of a round alike, and reports per-round ratios against a
 * reference rather than a ratio of two numbers taken seconds apart.
 */

export interface LatencyResult {
  /** Fastest timed sample, ms per call. */
  bestMs: number;
  /** Median of the timed samples, ms per call. */
  medianMs: number;
  /** Every timed sample in order, ms per call. */
  runs: number[];
  /** Untimed calls made before the first sample. */
  warmup: number;
}

export interface LatencyOptions {
  /** Untimed calls before timing (default 1). */
  warmup?: number;
  /** Timed samples (default 5). */
  repeats?: number;
  /**
   * Minimum duration of one sample (default 0: one call per sample). When > 0 a sample calls `fn` again until
   * `minMs` have passed and records the mean time per call — for workloads too short for the clock to resolve.
   */
  minMs?: number;
  /** Clock in ms (default `performance.now`); tests pass a fake one. */
  now?: () => number;
}

/** Median of a non-empty list (mean of the two middle values for an even length). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median: empty list');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function count(name: string, v: number | undefined, dflt: number, min: number): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${n}`);
  return n;
}

/** One sample: ms per call of `fn`, called once, or repeatedly until `minMs` have passed. */
function sample(fn: () => void, minMs: number, now: () => number): number {
  let n = 0;
  const t0 = now();
  let t = t0;
  do {
    fn();
    n++;
    t = now();
  } while (t - t0 < minMs);
  return (t - t0) / n;
}

/** Time fn: `warmup` untimed calls, then `repeats` timed ones; best and median. */
export function measureLatency(fn: () => void, opts: LatencyOptions = {}): LatencyResult {
  const warmup = count('warmup', opts.warmup, 1, 0);
  const repeats = count('repeats', opts.repeats, 5, 1);
  const minMs = opts.minMs ?? 0;
  const now = opts.now ?? (() => performance.now());
  for (let i = 0; i < warmup; i++) fn();
  const runs: number[] = [];
  for (let i = 0; i < repeats; i++) runs.push(sample(fn, minMs, now));
  return { bestMs: Math.min(...runs), medianMs: median(runs), runs, warmup };
}

export interface CompareOptions {
  /** The variant the ratios are taken against (default: the first key). */
  reference?: string;
  /** Timed rounds; each round times every variant once, in key order (default 5). */
  rounds?: number;
  /** Untimed calls of each variant before the first round, also interleaved (default 1). */
  warmup?: number;
  /** Minimum duration of one sample, as in `measureLatency` (default 0: one call). */
  minMs?: number;
  /** Clock in ms (default `performance.now`); tests pass a fake one. */
  now?: () => number;
  /**
   * Called, untimed, before every timed sample (e.g. a full garbage collection with node --expose-gc, so that one
   * variant's garbage is not collected during the next variant's turn).
   */
  beforeSample?: () => void;
}

export interface CompareResult {
  /** Fastest round of each variant, ms per call. */
  best: Record<string, number>;
  /** Median round of each variant, ms per call. */
  median: Record<string, number>;
  /**
   * Speed-up against the reference, computed within each round: reference ms / variant ms of the same round (> 1:
   * faster than the reference), then the median, min and max over the rounds. The reference's own is 1.
   */
  ratios: Record<string, { median: number; min: number; max: number; ci95: [number, number] }>;
  /** Every round's ms per call of each variant, in round order. */
  runs: Record<string, number[]>;
}

/**
 * A 95 % confidence interval of the median of `xs` by the percentile bootstrap (`resamples` resamples with
 * replacement, a fixed-seed generator, so the same samples give the same interval). On a shared machine the
 * per-round ratios of two variants that do the same work scatter by ±40 %; the interval says whether a median
 * below 1 is a slowdown (its upper end below 1) or noise (it contains 1).
 */
export function medianCI(xs: readonly number[], resamples = 2000, seed = 1): [number, number] {
  if (xs.length === 0) throw new Error('medianCI: no samples');
  let s = seed >>> 0;
  const rand = (): number => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const meds = new Float64Array(resamples);
  const pick = new Array<number>(xs.length);
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < xs.length; i++) pick[i] = xs[Math.floor(rand() * xs.length)]!;
    meds[b] = median(pick);
  }
  meds.sort();
  return [meds[Math.floor(0.025 * (resamples - 1))]!, meds[Math.ceil(0.975 * (resamples - 1))]!];
}

function compareSetup(names: string[], opts: CompareOptions) {
  if (names.length === 0) throw new Error('compareLatency: no variants');
  const reference = opts.reference ?? names[0]!;
  if (!names.includes(reference)) throw new Error(`compareLatency: reference '${reference}' is not one of ${names.join(', ')}`);
  const rounds = count('rounds', opts.rounds, 5, 1);
  const warmup = count('warmup', opts.warmup, 1, 0);
  const runs: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  return { reference, rounds, warmup, minMs: opts.minMs ?? 0, now: opts.now ?? (() => performance.now()), runs };
}

/**
 * The speed-up of `variant` against `reference` from interleaved rounds: reference ms / variant ms within each round
 * (> 1: faster), then the median, min, max and the 95 % bootstrap interval of the median over the rounds.
 */
export function roundRatio(runs: Record<string, readonly number[]>, variant: string, reference: string): CompareResult['ratios'][string] {
  const perRound = runs[variant]!.map((ms, r) => runs[reference]![r]! / ms);
  return { median: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound), ci95: variant === reference ? [1, 1] : medianCI(perRound) };
}

/** 'faster' / 'slower' when a speed-up's 95 % interval lies wholly above / below 1; 'same' when it holds 1. */
export function ciVerdict(ci95: readonly [number, number]): 'faster' | 'slower' | 'same' {
  return ci95[0] > 1 ? 'faster' : ci95[1] < 1 ? 'slower' : 'same';
}

function compareSummary(names: string[], reference: string, runs: Record<string, number[]>): CompareResult {
  const best: Record<string, number> = {};
  const med: Record<string, number> = {};
  const ratios: CompareResult['ratios'] = {};
  for (const k of names) {
    best[k] = Math.min(...runs[k]!);
    med[k] = median(runs[k]!);
    ratios[k] = roundRatio(runs, k, reference);
  }
  return { best, median: med, ratios, runs };
}

/** Interleave several variants round by round (A B C, A B C, …) so machine noise hits them alike; per-round ratios against `reference`. */
export function compareLatency(variants: Record<string, () => void>, opts: CompareOptions = {}): CompareResult {
  const names = Object.keys(variants);
  const { reference, rounds, warmup, minMs, now, runs } = compareSetup(names, opts);
  for (let i = 0; i < warmup; i++) for (const k of names) variants[k]!();
  for (let r = 0; r < rounds; r++)
    for (const k of names) {
      opts.beforeSample?.();
      runs[k]!.push(sample(variants[k]!, minMs, now));
    }
  return compareSummary(names, reference, runs);
}

/** One sample of a variant that may return a promise: each call is awaited before the clock is read. */
async function sampleAsync(fn: () => unknown, minMs: number, now: () => number): Promise<number> {
  let n = 0;
  const t0 = now();
  let t = t0;
  do {
    await fn();
    n++;
    t = now();
  } while (t - t0 < minMs);
  return (t - t0) / n;
}

/**
 * `compareLatency` for variants of which some return a promise (onnxruntime-node's `session.run`, which runs the
 * graph synchronously one `setImmediate` later): every call is awaited before the next starts and before the clock
 * is read, so a sample covers the whole call; synchronous variants cost one extra microtask.
 */
export async function compareLatencyAsync(variants: Record<string, () => unknown>, opts: CompareOptions = {}): Promise<CompareResult> {
  const names = Object.keys(variants);
  const { reference, rounds, warmup, minMs, now, runs } = compareSetup(names, opts);
  for (let i = 0; i < warmup; i++) for (const k of names) await variants[k]!();
  for (let r = 0; r < rounds; r++)
    for (const k of names) {
      opts.beforeSample?.();
      runs[k]!.push(await sampleAsync(variants[k]!, minMs, now));
    }
  return compareSummary(names, reference, runs);
}
