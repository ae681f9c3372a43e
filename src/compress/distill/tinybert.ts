/**
 * `distill.tinybert`: TinyBERT (Jiao et al. 2020), losses as huawei-noah/Pretrained-Language-Model TinyBERT/
 * general_distill.py and task_distill.py compute them (see losses.ts), one step per stage:
 * - `stage: "general"`: attention + hidden-state (+ embedding) losses from a pretrained (MLM) teacher — the step's
 *   `teacher` folder — on the task's text, labels unused (set the stage's `train.task_weight` to 0); upstream
 *   trains this step with BertAdam's warm-up + linear decay;
 * - `stage: "intermediate"`: the same losses from the fine-tuned teacher on task data; upstream runs it with no LR
 *   schedule (`schedule: "constant"`, `warmup: 0` in the step's `train`);
 * - `stage: "prediction"`: upstream soft_cross_entropy(s/T, t/T) on the logits (MSE to the labels for a
 *   regression head); upstream: linear warm-up then linear decay.
 *
 * Losses reported (short names, the runner prefixes `distill.tinybert.`): `att` (Σ attention MSE), `embedding`
 * (MSE of state 0), `hidden` (Σ MSE of states 1..L) — upstream's rep_loss is embedding + hidden, its loss att + rep —
 * and `pred`. Student hidden states go through one shared `fit_dense` Linear(student hidden → teacher hidden) when
 * the widths differ (`fit_dense: "always"` adds it regardless, as upstream's models always carry one); it is a
 * parameter group of the step (checkpointed as `distill.tinybert.fit_dense.*`, weight decay 0.01 as upstream's
 * student parameters), carried from a general to an intermediate step on the same model, and never saved with the
 * student. The student is made as `distill.kd`'s (keep_layers, layers, student, or as is).
 */
import type { Module } from '../../nn/module.ts';
import { Linear } from '../../nn/layers.ts';
import { normal_ } from '../../nn/init.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { mseLoss } from '../../ops/index.ts';
import { anatomy } from '../../models/anatomy.ts';
import { registerMethod, type Method, type MethodRun, type RecipeContext } from '../method.ts';
import { layersPerBlock, tinybertIntermediateLosses, tinybertPredictionLoss } from './losses.ts';
import { STUDENT_DEFAULTS, STUDENT_TYPES, checkStudent, makeStudent, type StudentOptions } from './student.ts';
import { checkTeacherFolder, loadTeacher, teacherForward, type ForwardModel } from './teacher.ts';
import { studentReport } from './report.ts';

export const TINYBERT_STAGES = ['general', 'intermediate', 'prediction'] as const;
export type TinyBertStage = (typeof TINYBERT_STAGES)[number];

export interface TinyBertConfig extends StudentOptions {
  stage: TinyBertStage;
  /** Temperature of the prediction loss (upstream --temperature, default 1). */
  temperature: number;
  /** Include the embedding-output MSE (state 0) in the hidden losses, as upstream does. */
  embedding_loss: boolean;
  /** 'auto': a fit_dense projection when student and teacher widths differ; 'always' (upstream's models); 'never'. */
  fit_dense: 'auto' | 'always' | 'never';
  /** Learning rate of fit_dense (default: the stage's). */
  fit_dense_lr: number | null;
  /** The step's own teacher folder (default: the runner's teacher). */
  teacher: string | null;
}

const NAME = 'distill.tinybert';

/** fit_dense projections kept per model, so a general step's projection carries on into an intermediate step. */
const FIT_DENSE = new WeakMap<Module, Linear>();

/** Upstream init_bert_weights: normal(0, 0.02) weight, zero bias. */
export function newFitDense(studentHidden: number, teacherHidden: number, std = 0.02): Linear {
  const l = new Linear(studentHidden, teacherHidden);
  noGrad(() => {
    normal_(l.weight, 0, std);
    l.bias!.data.fill(0);
  });
  return l;
}

function check(model: Module, cfg: TinyBertConfig): void {
  if (!(cfg.temperature > 0)) throw new Error(`${NAME}: option 'temperature' must be > 0, got ${cfg.temperature}`);
  if (cfg.fit_dense_lr !== null && !(cfg.fit_dense_lr > 0)) throw new Error(`${NAME}: option 'fit_dense_lr' must be > 0, got ${cfg.fit_dense_lr}`);
  checkStudent(NAME, model, cfg);
  checkTeacherFolder(NAME, cfg.teacher);
}

export const distillTinyBert: Method<TinyBertConfig> = {
  name: NAME,
  kind: 'trained',
  description: 'TinyBERT distillation (upstream losses): stage general / intermediate (attention-score + hidden-state MSE via fit_dense) or prediction (soft cross-entropy)',
  defaults: { stage: 'intermediate', temperature: 1, embedding_loss: true, fit_dense: 'auto', fit_dense_lr: null, teacher: null, ...STUDENT_DEFAULTS },
  types: { stage: TINYBERT_STAGES, fit_dense: ['auto', 'always', 'never'], fit_dense_lr: 'number', teacher: 'string', ...STUDENT_TYPES },
  check: (model, cfg) => check(model, cfg),
  apply: (model, cfg, ctx: RecipeContext): MethodRun => {
    check(model, cfg);
    const before = model.parameters().reduce((n, p) => n + p.numel, 0);
    const made = makeStudent(model, cfg); // not inside ctx.log?.(…): optional chaining would skip it without a log
    ctx.log?.(`${NAME} (${cfg.stage}): ${made}`);
    if (cfg.stage === 'general' && ctx.train && ctx.train.task_weight !== 0)
      ctx.log?.(`${NAME}: note: the general stage trains on the distillation losses only upstream; this stage also has task_weight ${ctx.train.task_weight}`);
    const own = cfg.teacher !== null ? loadTeacher(cfg.teacher) : null;
    const teacher = (own ?? ctx.teacher) as ForwardModel | undefined;
    if (!teacher) throw new Error(`${NAME}: needs a teacher model, and none was given`);
    const intermediate = cfg.stage !== 'prediction';
    let fit: Linear | null = null;
    if (intermediate) {
      const sa = anatomy(model);
      const ta = anatomy(teacher);
      layersPerBlock(ta.blocks.length, sa.blocks.length); // throws when the teacher's layers are not a multiple
      const heads = sa.blocks.map((b) => b.attention?.numHeads);
      ta.blocks.forEach((b, i) => {
        const k = ta.blocks.length / sa.blocks.length;
        const m = (i - k + 1) / k;
        if (Number.isInteger(m) && heads[m] !== undefined && b.attention && heads[m] !== b.attention.numHeads)
          throw new Error(`${NAME}: student layer ${m} has ${heads[m]} heads, its teacher layer ${i} ${b.attention.numHeads}; the attention loss needs the same heads (student.heads)`);
      });
      const want = cfg.fit_dense === 'always' || (cfg.fit_dense === 'auto' && sa.hiddenSize !== ta.hiddenSize);
      if (cfg.fit_dense === 'never' && sa.hiddenSize !== ta.hiddenSize)
        throw new Error(`${NAME}: student hidden ${sa.hiddenSize} and teacher hidden ${ta.hiddenSize} differ; fit_dense 'never' cannot compare them`);
      if (want) {
        const prev = FIT_DENSE.get(model);
        fit = prev && prev.weight.shape[0] === ta.hiddenSize && prev.weight.shape[1] === sa.hiddenSize ? prev : newFitDense(sa.hiddenSize, ta.hiddenSize);
        FIT_DENSE.set(model, fit);
      }
    }
    const fwd = intermediate ? { outputHiddenStates: true, outputAttentionScores: true } : {};
    return {
      needs: { teacher: own === null, hiddenStates: intermediate, attentionScores: intermediate },
      params: () => (fit ? [{ name: 'fit_dense', params: [['weight', fit.weight], ['bias', fit.bias!]] as [string, Tensor][], weightDecay: 0.01, ...(cfg.fit_dense_lr !== null ? { lr: cfg.fit_dense_lr } : {}) }] : []),
      losses: ({ batch, student, teacher: tOut }) => {
        const t = own ? teacherForward(own, batch, fwd) : tOut;
        if (!t) throw new Error(`${NAME}: no teacher outputs (the runner gave no teacher)`);
        if (!intermediate) {
          const s = student.logits;
          if (s.shape[s.ndim - 1] === 1 && batch.labels) return { pred: mseLoss(s.reshape([-1]), batch.labels.to(s.dtype).reshape([-1])) };
          return { pred: tinybertPredictionLoss(s, t.logits, cfg.temperature) };
        }
        if (!student.hiddenStates || !student.attentionScores || !t.hiddenStates || !t.attentionScores)
          throw new Error(`${NAME}: the models returned no hidden states / attention scores`);
        const l = tinybertIntermediateLosses(
          { scores: student.attentionScores, states: student.hiddenStates },
          { scores: t.attentionScores, states: t.hiddenStates },
          fit,
        );
        const out: Record<string, Tensor> = {};
        if (l.att) out.att = l.att;
        if (cfg.embedding_loss) out.embedding = l.embedding;
        if (l.hidden) out.hidden = l.hidden;
        return out;
      },
      report: () => ({ tinybert_stage: cfg.stage, ...(fit ? { fit_dense: `${fit.weight.shape[1]}→${fit.weight.shape[0]}` } : {}), ...studentReport(model, before) }),
    };
  },
};

registerMethod(distillTinyBert);
