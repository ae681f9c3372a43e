/**
 * Model anatomy: one description per model type of where things are, read by every compression method instead of
 * hard-coding names (structured pruning, CoFi, MoEfication, FFF, TinyBERT layer mapping, kNN-LM, GPTQ staging).
 *
 * Every name is a full module path as in the checkpoint (`bert.encoder.layer.3.attention.self.query`; its tensors
 * are `<path>.weight` / `<path>.bias`), and every shape is read live from the modules, so the description follows
 * pruned heads, sliced FFNs, replaced MLPs and pruned-away (null) sub-blocks.
 *
 *   const a = anatomy(model);
 *   for (const b of a.blocks) if (b.attention) console.log(b.attention.q, b.attention.numHeads);
 *
 * Weight layout: Linear stores [out, in] (`'out_in'`), GPT-2's Conv1D [in, out] (`'in_out'`).
 */
import type { Module } from '../nn/module.ts';
import type { FeedForwardModule } from './outputs.ts';
import { BertForMaskedLM, BertForSequenceClassification, BertModel } from './bert/modeling.ts';
import { Conv1D, GPT2LMHeadModel, GPT2MLP, GPT2Model } from './gpt2/modeling.ts';
import { LlamaForCausalLM, LlamaMLP, LlamaModel } from './llama/modeling.ts';

export type WeightLayout = 'out_in' | 'in_out';

export interface AttentionAnatomy {
  /** The attention sub-block (what a pruned-away attention removes). */
  path: string;
  /** Query/key/value projections; for GPT-2 all three are the fused `c_attn` (see `fused`). */
  q: string;
  k: string;
  v: string;
  /** Output projection (its input is numHeads·headDim wide). */
  o: string;
  /**
   * GPT-2's fused c_attn: its output features hold q, k, v in that order, each numHeads·headDim wide (q heads
   * first, head h at [h·headDim, (h+1)·headDim) within each part).
   */
  fused?: string;
  numHeads: number;
  /** Key/value heads: numHeads except in grouped-query attention (Llama GQA). Query head h uses kv head ⌊h/(numHeads/numKvHeads)⌋. */
  numKvHeads: number;
  headDim: number;
  /** Heads pruned so far by pruneHeads, as indices among the original heads (BERT, GPT-2; [] for Llama). */
  prunedHeads: number[];
  layout: WeightLayout;
}

export interface MlpAnatomy {
  /**
   * The MLP slot: where a replacement goes (see {@link replaceMlp}) and where the MLP's keys live, except for
   * BERT's HF MLP, whose two modules are `up` (intermediate.dense) and `down` (output.dense) and whose slot
   * (`<layer>.mlp`) is empty.
   */
  path: string;
  /** 'dense': act(up(x)) → down; 'gated': down(act(gate(x)) · up(x)); 'custom': a replacement module (opaque). */
  kind: 'dense' | 'gated' | 'custom';
  up: string | null;
  gate?: string | null;
  down: string | null;
  /** Live width of the hidden layer (null for 'custom'). */
  intermediate: number | null;
  /** Config activation name (null for 'custom'). */
  activation: string | null;
  layout: WeightLayout;
  /** Class name of the module in the slot (BertIntermediate for BERT's HF MLP). */
  module: string;
}

export interface BlockAnatomy {
  index: number;
  path: string;
  /** null: attention pruned away (the sub-block is the identity). */
  attention: AttentionAnatomy | null;
  /** null: MLP pruned away (the sub-block is the identity). */
  mlp: MlpAnatomy | null;
  /** Norm modules present in the block, in forward order (kept even when the sub-block they close is pruned away). */
  norms: string[];
}

/** A checkpoint tensor one or more of whose dims is the hidden size. */
export interface HiddenTensor {
  key: string;
  dims: number[];
}

export interface ModelAnatomy {
  modelType: 'bert' | 'gpt2' | 'llama';
  className: string;
  /** Path of the base model inside this one ('' when the model is the base model). */
  base: string;
  hiddenSize: number;
  vocabSize: number;
  /** 'post': LayerNorm after each residual add (BERT); 'pre': norm before each sub-block (GPT-2, Llama). */
  normPlacement: 'post' | 'pre';
  /** Embedding tables (token, then position / segment ones). */
  embeddings: string[];
  /** Norm right after the embeddings (BERT), else null. */
  embeddingNorm: string | null;
  blocks: BlockAnatomy[];
  /** Norm after the last block (GPT-2 ln_f, Llama norm), else null. */
  finalNorm: string | null;
  /** BERT's pooler (dense + tanh on [CLS]) when present. */
  pooler: string | null;
  /** The task head: 'cls' (MLM), 'classifier', 'lm_head'; null for a base model. */
  head: string | null;
  /**
   * Saved checkpoint keys (tied duplicates left out) with the dims that are the hidden size, found by structure
   * (not by matching sizes). Tensors inside a replaced ('custom') MLP are not listed.
   */
  hiddenTensors: HiddenTensor[];
  /** Tied keys: key → the key it shares storage with. */
  tied: Record<string, string>;
}

type Role = 'emb' | 'norm' | 'in' | 'out' | 'inout';
type Uses = [path: string, role: Role][];

const join = (prefix: string, k: string) => (prefix ? `${prefix}.${k}` : k);
const layoutOf = (m: Module): WeightLayout => (m instanceof Conv1D ? 'in_out' : 'out_in');
/** Output width of a Linear ([out, in]) or Conv1D ([in, out]), or of a layer that replaced one (sparse, low-rank, quantized). */
const outWidth = (m: Module): number => {
  const out = (m as { outFeatures?: unknown }).outFeatures;
  if (typeof out === 'number') return out;
  return (m as Module & { weight: { shape: readonly number[] } }).weight.shape[layoutOf(m) === 'in_out' ? 1 : 0]!;
};

function customMlp(path: string, m: FeedForwardModule): MlpAnatomy {
  return { path, kind: 'custom', up: null, gate: null, down: null, intermediate: null, activation: null, layout: 'out_in', module: m.constructor.name };
}

function hiddenTensors(model: Module, uses: Uses): HiddenTensor[] {
  const saved = model.stateDict({ forSave: true });
  const dims = new Map<string, Set<number>>();
  const add = (key: string, d: number) => {
    if (!saved.has(key)) return;
    if (!dims.has(key)) dims.set(key, new Set());
    dims.get(key)!.add(d);
  };
  for (const [path, role] of uses) {
    const conv = layoutOf(model.getSubmodule(path)) === 'in_out';
    const inDim = conv ? 0 : 1;
    const outDim = conv ? 1 : 0;
    if (role === 'emb') add(`${path}.weight`, 1);
    if (role === 'norm') {
      add(`${path}.weight`, 0);
      add(`${path}.bias`, 0);
    }
    if (role === 'in' || role === 'inout') add(`${path}.weight`, inDim);
    if (role === 'out' || role === 'inout') {
      add(`${path}.weight`, outDim);
      add(`${path}.bias`, 0);
    }
  }
  return [...saved.keys()].filter((k) => dims.has(k)).map((key) => ({ key, dims: [...dims.get(key)!].sort() }));
}

function bertAnatomy(model: Module, base: BertModel, prefix: string): ModelAnatomy {
  const cfg = base.config;
  const p = (s: string) => join(prefix, s);
  const uses: Uses = [];
  const embeddings = ['word_embeddings', 'position_embeddings', 'token_type_embeddings'].map((n) => p(`embeddings.${n}`));
  for (const e of embeddings) uses.push([e, 'emb']);
  uses.push([p('embeddings.LayerNorm'), 'norm']);
  const blocks = base.encoder.layer.map((layer, index): BlockAnatomy => {
    const lp = p(`encoder.layer.${index}`);
    const norms: string[] = [];
    let attention: AttentionAnatomy | null = null;
    if (layer.attention) {
      const sa = layer.attention.self;
      if (sa) {
        const a = `${lp}.attention`;
        attention = { path: a, q: `${a}.self.query`, k: `${a}.self.key`, v: `${a}.self.value`, o: `${a}.output.dense`, numHeads: sa.numHeads, numKvHeads: sa.numKvHeads, headDim: sa.headDim, prunedHeads: [...layer.attention.prunedHeads].sort((x, y) => x - y), layout: 'out_in' };
        uses.push([attention.q, 'in'], [attention.k, 'in'], [attention.v, 'in'], [attention.o, 'out']);
      }
      norms.push(`${lp}.attention.output.LayerNorm`);
    }
    let mlp: MlpAnatomy | null = null;
    if (layer.mlp) mlp = customMlp(`${lp}.mlp`, layer.mlp);
    else if (layer.intermediate && layer.output.dense) {
      mlp = { path: `${lp}.mlp`, kind: 'dense', up: `${lp}.intermediate.dense`, gate: null, down: `${lp}.output.dense`, intermediate: outWidth(layer.intermediate.dense), activation: cfg.hidden_act, layout: 'out_in', module: layer.intermediate.constructor.name };
      uses.push([mlp.up!, 'in'], [mlp.down!, 'out']);
    }
    norms.push(`${lp}.output.LayerNorm`);
    for (const n of norms) uses.push([n, 'norm']);
    return { index, path: lp, attention, mlp, norms };
  });
  const pooler = base.pooler ? p('pooler.dense') : null;
  if (pooler) uses.push([pooler, 'inout']);
  let head: string | null = null;
  if (model instanceof BertForMaskedLM) {
    head = 'cls';
    uses.push(['cls.predictions.transform.dense', 'inout'], ['cls.predictions.transform.LayerNorm', 'norm'], ['cls.predictions.decoder', 'in']);
  } else if (model instanceof BertForSequenceClassification) {
    head = 'classifier';
    uses.push(['classifier', 'in']);
  }
  return {
    modelType: 'bert', className: model.constructor.name, base: prefix, hiddenSize: cfg.hidden_size, vocabSize: cfg.vocab_size, normPlacement: 'post',
    embeddings, embeddingNorm: p('embeddings.LayerNorm'), blocks, finalNorm: null, pooler: base.pooler ? p('pooler') : null, head,
    hiddenTensors: hiddenTensors(model, uses), tied: { ...model.tiedKeys() },
  };
}

function gpt2Anatomy(model: Module, base: GPT2Model, prefix: string): ModelAnatomy {
  const cfg = base.config;
  const p = (s: string) => join(prefix, s);
  const embeddings = [p('wte'), p('wpe')];
  const uses: Uses = embeddings.map((e) => [e, 'emb']);
  const blocks = base.h.map((block, index): BlockAnatomy => {
    const lp = p(`h.${index}`);
    let attention: AttentionAnatomy | null = null;
    if (block.attn) {
      const fused = `${lp}.attn.c_attn`;
      attention = { path: `${lp}.attn`, q: fused, k: fused, v: fused, o: `${lp}.attn.c_proj`, fused, numHeads: block.attn.numHeads, numKvHeads: block.attn.numKvHeads, headDim: block.attn.headDim, prunedHeads: [...block.attn.prunedHeads].sort((x, y) => x - y), layout: layoutOf(block.attn.c_attn) };
      uses.push([fused, 'in'], [attention.o, 'out']);
    }
    let mlp: MlpAnatomy | null = null;
    if (block.mlp instanceof GPT2MLP) {
      mlp = { path: `${lp}.mlp`, kind: 'dense', up: `${lp}.mlp.c_fc`, gate: null, down: `${lp}.mlp.c_proj`, intermediate: outWidth(block.mlp.c_fc), activation: cfg.activation_function, layout: layoutOf(block.mlp.c_fc), module: 'GPT2MLP' };
      uses.push([mlp.up!, 'in'], [mlp.down!, 'out']);
    } else if (block.mlp) mlp = customMlp(`${lp}.mlp`, block.mlp);
    const norms = [`${lp}.ln_1`, `${lp}.ln_2`];
    for (const n of norms) uses.push([n, 'norm']);
    return { index, path: lp, attention, mlp, norms };
  });
  uses.push([p('ln_f'), 'norm']);
  const head = model instanceof GPT2LMHeadModel ? 'lm_head' : null;
  if (head) uses.push([head, 'in']);
  return {
    modelType: 'gpt2', className: model.constructor.name, base: prefix, hiddenSize: cfg.n_embd, vocabSize: cfg.vocab_size, normPlacement: 'pre',
    embeddings, embeddingNorm: null, blocks, finalNorm: p('ln_f'), pooler: null, head, hiddenTensors: hiddenTensors(model, uses), tied: { ...model.tiedKeys() },
  };
}

function llamaAnatomy(model: Module, base: LlamaModel, prefix: string): ModelAnatomy {
  const cfg = base.config;
  const p = (s: string) => join(prefix, s);
  const embeddings = [p('embed_tokens')];
  const uses: Uses = [[embeddings[0]!, 'emb']];
  const blocks = base.layers.map((layer, index): BlockAnatomy => {
    const lp = p(`layers.${index}`);
    let attention: AttentionAnatomy | null = null;
    const sa = layer.self_attn;
    if (sa) {
      const a = `${lp}.self_attn`;
      attention = { path: a, q: `${a}.q_proj`, k: `${a}.k_proj`, v: `${a}.v_proj`, o: `${a}.o_proj`, numHeads: sa.numHeads, numKvHeads: sa.numKvHeads, headDim: sa.headDim, prunedHeads: [], layout: 'out_in' };
      uses.push([attention.q, 'in'], [attention.k, 'in'], [attention.v, 'in'], [attention.o, 'out']);
    }
    let mlp: MlpAnatomy | null = null;
    if (layer.mlp instanceof LlamaMLP) {
      const m = `${lp}.mlp`;
      mlp = { path: m, kind: 'gated', up: `${m}.up_proj`, gate: `${m}.gate_proj`, down: `${m}.down_proj`, intermediate: outWidth(layer.mlp.up_proj), activation: cfg.hidden_act, layout: 'out_in', module: 'LlamaMLP' };
      uses.push([mlp.up!, 'in'], [mlp.gate!, 'in'], [mlp.down!, 'out']);
    } else if (layer.mlp) mlp = customMlp(`${lp}.mlp`, layer.mlp);
    const norms = [`${lp}.input_layernorm`, `${lp}.post_attention_layernorm`];
    for (const n of norms) uses.push([n, 'norm']);
    return { index, path: lp, attention, mlp, norms };
  });
  uses.push([p('norm'), 'norm']);
  const head = model instanceof LlamaForCausalLM ? 'lm_head' : null;
  if (head) uses.push([head, 'in']);
  return {
    modelType: 'llama', className: model.constructor.name, base: prefix, hiddenSize: cfg.hidden_size, vocabSize: cfg.vocab_size, normPlacement: 'pre',
    embeddings, embeddingNorm: null, blocks, finalNorm: p('norm'), pooler: null, head, hiddenTensors: hiddenTensors(model, uses), tied: { ...model.tiedKeys() },
  };
}

/** The anatomy of a BERT, GPT-2 or Llama model (base model or one with a task head), read from its live modules. */
export function anatomy(model: Module): ModelAnatomy {
  if (model instanceof BertModel) return bertAnatomy(model, model, '');
  if (model instanceof BertForMaskedLM || model instanceof BertForSequenceClassification) return bertAnatomy(model, model.bert, 'bert');
  if (model instanceof GPT2Model) return gpt2Anatomy(model, model, '');
  if (model instanceof GPT2LMHeadModel) return gpt2Anatomy(model, model.transformer, 'transformer');
  if (model instanceof LlamaModel) return llamaAnatomy(model, model, '');
  if (model instanceof LlamaForCausalLM) return llamaAnatomy(model, model.model, 'model');
  throw new Error(`anatomy: no description for ${model?.constructor?.name} (supported: BERT, GPT-2 and Llama models)`);
}

/** The block modules (BertLayer, GPT2Block, LlamaDecoderLayer) of a supported model. */
function blockModules(model: Module): Module[] {
  const a = anatomy(model);
  return a.blocks.map((b) => model.getSubmodule(b.path));
}

/**
 * Put `mlp` in block `index`'s MLP slot, or prune the MLP away with null (the sub-block becomes the identity:
 * BertLayer.setMlp for BERT, the `mlp` field for GPT-2 and Llama). Returns the new anatomy of that block.
 */
export function replaceMlp(model: Module, index: number, mlp: FeedForwardModule | null): BlockAnatomy {
  const block = blockModules(model)[index];
  if (!block) throw new Error(`replaceMlp: no block ${index}`);
  const b = block as Module & { setMlp?: (m: FeedForwardModule | null) => void; mlp: FeedForwardModule | null };
  if (typeof b.setMlp === 'function') b.setMlp(mlp);
  else b.mlp = mlp;
  return anatomy(model).blocks[index]!;
}

/** Prune block `index`'s attention away (the sub-block becomes the identity). Returns the new anatomy of that block. */
export function removeAttention(model: Module, index: number): BlockAnatomy {
  const block = blockModules(model)[index] as (Module & Record<string, unknown>) | undefined;
  if (!block) throw new Error(`removeAttention: no block ${index}`);
  const field = 'attention' in block ? 'attention' : 'attn' in block ? 'attn' : 'self_attn';
  block[field] = null;
  return anatomy(model).blocks[index]!;
}
