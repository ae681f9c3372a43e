/**
 * Where CoFi's masks multiply inside a BERT, as upstream's CoFi model classes do (princeton-nlp/CoFiPruning,
 * models/modeling_bert.py at da855a8), installed on a stock BertModel by overriding the forward of four kinds of
 * instances — the model classes are never forked and nothing here changes a checkpoint key:
 *
 * - embeddings: `(word + position + type) · z_hidden` → LayerNorm over the kept hidden dims → dropout → `· z_hidden`;
 * - attention output (`attention.output`): each head's context `· z_head[l, h]`, then `dense(·) · z_head_layer[l]`;
 *   a layer whose MHA mask is exactly 0 returns its input (no LayerNorm); else `· z_hidden` → dropout →
 *   LayerNorm(· + residual) over the kept dims → `· z_hidden`;
 * - MLP output (`output`): the intermediate activations `· z_int[l, i]`, then `dense(·) · z_mlp[l]`; a zero MLP
 *   mask returns the input; else as above.
 *
 * "LayerNorm over the kept dims" (upstream CoFiLayerNorm): the statistics and affine parameters of the dims whose
 * z_hidden is non-zero only; the other dims pass their input through unchanged.
 *
 * The masks come from `current()`, called once per model forward (at the embeddings); null runs the plain
 * model (CoFi's pre-pruning fine-tuning steps). `remove()` puts the original forwards back.
 */
import type { Module } from '../../nn/module.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { cat, layerNorm } from '../../ops/index.ts';
import type { LayerNorm } from '../../nn/layers.ts';
import { registerForwardHook, registerForwardPreHook, type HookHandle } from '../../nn/hooks.ts';
import { BertEmbeddings, BertModel, BertResidualOutput, type BertLayer } from '../../models/bert/modeling.ts';

/** One set of masks, in natural shapes: head [L, H], headLayer [L], intermediate [L, I], mlp [L], hidden [d]. */
export interface CofiZ {
  head?: Tensor;
  headLayer?: Tensor;
  intermediate?: Tensor;
  mlp?: Tensor;
  hidden?: Tensor;
}

/** LayerNorm over the dims where `z` is non-zero (others pass through), as upstream CoFiLayerNorm. */
export function maskedLayerNorm(ln: LayerNorm, x: Tensor, z: Tensor | undefined): Tensor {
  const d = x.shape[x.ndim - 1]!;
  const plain = () => layerNorm(x, [d], ln.weight, ln.bias, ln.eps);
  if (!z) return plain();
  const zv = z.toArray() as Float32Array;
  const kept: number[] = [];
  const dropped: number[] = [];
  for (let i = 0; i < d; i++) (zv[i] !== 0 ? kept : dropped).push(i);
  if (dropped.length === 0) return plain();
  if (kept.length === 0) return x;
  const k = Tensor.from(Int32Array.from(kept));
  const normed = layerNorm(x.indexSelect(-1, k), [kept.length], ln.weight ? ln.weight.indexSelect(0, k) : null, ln.bias ? ln.bias.indexSelect(0, k) : null, ln.eps);
  const order = [...kept, ...dropped];
  const inverse = new Int32Array(d);
  order.forEach((src, pos) => (inverse[src] = pos));
  return cat([normed, x.indexSelect(-1, Tensor.from(Int32Array.from(dropped)))], -1).indexSelect(-1, Tensor.from(inverse));
}

/** The BERT base model inside a BertModel / BertForSequenceClassification / BertForMaskedLM. */
export function bertBase(model: Module): BertModel {
  if (model instanceof BertModel) return model;
  const b = (model as { bert?: unknown }).bert;
  if (b instanceof BertModel) return b;
  throw new Error(`prune.cofi: supports BERT models (BertModel, BertForSequenceClassification, BertForMaskedLM), got ${model.constructor.name}`);
}

type Forward = (...args: never[]) => unknown;

/** Give `m` an own forward (the class's stays untouched); returns the undo. */
function overrideForward(m: Module, fn: Forward): () => void {
  const prior = Object.getOwnPropertyDescriptor(m, 'forward');
  Object.defineProperty(m, 'forward', { value: fn, configurable: true, writable: true, enumerable: false });
  return () => {
    if (prior) Object.defineProperty(m, 'forward', prior);
    else delete (m as unknown as Record<string, unknown>).forward;
  };
}

/** Per-head mask of layer `l` repeated over each head's dims: [H·hd]. */
function headVector(head: Tensor, l: number, headDim: number): Tensor {
  const row = head.select(0, l);
  const H = row.shape[0]!;
  return row.reshape([H, 1]).expand([H, headDim]).reshape([H * headDim]);
}

const scalarOf = (t: Tensor, l: number) => t.select(0, l);
const valueAt = (t: Tensor, l: number) => (t.toArray() as Float32Array)[l]!;

/** The residual output (attention's or the MLP's) of layer `l` with its masks: `unit` multiplies the input, `whole` the dense output. */
function maskedResidual(out: BertResidualOutput, h: Tensor, residual: Tensor, z: CofiZ, unit: Tensor | null, whole: { t: Tensor; l: number } | null): Tensor {
  if (unit) h = h.mul(unit);
  let d = out.dense!.forward(h);
  if (whole) {
    if (valueAt(whole.t, whole.l) === 0) return residual;
    d = d.mul(scalarOf(whole.t, whole.l));
  }
  if (z.hidden) d = d.mul(z.hidden);
  d = out.dropout.forward(d);
  let y = maskedLayerNorm(out.LayerNorm, d.add(residual), z.hidden);
  if (z.hidden) y = y.mul(z.hidden);
  return y;
}

export interface InstalledMasks {
  /** The masks of the latest forward (null: unmasked). */
  last(): CofiZ | null;
  remove(): void;
}

/**
 * Install CoFi's masks on a BERT: every model forward asks `current()` once for the masks it uses. The model must
 * be unpruned and uniform (every layer with its attention and dense MLP).
 */
export function installMasks(model: Module, current: () => CofiZ | null): InstalledMasks {
  const base = bertBase(model);
  let z: CofiZ | null = null;
  const undo: (() => void)[] = [];
  const hooks: HookHandle[] = [];
  const emb: BertEmbeddings = base.embeddings;
  hooks.push(registerForwardPreHook(emb, () => void (z = current())));
  const lnForward = emb.LayerNorm.forward.bind(emb.LayerNorm);
  undo.push(overrideForward(emb.LayerNorm, ((x: Tensor) => (z?.hidden ? maskedLayerNorm(emb.LayerNorm, x.mul(z.hidden), z.hidden) : lnForward(x))) as Forward));
  hooks.push(registerForwardHook(emb, (_m, _i, out) => (z?.hidden ? (out as Tensor).mul(z.hidden) : undefined)));
  base.encoder.layer.forEach((layer: BertLayer, l) => {
    const att = layer.attention;
    if (!att?.self || !layer.intermediate || !layer.output.dense) throw new Error(`prune.cofi: layer ${l} is already pruned (CoFi starts from an unpruned model)`);
    const headDim = att.self.headDim;
    const ao = att.output;
    const aoForward = ao.forward.bind(ao);
    undo.push(
      overrideForward(ao, ((h: Tensor, residual: Tensor) =>
        z ? maskedResidual(ao, h, residual, z, z.head ? headVector(z.head, l, headDim) : null, z.headLayer ? { t: z.headLayer, l } : null) : aoForward(h, residual)) as Forward),
    );
    const mo = layer.output;
    const moForward = mo.forward.bind(mo);
    undo.push(
      overrideForward(mo, ((h: Tensor, residual: Tensor) =>
        z ? maskedResidual(mo, h, residual, z, z.intermediate ? z.intermediate.select(0, l) : null, z.mlp ? { t: z.mlp, l } : null) : moForward(h, residual)) as Forward),
    );
  });
  return {
    last: () => z,
    remove: () => {
      for (const h of hooks) h.remove();
      for (const u of undo.reverse()) u();
    },
  };
}
