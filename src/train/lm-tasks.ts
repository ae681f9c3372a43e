/**
 * Causal-LM pretraining of small GPT-2 or Llama models on a bundled corpus (Tiny Shakespeare, WikiText-2) or any
 * text file, with an existing tokenizer folder (default: stories260K's 512-piece SentencePiece BPE, which covers
 * English text without unknown tokens). The text is split into a training part and a held-out part; training
 * uses run_clm-style blocks (documents concatenated, cut into fixed-length blocks); the held-out loss is logged every
 * `evalEvery` steps and the held-out perplexity reported at the end. `shrink pretrain --arch gpt2|llama` calls this.
 */
import { copyTokenizerFiles } from '../io/tokenizer-files.ts';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GPT2LMHeadModel } from '../models/gpt2/modeling.ts';
import { gpt2Config } from '../models/gpt2/config.ts';
import { LlamaForCausalLM } from '../models/llama/modeling.ts';
import { llamaConfig } from '../models/llama/config.ts';
import { fromPretrained, savePretrained } from '../models/registry.ts';
import { readConfig } from '../io/hf.ts';
import { loadTokenizer } from '../tokenizers/index.ts';
import type { Tokenizer } from '../tokenizers/types.ts';
import { chunkTokens, loadText, loadTinyShakespeare, wikiTextLines } from '../data/text.ts';
import { BatchSampler } from '../data/batch.ts';
import { Trainer } from './trainer.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { manualSeed } from '../tensor/random.ts';
import { DATA_DIR, TrainingInterrupted, openPretrainDir, recentMeanLoss, trainingSeconds, writePretrainDir, type PretrainOptions, type PretrainRunInfo } from './bert-tasks.ts';
import { buildCorpus, formatCorpusSummary, heldOutDocuments, isCorpusName, type CorpusSummary } from './corpus.ts';
import { anatomy, replaceMlp } from '../models/anatomy.ts';
import { Linear } from '../nn/layers.ts';
import { collectAuxLosses, registerForwardHook } from '../nn/hooks.ts';
import { MoEExpert, MoELayer } from '../compress/moe/index.ts';
import { FFFLayer } from '../compress/fff/index.ts';
import type { Module } from '../nn/module.ts';

export const DEFAULT_LM_TOKENIZER = path.join(DATA_DIR, 'models', 'stories260K');
/** Files that make up a tokenizer folder (whichever exist are copied next to the trained weights). */

export type LMArch = 'gpt2' | 'llama';

export interface CausalPretrainOptions extends PretrainOptions {
  arch: LMArch;
  /**
   * 'tinyshakespeare' (default), 'wikitext2' (valid, held out: test), a corpus name of src/train/corpus.ts
   * ('default', 'glue', sources joined with '+'; held out: WikiText-2 test), or a path to a UTF-8 text file.
   */
  corpus?: string;
  tokenizerDir?: string;
  /**
   * Start from this causal LM folder's weights (same arch, sizes and vocabulary; checked before any work) with a
   * fresh optimizer and schedule: continued pretraining.
   */
  initFrom?: string;
  /** Sparse MoE layers in place of the dense MLP (GPT-2 only): see {@link LMMoeOptions}. */
  moe?: LMMoeOptions;
  /** UltraFastBERT fast feedforward trees of this depth in place of every block's MLP. */
  fffDepth?: number;
}

/**
 * An MoE language model trained from scratch (ST-MoE, Zoph et al. 2022): every `every`-th block's MLP becomes
 * `experts` experts of width `expertSize` (default: the dense width / topK, so a token's expert FLOPs equal the dense
 * MLP's) with a float32 router, top-`topK` routing, capacity factor `capacityFactor` (1.25) in training and
 * `evalCapacityFactor` (2.0) at evaluation, per routed choice: an expert takes round(CF·k·tokens/E) choices of a
 * group (GShard's 2N/E for top-2 at CF 1), since with top-k every token fills k slots; the
 * router z-loss (weight `zLoss`, 1e-3) and load-balancing loss (`balanceLoss`, 1e-2) are added to the LM loss
 * (0 turns one off, for the ablations). Every evaluation logs each layer's expert load (fractions of routed
 * choices) and the mean router entropy.
 */
export interface LMMoeOptions {
  experts: number;
  topK?: number;
  expertSize?: number;
  every?: number;
  zLoss?: number;
  balanceLoss?: number;
  capacityFactor?: number;
  evalCapacityFactor?: number;
}

export interface CausalPretrainResult extends PretrainRunInfo {
  vocabSize: number;
  trainTokens: number;
  heldOutTokens: number;
  finalLoss: number;
  heldOutPerplexity: number;
  /** Mean NLL per token on the held-out blocks (log of heldOutPerplexity). */
  heldOutLoss?: number;
  steps?: number;
  trainSeconds?: number;
  corpus?: CorpusSummary;
}

/**
 * Training and held-out lines of a corpus. WikiText-2 trains on `valid` and holds out `test` (train is not
 * bundled); the pretraining corpora (`default`, `glue`, `wikitext2-valid+brown`, …) hold out WikiText-2 test too;
 * other texts hold out their last 10 % of lines.
 */
export function lmCorpus(corpus: string): { train: string[]; heldOut: string[]; name: string; summary?: CorpusSummary } {
  const nonEmpty = (ls: string[]) => ls.map((l) => l.trim()).filter((l) => l.length > 0);
  if (corpus !== 'wikitext2' && corpus !== 'tinyshakespeare' && isCorpusName(corpus)) {
    const c = buildCorpus(corpus);
    return { train: c.documents, heldOut: heldOutDocuments(), name: `${corpus} (held out: WikiText-2 test)`, summary: c.summary };
  }
  if (corpus === 'wikitext2') return { train: nonEmpty(wikiTextLines('valid')), heldOut: nonEmpty(wikiTextLines('test')), name: 'wikitext2 valid (held out: test)' };
  const text = corpus === 'tinyshakespeare' ? loadTinyShakespeare() : loadText(corpus);
  const lines = nonEmpty(text.split('\n'));
  if (lines.length < 10) throw new Error(`${corpus}: only ${lines.length} non-empty lines; need at least 10 to hold out 10 %`);
  const cut = Math.floor(lines.length * 0.9);
  return { train: lines.slice(0, cut), heldOut: lines.slice(cut), name: `${corpus === 'tinyshakespeare' ? 'tinyshakespeare' : path.basename(corpus)} (held out: last 10 % of lines)` };
}

function encodeLines(tok: Tokenizer, lines: string[]): number[] {
  const ids: number[] = [];
  for (const l of lines) for (const id of tok.encode(l, { addSpecialTokens: false })) ids.push(id);
  return ids;
}

/** Mean NLL per predicted token over blocks (no grad). */
function blocksNll(model: GPT2LMHeadModel | LlamaForCausalLM, blocks: number[][]): number {
  let nll = 0;
  let n = 0;
  noGrad(() => {
    for (const b of blocks) {
      const x = Tensor.from(Int32Array.from(b), { shape: [1, b.length] });
      nll += model.forward({ inputIds: x, labels: x }).loss!.item() * (b.length - 1);
      n += b.length - 1;
    }
  });
  return nll / Math.max(1, n);
}

/** Pretrain a small causal LM; writes a HF folder (config, weights, tokenizer files) and returns its held-out perplexity. */
export function pretrainCausalLM(o: CausalPretrainOptions): CausalPretrainResult {
  if (o.arch !== 'gpt2' && o.arch !== 'llama') throw new Error(`--arch must be bert, gpt2 or llama, got '${o.arch as string}'`);
  const tokDir = o.tokenizerDir ?? DEFAULT_LM_TOKENIZER;
  const tok = loadTokenizer(tokDir);
  const corpusName = o.corpus ?? 'tinyshakespeare';
  const corpus = lmCorpus(corpusName);
  const settings = {
    command: 'pretrain',
    arch: o.arch,
    corpus: corpusName === 'tinyshakespeare' || corpusName === 'wikitext2' || isCorpusName(corpusName) ? corpusName : path.resolve(corpusName),
    tokenizer: path.resolve(tokDir),
    steps: o.steps,
    batchSize: o.batchSize ?? 16,
    seqLen: o.seqLen ?? 128,
    lr: o.lr ?? 1e-3,
    hidden: o.hidden ?? 128,
    layers: o.layers ?? 4,
    heads: o.heads ?? 4,
    intermediate: o.intermediate ?? null,
    evalEvery: o.evalEvery ?? 500,
    evalBlocks: o.evalBlocks ?? 64,
    seed: o.seed ?? 0,
    ...(o.initFrom !== undefined ? { initFrom: path.resolve(o.initFrom) } : {}),
    ...(o.moe ? { moe: moeSettings(o) } : {}),
    ...(o.fffDepth !== undefined ? { fffDepth: o.fffDepth } : {}),
  };
  const state = openPretrainDir(o.outDir, settings, o);
  if (state.state === 'finished') return { ...(state.record.result as unknown as CausalPretrainResult), alreadyFinished: true };
  const t0 = performance.now();
  manualSeed(o.seed ?? 0);
  const T = o.seqLen ?? 128;
  const train = chunkTokens(encodeLines(tok, corpus.train), T).map((b) => b.ids);
  const heldOut = chunkTokens(encodeLines(tok, corpus.heldOut), T).map((b) => b.ids);
  if (train.length === 0) throw new Error(`${o.corpus}: fewer than ${T} training tokens; lower --seq-len`);
  const summary: CorpusSummary = corpus.summary ?? {
    name: corpusName,
    documents: corpus.train.length,
    words: corpus.train.reduce((a, l) => a + l.split(/\s+/).filter(Boolean).length, 0),
    duplicates: 0,
    sha256: crypto.createHash('sha256').update(corpus.train.join('\n')).digest('hex'),
    sources: [],
  };
  summary.tokens = train.length * T;
  o.log?.(`${formatCorpusSummary(summary)} (tokens: in ${T}-token blocks); ${heldOut.length.toLocaleString('en-US')} held-out blocks (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const evalBlocks = heldOut.slice(0, settings.evalBlocks);
  const hidden = o.hidden ?? 128;
  const layers = o.layers ?? 4;
  const heads = o.heads ?? 4;
  const V = tok.vocabSize;
  const model =
    o.arch === 'gpt2'
      ? new GPT2LMHeadModel(gpt2Config({ vocab_size: V, n_positions: Math.max(T, 256), n_embd: hidden, n_layer: layers, n_head: heads, n_inner: o.intermediate ?? 4 * hidden, bos_token_id: tok.specialIds.bos ?? 0, eos_token_id: tok.specialIds.eos ?? 0, architectures: ['GPT2LMHeadModel'] }))
      : new LlamaForCausalLM(
          llamaConfig({ vocab_size: V, hidden_size: hidden, intermediate_size: o.intermediate ?? Math.round((8 * hidden) / 3), num_hidden_layers: layers, num_attention_heads: heads, max_position_embeddings: Math.max(T, 256), tie_word_embeddings: true, rms_norm_eps: 1e-5, bos_token_id: tok.specialIds.bos ?? 1, eos_token_id: tok.specialIds.eos ?? 2, architectures: ['LlamaForCausalLM'] }),
        );
  const moeLayers = settings.moe ? installMoe(model, settings.moe) : [];
  if (settings.fffDepth !== undefined) for (const b of anatomy(model).blocks) replaceMlp(model, b.index, new FFFLayer(hidden, hidden, settings.fffDepth));
  // GPT-2 / Llama init: N(0, 0.02) for every matrix (embeddings, experts, routers and trees included); norms and
  // biases keep their defaults
  for (const [, p] of model.namedParameters()) if (p.ndim === 2) p.copy_(Tensor.randn(p.shape).mul(0.02));
  if (o.initFrom !== undefined) {
    const theirs = readConfig(o.initFrom);
    const ours = (model as unknown as { config: Record<string, unknown> }).config;
    const keys = o.arch === 'gpt2' ? ['model_type', 'vocab_size', 'n_embd', 'n_layer', 'n_head', 'n_inner'] : ['model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads'];
    for (const k of keys)
      if (theirs[k] !== ours[k]) throw new Error(`--init-from ${o.initFrom}: config.json ${k} is ${JSON.stringify(theirs[k])}, this run's is ${JSON.stringify(ours[k])} (give the same --arch, --hidden, --layers, --heads, --intermediate and --tokenizer)`);
    model.loadStateDict(fromPretrained(o.initFrom).stateDict());
    o.log?.(`initialised from ${o.initFrom}`);
  }
  const sampler = new BatchSampler(train.length, o.batchSize ?? 16, { seed: o.seed ?? 0 });
  const trainer = new Trainer(
    model,
    {
      totalSteps: o.steps, lr: o.lr ?? 1e-3, warmupSteps: Math.min(200, Math.floor(o.steps / 10)), maxGradNorm: 1, weightDecay: 0.1, schedule: 'cosine',
      outDir: path.join(o.outDir, '.run'), saveEvery: o.saveEvery ?? 500, resume: true, evalEvery: settings.evalEvery || undefined, greaterIsBetter: false,
    },
    {
      lossFn: () => {
        const idx = sampler.next();
        const x = Tensor.from(Int32Array.from(idx.flatMap((i) => train[i]!)), { shape: [idx.length, T] });
        const lm = model.forward({ inputIds: x, labels: x }).loss!;
        return settings.moe ? withMoeLosses(model, lm, settings.moe) : lm;
      },
      evaluate: settings.evalEvery
        ? () => {
            const e0 = performance.now();
            const stats = moeLayers.length ? watchRouting(moeLayers) : null;
            const loss = blocksNll(model, evalBlocks);
            return { metric: loss, loss, ...(stats ? stats.finish() : {}), ms: performance.now() - e0 };
          }
        : undefined,
      stateful: { sampler },
      onLog: o.onLog,
    },
  );
  const r = trainer.train();
  if (r.interrupted) throw new TrainingInterrupted(r.step, o.steps, path.join(o.outDir, '.run'));
  const runDir = path.join(o.outDir, '.run');
  const last = r.history[r.history.length - 1];
  const heldOutLoss = last?.step === r.step && last.eval ? last.eval.loss! : blocksNll(model, evalBlocks);
  const trainSeconds = trainingSeconds(r.history, runDir);
  const result: CausalPretrainResult = {
    vocabSize: V,
    trainTokens: train.length * T,
    heldOutTokens: heldOut.length * T,
    finalLoss: recentMeanLoss(r.history, runDir),
    heldOutPerplexity: Math.exp(heldOutLoss),
    heldOutLoss,
    steps: r.step,
    trainSeconds: +trainSeconds.toFixed(1),
    corpus: summary,
  };
  const resumedFrom = state.state === 'resume' ? state.step : undefined;
  writePretrainDir(o.outDir, state, result as unknown as Record<string, unknown>, (tmp) => {
    savePretrained(model as never, tmp, { recipe: JSON.stringify({ method: 'pretrain.clm', arch: o.arch, steps: o.steps, corpus: corpus.name }) });
    copyTokenizerFiles(tokDir, tmp);
  });
  return resumedFrom !== undefined ? { ...result, resumedFrom } : result;
}

/** The MoE settings of a run, defaults filled and checked (before any work). */
function moeSettings(o: CausalPretrainOptions): Required<LMMoeOptions> {
  const m = o.moe!;
  if (o.arch !== 'gpt2') throw new Error(`--moe-experts needs --arch gpt2 (experts are dense GELU FFNs; Llama's gated MLP has no expert form here), got --arch ${o.arch}`);
  if (o.fffDepth !== undefined) throw new Error('--moe-experts and --fff-depth both replace the MLP: give one');
  const dense = o.intermediate ?? 4 * (o.hidden ?? 128);
  const topK = m.topK ?? 2;
  const int = (v: number, flag: string, min: number, max: number) => {
    if (!(Number.isInteger(v) && v >= min && v <= max)) throw new Error(`${flag} must be an integer in [${min}, ${max}], got ${v}`);
    return v;
  };
  int(m.experts, '--moe-experts', 2, 1024);
  int(topK, '--moe-top-k', 1, m.experts);
  const every = int(m.every ?? 1, '--moe-every', 1, o.layers ?? 4);
  const expertSize = int(m.expertSize ?? Math.max(1, Math.round(dense / topK)), '--moe-expert-size', 1, 1 << 20);
  for (const [v, flag] of [[m.zLoss, '--moe-z-loss'], [m.balanceLoss, '--moe-balance-loss']] as const)
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new Error(`${flag} must be a number >= 0, got ${v}`);
  for (const [v, flag] of [[m.capacityFactor, '--moe-capacity-factor'], [m.evalCapacityFactor, '--moe-eval-capacity-factor']] as const)
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new Error(`${flag} must be a number > 0, got ${v}`);
  return {
    experts: m.experts, topK, expertSize, every, zLoss: m.zLoss ?? 1e-3, balanceLoss: m.balanceLoss ?? 1e-2,
    capacityFactor: m.capacityFactor ?? 1.25, evalCapacityFactor: m.evalCapacityFactor ?? 2,
  };
}

/** Blocks every-th (1-based: every, 2·every, …) get an MoE layer of fresh experts; the layers, in block order. */
function installMoe(model: Module, m: Required<LMMoeOptions>): MoELayer[] {
  const a = anatomy(model);
  const H = a.hiddenSize;
  const layers: MoELayer[] = [];
  for (const b of a.blocks) {
    if ((b.index + 1) % m.every !== 0) continue;
    const experts = Array.from({ length: m.experts }, () => new MoEExpert(new Linear(H, m.expertSize), new Linear(m.expertSize, H), 'gelu_new'));
    // the layer's capacity is round(CF·tokens/E) slots; per routed choice, so × k
    const layer = new MoELayer(new Linear(H, m.experts, { bias: false }), experts, { topK: m.topK, capacityFactor: m.capacityFactor * m.topK, evalCapacityFactor: m.evalCapacityFactor * m.topK });
    replaceMlp(model, b.index, layer);
    layers.push(layer);
  }
  return layers;
}

/** The LM loss plus the weighted router z-losses and load-balancing losses the forward recorded, with each part. */
function withMoeLosses(model: Module, lm: Tensor, m: Required<LMMoeOptions>): { loss: Tensor; parts: Record<string, Tensor> } {
  let z: Tensor | null = null;
  let b: Tensor | null = null;
  for (const [name, v] of collectAuxLosses(model)) {
    if (name.endsWith('z_loss')) z = z ? z.add(v) : v;
    else if (name.endsWith('balance_loss')) b = b ? b.add(v) : v;
  }
  let loss = lm;
  if (z && m.zLoss > 0) loss = loss.add(z.mul(m.zLoss));
  if (b && m.balanceLoss > 0) loss = loss.add(b.mul(m.balanceLoss));
  return { loss, parts: { lm, ...(z ? { z_loss: z } : {}), ...(b ? { balance_loss: b } : {}) } };
}

/**
 * Routing statistics over an evaluation: `finish()` gives `router_entropy` (mean over layers and tokens of the
 * router distribution's entropy, nats; ln E is uniform), `max_load` (the busiest expert's share of routed choices ×
 * E, worst layer; 1 is perfectly balanced), `dropped` (fraction of choices over capacity) and `load_l<i>_e<j>`
 * (layer i's share of choices routed to expert j).
 */
function watchRouting(layers: MoELayer[]): { finish(): Record<string, number> } {
  let entropy = 0;
  let rows = 0;
  for (const l of layers) l.resetStats();
  const hooks = layers.map((l) =>
    registerForwardHook(l, () => {
      const p = l._last!.probs.toFloat32Array();
      for (let i = 0; i < p.length; i++) if (p[i]! > 0) entropy -= p[i]! * Math.log(p[i]!);
      rows += p.length / l.numExperts;
    }),
  );
  return {
    finish: () => {
      hooks.forEach((h) => h.remove());
      const out: Record<string, number> = { router_entropy: rows ? entropy / rows : 0 };
      let maxLoad = 0;
      let slots = 0;
      let kept = 0;
      layers.forEach((l, i) => {
        const tot = l.stats.load.reduce((a, v) => a + v, 0) || 1;
        l.stats.load.forEach((v, e) => (out[`load_l${i}_e${e}`] = v / tot));
        maxLoad = Math.max(maxLoad, (Math.max(...l.stats.load) / tot) * l.numExperts);
        slots += l.stats.slots;
        kept += l.stats.kept;
      });
      return { ...out, max_load: maxLoad, dropped: slots ? 1 - kept / slots : 0 };
    },
  };
}
