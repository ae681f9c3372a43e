/**
 * Calibration batches for post-training methods (GPTQ, activation-range calibration): real examples from a GLUE
 * training set for encoders, or fixed-length blocks of a text for causal LMs, tokenized with the model folder's
 * own tokenizer.
 */
import { loadGlue, type GlueTask } from './glue.ts';
import { collate } from './batch.ts';
import { chunkTokens, loadText, loadTinyShakespeare, wikiTextLines } from './text.ts';
import { loadTokenizer } from '../tokenizers/index.ts';
import { Tensor } from '../tensor/tensor.ts';
import { Generator } from '../tensor/random.ts';
import { readConfig } from '../io/hf.ts';

export const CALIBRATION_SOURCES = ['sst2', 'mrpc', 'rte', 'cola', 'wikitext2', 'tinyshakespeare', 'random', '<file>'];

export interface CalibrationOptions {
  /** Examples (encoders) or blocks (causal LMs). Default 128. */
  samples?: number;
  /** Tokens per example / block. Default 128. */
  seqLen?: number;
  /** Examples per batch. Default: 8 up to 128 tokens, then ⌊1,024 / seqLen⌋ (at least 1). */
  batchSize?: number;
}

/**
 * Batches of model inputs from `source` ('sst2' | 'mrpc' | 'rte' | 'cola' train sentences, 'wikitext2' valid,
 * 'tinyshakespeare', a text file, or 'random': uniform token ids over config.json's vocab_size from a fixed seed,
 * which needs no tokenizer — for random-weight checkpoints such as `shrink make-random`'s, where no text means more
 * than noise). Deterministic: the first examples / blocks, no shuffling.
 */
export function calibrationBatches(modelDir: string, source: string, o: CalibrationOptions = {}): Record<string, Tensor>[] {
  const samples = o.samples ?? 128;
  const T = o.seqLen ?? 128;
  // batches of about 1,024 tokens (8 at ≤ 128): long sequences come fewer to a batch, so attention's (B, heads, T, T)
  // stays small
  const B = o.batchSize ?? Math.max(1, Math.min(8, Math.floor(1024 / T)));
  if (!(samples >= 1)) throw new Error(`calibration: samples must be ≥ 1, got ${samples}`);
  const out: Record<string, Tensor>[] = [];
  if (source === 'random') {
    const V = readConfig(modelDir).vocab_size;
    if (!(Number.isSafeInteger(V) && (V as number) > 0)) throw new Error(`calibration random: ${modelDir}/config.json has no positive integer vocab_size (got ${JSON.stringify(V)})`);
    const g = new Generator(0);
    for (let i = 0; i < samples; i += B) {
      const b = Math.min(B, samples - i);
      out.push({ inputIds: Tensor.from(Int32Array.from({ length: b * T }, () => g.randint(0, V as number)), { shape: [b, T] }) });
    }
    return out;
  }
  const tok = loadTokenizer(modelDir);
  if (['sst2', 'mrpc', 'rte', 'cola'].includes(source)) {
    const d = loadGlue(source as GlueTask, 'train');
    const enc = d.texts.slice(0, samples).map(([a, b]) => {
      const e = b === undefined || !tok.encodePair ? { ids: tok.encode(a), tokenTypeIds: undefined } : tok.encodePair(a, b);
      return { ids: e.ids.slice(0, T), tokenTypeIds: e.tokenTypeIds?.slice(0, T) };
    });
    for (let i = 0; i < enc.length; i += B) {
      const b = collate(enc.slice(i, i + B), { padId: tok.specialIds.pad ?? 0 });
      out.push({ inputIds: b.inputIds, attentionMask: b.attentionMask, ...(b.tokenTypeIds ? { tokenTypeIds: b.tokenTypeIds } : {}) });
    }
    return out;
  }
  const lines =
    source === 'wikitext2' ? wikiTextLines('valid').map((l) => l.trim()).filter(Boolean) : (source === 'tinyshakespeare' ? loadTinyShakespeare() : loadText(source)).split('\n').filter((l) => l.trim());
  const ids: number[] = [];
  for (const l of lines) {
    for (const id of tok.encode(l, { addSpecialTokens: false })) ids.push(id);
    if (ids.length >= samples * T) break;
  }
  const blocks = chunkTokens(ids, T).slice(0, samples);
  if (blocks.length === 0) throw new Error(`calibration: ${source} has fewer than ${T} tokens`);
  for (let i = 0; i < blocks.length; i += B) {
    const bs = blocks.slice(i, i + B);
    out.push({ inputIds: Tensor.from(Int32Array.from(bs.flatMap((b) => b.ids)), { shape: [bs.length, T] }) });
  }
  return out;
}
