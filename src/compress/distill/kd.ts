/**
 * `distill.kd`: logit knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network";
 * DistilBERT's student initialisation from every other teacher layer).
 *
 * Loss of the step: `kd` = α·T²·KL(softmax(z_T/T) ‖ softmax(z_S/T)) (mean over examples, or over token positions
 * for a causal / masked LM: padding and positions whose label is −100 left out, the causal LM's position t scored
 * where label t+1 is) and `task` = (1 − α)·the model's task loss. With `alpha` set the step owns the task term, so
 * the stage's `train.task_weight` must be 0; with `alpha: null` the step adds only T²·KL and the mix is the recipe's
 * (`task_weight` for the task loss, the step's `weight` for KD).
 *
 * The student is made in place from the model the step is given (see student.ts): `keep_layers` / `layers` (its own
 * blocks, DistilBERT-style), `student` (a new config, random init), or as is. The teacher is the runner's (recipe
 * `teacher`, default the input model) or the step's own `teacher` folder.
 */
import type { Module } from '../../nn/module.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { anatomy } from '../../models/anatomy.ts';
import { registerMethod, type Method, type MethodRun, type RecipeContext } from '../method.ts';
import { kdLoss, type KdPositions } from './losses.ts';
import { STUDENT_DEFAULTS, STUDENT_TYPES, checkStudent, makeStudent, type StudentOptions } from './student.ts';
import { checkTeacherFolder, loadTeacher, teacherForward, type ForwardModel } from './teacher.ts';
import { studentReport } from './report.ts';

export interface KdConfig extends StudentOptions {
  /** Softmax temperature T (> 0). */
  temperature: number;
  /** Weight α of the KD term, 1 − α of the task loss (the step adds both; needs train.task_weight 0). null: KD term only. */
  alpha: number | null;
  /** Token-level KD: 'labelled' positions (label ≠ −100, not padding) or 'all' non-padding positions. */
  positions: KdPositions;
  /** The step's own teacher folder (default: the runner's teacher). */
  teacher: string | null;
}

function check(model: Module, cfg: KdConfig, ctx?: RecipeContext): void {
  const name = 'distill.kd';
  if (!(cfg.temperature > 0)) throw new Error(`${name}: option 'temperature' must be > 0, got ${cfg.temperature}`);
  if (cfg.alpha !== null && !(cfg.alpha >= 0 && cfg.alpha <= 1)) throw new Error(`${name}: option 'alpha' must be in [0, 1] (or null), got ${cfg.alpha}`);
  checkStudent(name, model, cfg);
  checkTeacherFolder(name, cfg.teacher);
  if (cfg.alpha !== null && ctx?.train && ctx.train.task_weight !== 0)
    throw new Error(`${name}: with 'alpha' set (${cfg.alpha}) the step adds (1 − alpha)·task loss itself; set train.task_weight to 0, or alpha to null to mix through task_weight`);
}

/** Whether the model's token logits are scored against the next token (causal) or the same one (masked). */
function lmKind(model: Module): 'causal' | 'masked' {
  return anatomy(model).modelType === 'bert' ? 'masked' : 'causal';
}

export const distillKd: Method<KdConfig> = {
  name: 'distill.kd',
  kind: 'trained',
  description: 'logit knowledge distillation (Hinton): α·T²·KL(teacher ‖ student) + (1 − α)·task loss; student from the model\'s own layers, a config, or as is',
  defaults: { temperature: 2, alpha: 0.5, positions: 'labelled', teacher: null, ...STUDENT_DEFAULTS },
  types: { alpha: 'number', positions: ['labelled', 'all'], teacher: 'string', ...STUDENT_TYPES },
  check: (model, cfg, ctx) => check(model, cfg, ctx),
  apply: (model, cfg, ctx: RecipeContext): MethodRun => {
    check(model, cfg, ctx);
    const before = model.parameters().reduce((n, p) => n + p.numel, 0);
    const made = makeStudent(model, cfg); // not inside ctx.log?.(…): optional chaining would skip it without a log
    ctx.log?.(`distill.kd: ${made}`);
    const own = cfg.teacher !== null ? loadTeacher(cfg.teacher) : null;
    const lm = lmKind(model);
    return {
      needs: { teacher: own === null },
      losses: ({ batch, student, teacher }) => {
        const t = own ? teacherForward(own, batch, {}) : teacher;
        if (!t) throw new Error('distill.kd: no teacher outputs (the runner gave no teacher)');
        const kd = kdLoss(student.logits, t.logits, { temperature: cfg.temperature, lm, positions: cfg.positions, attentionMask: batch.attentionMask, labels: batch.labels });
        if (cfg.alpha === null) return { kd };
        const out: Record<string, Tensor> = { kd: cfg.alpha === 1 ? kd : kd.mul(cfg.alpha) };
        if (cfg.alpha < 1) {
          if (!student.loss) throw new Error('distill.kd: alpha < 1 mixes in the task loss, and the model returned none (labels missing?)');
          out.task = student.loss.mul(1 - cfg.alpha);
        }
        return out;
      },
      report: () => studentReport(model, before),
    };
  },
};

registerMethod(distillKd);

export type { ForwardModel };
