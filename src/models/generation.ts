/**
 * KV cache and decoding for the causal LMs (GPT-2, Llama): greedy, temperature, top-k and top-p sampling.
 * The cache keeps each layer's keys/values [B, heads, S, hd]; every step feeds only the new tokens.
 */
import { Tensor } from '../tensor/tensor.ts';
import { cat } from '../ops/index.ts';
import { noGrad } from '../tensor/autograd.ts';
import { Generator, defaultGenerator } from '../tensor/random.ts';
import type { ModelInputs, ModelOutput, ForwardOptions } from './outputs.ts';
import type { Module } from '../nn/module.ts';

export class KVCache {
  private k: (Tensor | null)[] = [];
  private v: (Tensor | null)[] = [];
  /** Number of positions already cached. */
  length = 0;
  /** Append this step's keys/values for a layer; returns the full keys/values (past + new). */
  update(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const pk = this.k[layer];
    const pv = this.v[layer];
    const nk = pk ? cat([pk, k], 2) : k.contiguous();
    const nv = pv ? cat([pv, v], 2) : v.contiguous();
    this.k[layer] = nk;
    this.v[layer] = nv;
    return [nk, nv];
  }
  /** Called by the model once all layers have seen `n` new positions. */
  advance(n: number): void {
    this.length += n;
  }
}

export interface CausalLM {
  forward(inputs: ModelInputs, opts?: ForwardOptions, cache?: KVCache | null): ModelOutput;
  eval(): unknown;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** Greedy when false (default). */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  eosTokenId?: number | null;
  generator?: Generator;
  /** Use the KV cache (default true); false recomputes the whole prefix each step (a reference for tests). */
  useCache?: boolean;
  /**
   * Most tokens in all (prompt + new); generation stops there. Default: the model's context (config
   * max_position_embeddings or n_positions), past which it has no positions to run on.
   */
  maxLength?: number;
}

/** The context length of a causal LM from its config (max_position_embeddings / n_positions), if it has one. */
export function contextLength(lm: CausalLM | Module): number | undefined {
  const cfg = (lm as { config?: Record<string, unknown> }).config;
  const n = Number(cfg?.max_position_embeddings ?? cfg?.n_positions);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Pick the next token from one row of logits. */
export function sampleNext(logits: Float32Array | Float64Array, opts: GenerateOptions): number {
  const V = logits.length;
  if (!opts.doSample) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const T = opts.temperature ?? 1;
  if (!(T > 0)) throw new Error(`generate: temperature must be positive, got ${T}`);
  let idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  if (opts.topK && opts.topK > 0) idx = idx.slice(0, opts.topK);
  const m = logits[idx[0]!]!;
  let p = idx.map((i) => Math.exp((logits[i]! - m) / T));
  const z = p.reduce((a, b) => a + b, 0);
  p = p.map((x) => x / z);
  if (opts.topP !== undefined && opts.topP < 1) {
    // keep the smallest prefix whose mass reaches topP (always at least one token)
    let acc = 0;
    let keep = 0;
    while (keep < p.length && (keep === 0 || acc < opts.topP)) acc += p[keep++]!;
    idx = idx.slice(0, keep);
    p = p.slice(0, keep).map((x) => x / acc);
  }
  const r = (opts.generator ?? defaultGenerator).random();
  let acc = 0;
  for (let i = 0; i < p.length; i++) {
    acc += p[i]!;
    if (r < acc) return idx[i]!;
  }
  return idx[idx.length - 1]!;
}

/**
 * Continue one prompt (ids without padding) and return prompt + new ids. `model` is a GPT-2 or Llama LM.
 * Stops after maxNewTokens, at eosTokenId, or when prompt + new tokens reach maxLength (default: the model's
 * context), whichever comes first; a prompt longer than that is an error.
 */
export function generate(lm: CausalLM | Module, promptIds: number[], opts: GenerateOptions = {}): number[] {
  const model = lm as CausalLM;
  if (typeof model.forward !== 'function') throw new Error(`generate: ${lm.constructor.name} is not a causal language model`);
  const { maxNewTokens = 32, useCache = true, eosTokenId = null } = opts;
  if (promptIds.length === 0) throw new Error('generate: the prompt must contain at least one token');
  const limit = opts.maxLength ?? contextLength(model) ?? Infinity;
  if (promptIds.length > limit) throw new Error(`generate: the prompt has ${promptIds.length} tokens, more than the model's context of ${limit} positions`);
  model.eval();
  return noGrad(() => {
    const ids = [...promptIds];
    const cache = useCache ? new KVCache() : null;
    let feed = ids;
    for (let step = 0; step < maxNewTokens && ids.length < limit; step++) {
      const input = Tensor.from(Int32Array.from(feed), { shape: [1, feed.length] });
      const { logits } = model.forward({ inputIds: input }, {}, cache);
      const V = logits.shape[2]!;
      const last = logits.select(1, feed.length - 1).reshape([V]).toFloat32Array();
      const next = sampleNext(last, opts);
      ids.push(next);
      if (eosTokenId !== null && next === eosTokenId) break;
      feed = useCache ? [next] : ids;
    }
    return ids;
  });
}
