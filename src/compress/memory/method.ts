/**
 * `memory.trime`: train a causal LM (GPT-2, Llama) with the TRIME loss over in-batch memories (trime.ts).
 *
 * The memory keys and queries are the input of the last block's FFN after its norm (upstream `--knn-keytype
 * last_ffn_input`: GPT-2 `ln_2`, Llama `post_attention_layernorm` of the last block, found through the anatomy),
 * captured by a forward hook with their graph, so gradients flow through queries and memory alike. The step owns the
 * task term (its loss replaces cross-entropy), so the stage's `train.task_weight` must be 0; `ce_warmup` steps of
 * plain cross-entropy come first (upstream trains its first epochs with CE).
 *
 * Variants: `local` (previous tokens of the segment), `long` (each batch row is split into `segments` consecutive
 * segments that the model reads independently, in order — upstream's keep-order batching — and every token sees the
 * row's earlier segments and its own prefix), `ext` (every other segment of the batch, with the token's own segment
 * dropped from memory with probability `cross_sent_ratio`, drawn per step from the stage's seed, so a resume is exact).
 */
import type { Module } from '../../nn/module.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { Tensor as T } from '../../tensor/tensor.ts';
import { anatomy } from '../../models/anatomy.ts';
import { registerForwardHook, registerForwardPreHook, type HookHandle } from '../../nn/hooks.ts';
import type { ModelInputs } from '../../models/outputs.ts';
import { registerMethod, type Method, type MethodRun, type RecipeContext } from '../method.ts';
import { MEMORY_VARIANTS, trimeLoss, type MemoryVariant } from './trime.ts';

export interface TrimeConfig {
  variant: MemoryVariant;
  /** Consecutive segments each batch row is split into (long: default 4; local/ext: 1). 0 = the variant's default. */
  segments: number;
  /** ext: probability of dropping the token's own segment from memory per step (upstream --cross-sent-ratio). */
  cross_sent_ratio: number;
  /** Steps of plain cross-entropy before the TRIME loss takes over. */
  ce_warmup: number;
}

/** The module whose output is the TRIME key (the last block's FFN input after its norm). */
export function lastFfnInput(model: Module): string {
  const a = anatomy(model);
  if (a.modelType === 'bert') throw new Error(`memory: needs a causal LM (GPT-2 or Llama), got ${a.className}`);
  const last = a.blocks[a.blocks.length - 1];
  if (!last || last.norms.length < 2) throw new Error(`memory: ${a.className} has no last block with an FFN norm`);
  return last.norms[1]!;
}

function segmentsOf(cfg: TrimeConfig): number {
  return cfg.segments > 0 ? cfg.segments : cfg.variant === 'long' ? 4 : 1;
}

function check(model: Module, cfg: TrimeConfig, ctx?: RecipeContext): void {
  const n = 'memory.trime';
  if (!(MEMORY_VARIANTS as readonly string[]).includes(cfg.variant)) throw new Error(`${n}: option 'variant' must be one of ${MEMORY_VARIANTS.join(', ')}, got '${cfg.variant}'`);
  if (!(Number.isInteger(cfg.segments) && cfg.segments >= 0)) throw new Error(`${n}: option 'segments' must be an integer >= 0, got ${cfg.segments}`);
  if (cfg.variant !== 'long' && segmentsOf(cfg) !== 1) throw new Error(`${n}: option 'segments' applies to variant 'long' (local/ext rows are one segment each)`);
  if (!(cfg.cross_sent_ratio >= 0 && cfg.cross_sent_ratio <= 1)) throw new Error(`${n}: option 'cross_sent_ratio' must be in [0, 1], got ${cfg.cross_sent_ratio}`);
  if (!(Number.isInteger(cfg.ce_warmup) && cfg.ce_warmup >= 0)) throw new Error(`${n}: option 'ce_warmup' must be an integer >= 0, got ${cfg.ce_warmup}`);
  lastFfnInput(model);
  const T = ctx?.train?.max_length;
  if (T !== undefined && T % segmentsOf(cfg) !== 0) throw new Error(`${n}: train.max_length ${T} is not a multiple of segments ${segmentsOf(cfg)}`);
  if (T !== undefined && T / segmentsOf(cfg) < 2) throw new Error(`${n}: segments of ${T / segmentsOf(cfg)} token(s) are too short (need >= 2)`);
  if (ctx?.train && ctx.train.task_weight !== 0)
    throw new Error(`${n}: the TRIME loss replaces the task's cross-entropy; set train.task_weight to 0 (got ${ctx.train.task_weight})`);
}

/** A deterministic uniform draw in [0, 1) for (seed, step) (resumes draw the same). */
function draw(seed: number, step: number): number {
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step + 1, 0xc2b2ae35)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return (x >>> 0) / 4294967296;
}

function splitRows(t: Tensor, S: number): Tensor {
  const [B, L] = t.shape as [number, number];
  return t.reshape(B * S, L / S);
}

export const memoryTrime: Method<TrimeConfig> = {
  name: 'memory.trime',
  kind: 'trained',
  description: 'TRIME: train a causal LM with in-batch memories (local, long or external), jointly normalised with the vocabulary',
  defaults: { variant: 'local', segments: 0, cross_sent_ratio: 0.9, ce_warmup: 0 },
  types: { variant: MEMORY_VARIANTS, segments: 'integer', ce_warmup: 'integer' },
  check: (model, cfg, ctx) => check(model, cfg, ctx),
  apply: (model, cfg, ctx: RecipeContext): MethodRun => {
    check(model, cfg, ctx);
    const S = segmentsOf(cfg);
    const keyName = lastFfnInput(model);
    let reps: Tensor | null = null;
    const handles: HookHandle[] = [registerForwardHook(model.getSubmodule(keyName), (_m, _i, y) => void (reps = y as Tensor))];
    if (S > 1)
      // long memory: the model reads each row as S consecutive segments of its own (training only)
      handles.push(
        registerForwardPreHook(model, (m, args) => {
          if (!m.training) return;
          const inp = args[0] as ModelInputs;
          if (inp.attentionMask) throw new Error('memory.trime: long memory splits rows into segments and does not support padded batches');
          return [{ ...inp, inputIds: splitRows(inp.inputIds, S), labels: inp.labels ? splitRows(inp.labels, S) : inp.labels, positionIds: null }, ...args.slice(1)];
        }),
      );
    const seed = ctx.train?.seed ?? 0;
    let lastDrop = false;
    let lastMem = 0;
    ctx.log?.(`memory.trime: ${cfg.variant} memory, keys at ${keyName}${S > 1 ? `, ${S} segments per row` : ''}${cfg.ce_warmup ? `, ${cfg.ce_warmup} CE warm-up steps` : ''}`);
    return {
      losses: ({ batch, student, step }) => {
        if (step < cfg.ce_warmup) {
          if (!student.loss) throw new Error('memory.trime: CE warm-up needs the model\'s loss (labels missing?)');
          return { ce: student.loss };
        }
        if (!reps) throw new Error(`memory.trime: no representation captured at ${keyName}`);
        const h = reps as Tensor;
        reps = null;
        const labels = batch.labels ?? batch.inputIds;
        const lab = S > 1 ? splitRows(labels, S) : labels;
        const [B, L] = lab.shape as [number, number];
        const logits = student.logits; // [B, L, V]
        const V = logits.shape[2]!;
        if (h.shape[0] !== B || h.shape[1] !== L) throw new Error(`memory.trime: captured keys [${h.shape}] do not match the batch [${B}, ${L}]`);
        // position t predicts label t+1 (the models shift internally): keep positions 0..L-2
        const y = lab.narrow(1, 1, L - 1).contiguous();
        if (batch.attentionMask) {
          const am = (S > 1 ? splitRows(batch.attentionMask, S) : batch.attentionMask).narrow(1, 1, L - 1).toArray() as ArrayLike<number>;
          const yd = Int32Array.from(y.toArray() as ArrayLike<number>, Number);
          for (let i = 0; i < yd.length; i++) if (!am[i]) yd[i] = -100;
          return lossOf(h, logits, T.from(yd, { shape: [B, L - 1] }), B, L, V, step);
        }
        return lossOf(h, logits, y, B, L, V, step);
      },
      finalize: () => handles.forEach((x) => x.remove()),
      report: () => ({ variant: cfg.variant, key: keyName, segments: S, memory_last_step: lastMem, dropped_local_last_step: String(lastDrop) }),
    };

    function lossOf(h: Tensor, logits: Tensor, y: Tensor, B: number, L: number, V: number, step: number): Record<string, Tensor> {
      const dropLocal = cfg.variant === 'ext' && draw(seed, step) < cfg.cross_sent_ratio;
      const r = trimeLoss(h.narrow(1, 0, L - 1), logits.narrow(1, 0, L - 1).reshape(B * (L - 1), V), y, {
        variant: cfg.variant,
        dropLocal,
        chains: cfg.variant === 'long' ? B / S : 1,
      });
      lastDrop = dropLocal;
      lastMem = r.sampleSize;
      return { trime: r.loss.div(r.sampleSize) };
    }
  },
};

registerMethod(memoryTrime);
