/**
 * Turn a CoFi-masked BERT into the small model it stands for: fold the deterministic masks into the weights, then
 * physically remove every zeroed head, FFN dimension, hidden dimension and sub-block.
 *
 * Folding is exact (the folded, pruned model computes what the masked one does), which upstream's
 * `update_params` is not for soft hidden masks: upstream multiplies z_hidden into the input side of q/k/v and the
 * FFN, but the masked forward scales every LayerNorm output by z_hidden, so we fold z_hidden into each LayerNorm's
 * weight and bias, the embedding tables and the output rows of the dense layers that write the residual stream.
 * The dims with z_hidden = 0 are then zero everywhere in the residual stream and are cut from every hidden tensor.
 *
 * Per layer l: z_head into the value rows (each head's context is linear in its values), z_head_layer and z_mlp into
 * the output rows and bias of the sub-block's dense, z_int into the columns of the FFN's output dense. A sub-block
 * whose whole mask is 0 becomes the identity (null), heads and FFN dims with mask 0 are cut out. One difference
 * stays, as upstream: a layer that loses every head but keeps a non-zero MHA mask had a constant (bias) output;
 * the pruned model drops that sub-block, as upstream's pruned models do.
 */
import type { Module } from '../../nn/module.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { Embedding, LayerNorm, Linear, sliceEmbedding, sliceLayerNorm, sliceLinear } from '../../nn/layers.ts';
import { anatomy, removeAttention, replaceMlp } from '../../models/anatomy.ts';
import { keepNeurons, pruneAttentionUnits, range } from '../prune/importance.ts';
import type { CofiZ } from './masked.ts';

const values = (t: Tensor | undefined): Float32Array | null => (t ? (t.toArray() as Float32Array) : null);

/** Multiply a Linear's output rows (and bias) by `s` ([out]). */
function scaleRows(l: Linear, s: Float32Array): void {
  const col = Tensor.from(s).reshape([s.length, 1]);
  l.weight.copy_(l.weight.mul(col));
  if (l.bias) l.bias.copy_(l.bias.mul(Tensor.from(s)));
}
/** Multiply a Linear's input columns by `s` ([in]). */
function scaleCols(l: Linear, s: Float32Array): void {
  l.weight.copy_(l.weight.mul(Tensor.from(s)));
}
function scaleNorm(n: LayerNorm, s: Float32Array): void {
  if (n.weight) n.weight.copy_(n.weight.mul(Tensor.from(s)));
  if (n.bias) n.bias.copy_(n.bias.mul(Tensor.from(s)));
}
const full = (n: number, v: number) => new Float32Array(n).fill(v);

export interface PruneCounts {
  heads: number[];
  ffn: number[];
  hidden: number;
  attentionRemoved: number[];
  mlpRemoved: number[];
}

/** Fold `z` (deterministic masks) into `model` and cut what they zero. The model must be the unpruned one the masks were made for. */
export function foldAndPrune(model: Module, z: CofiZ): PruneCounts {
  return noGrad(() => {
    const a = anatomy(model);
    const d = a.hiddenSize;
    const get = <M extends Module>(p: string) => model.getSubmodule(p) as M;
    const hidden = values(z.hidden) ?? full(d, 1);
    const head = values(z.head);
    const headLayer = values(z.headLayer);
    const inter = values(z.intermediate);
    const mlp = values(z.mlp);

    // 1. fold
    for (const e of a.embeddings) {
      const emb = get<Embedding>(e);
      emb.weight.copy_(emb.weight.mul(Tensor.from(hidden)));
    }
    scaleNorm(get<LayerNorm>(a.embeddingNorm!), hidden);
    const dropAtt: number[] = [];
    const dropMlp: number[] = [];
    const dropHeads: number[][] = [];
    const keepFfn: number[][] = [];
    for (const b of a.blocks) {
      const l = b.index;
      const att = b.attention!;
      const H = att.numHeads;
      const hd = att.headDim;
      if (head) scaleRows(get<Linear>(att.v), Float32Array.from({ length: H * hd }, (_, j) => head[l * H + Math.floor(j / hd)]!));
      const hl = headLayer ? headLayer[l]! : 1;
      scaleRows(get<Linear>(att.o), hidden.map((v) => v * hl));
      scaleNorm(get<LayerNorm>(b.norms[0]!), hidden);
      const mlpA = b.mlp!;
      const I = mlpA.intermediate!;
      const zi = inter ? inter.subarray(l * I, (l + 1) * I) : full(I, 1);
      scaleCols(get<Linear>(mlpA.down!), zi);
      const ml = mlp ? mlp[l]! : 1;
      scaleRows(get<Linear>(mlpA.down!), hidden.map((v) => v * ml));
      scaleNorm(get<LayerNorm>(b.norms[1]!), hidden);
      const deadHeads = range(H).filter((h) => (head ? head[l * H + h] === 0 : false));
      if (hl === 0 || deadHeads.length === H) dropAtt.push(l);
      dropHeads.push(deadHeads);
      const kept = range(I).filter((i) => zi[i] !== 0);
      if (ml === 0 || kept.length === 0) dropMlp.push(l);
      keepFfn.push(kept);
    }

    // 2. cut heads, FFN dims and sub-blocks
    for (const b of a.blocks) {
      const l = b.index;
      if (dropAtt.includes(l)) removeAttention(model, l);
      else pruneAttentionUnits(model, l, dropHeads[l]!);
      if (dropMlp.includes(l)) replaceMlp(model, l, null);
      else keepNeurons(model, l, keepFfn[l]!);
    }

    // 3. cut hidden dims from every tensor of the residual stream
    const keep = range(d).filter((i) => hidden[i] !== 0);
    if (keep.length < d) {
      if (keep.length === 0) throw new Error('prune.cofi: every hidden dimension is masked; nothing is left of the model');
      const after = anatomy(model);
      for (const e of after.embeddings) model.setSubmodule(e, sliceEmbedding(get<Embedding>(e), keep));
      model.setSubmodule(after.embeddingNorm!, sliceLayerNorm(get<LayerNorm>(after.embeddingNorm!), keep));
      for (const b of after.blocks) {
        if (b.attention) {
          for (const p of [b.attention.q, b.attention.k, b.attention.v]) model.setSubmodule(p, sliceLinear(get<Linear>(p), { inIdx: keep }));
          model.setSubmodule(b.attention.o, sliceLinear(get<Linear>(b.attention.o), { outIdx: keep }));
        }
        if (b.mlp) {
          model.setSubmodule(b.mlp.up!, sliceLinear(get<Linear>(b.mlp.up!), { inIdx: keep }));
          model.setSubmodule(b.mlp.down!, sliceLinear(get<Linear>(b.mlp.down!), { outIdx: keep }));
        }
        for (const n of b.norms) model.setSubmodule(n, sliceLayerNorm(get<LayerNorm>(n), keep));
      }
      if (after.pooler) model.setSubmodule(`${after.pooler}.dense`, sliceLinear(get<Linear>(`${after.pooler}.dense`), { inIdx: keep }));
      if (after.head === 'cls') model.setSubmodule('cls.predictions.transform.dense', sliceLinear(get<Linear>('cls.predictions.transform.dense'), { inIdx: keep }));
    }
    const final = anatomy(model);
    return {
      heads: final.blocks.map((b) => b.attention?.numHeads ?? 0),
      ffn: final.blocks.map((b) => b.mlp?.intermediate ?? 0),
      hidden: keep.length,
      attentionRemoved: dropAtt,
      mlpRemoved: dropMlp,
    };
  });
}
