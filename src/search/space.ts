/**
 * The candidate space of `shrink search`: recipe objects over the implemented methods, generated phase by phase from
 * the results so far (the same results always give the same candidates, which is what makes a search resumable).
 *
 * Phases, in order (the search runs a phase's candidates in the listed order, cheapest first):
 * 1. one-shot — quant.rtn int8, int8-dynamic, int4 group:128/64/32; prune.magnitude 50/70/90 %; share.kmeans 16/64
 *    clusters; prune.structured (heads 50 %; FFN neurons 25/50/75/90 %; heads 50 % with neurons 50/75 %); share.lowrank ratio 0.5/0.25
 *    (activation-aware); moe.moefy top-1/2/4 of 8 experts; quant.gptq int4 group:128/64. No training.
 * 1b. mixed precision, guided by measured sensitivity — an int4 one-shot (rtn or gptq) that missed the budget by at
 *    most 3 × max-drop is retried with its most sensitive layers at int8-dynamic: the quarter of its quantized
 *    layers with the largest relative output error ‖y_q − y‖² / ‖y‖² on calibration batches (compress's per-layer
 *    report, kept in the candidate's record), the rest at the same int4 scheme. No training.
 * 2. trained follow-ups — a structural one-shot candidate (prune.structured, share.lowrank, share.kmeans) that
 *    missed the budget but dropped at most 3 × max-drop ("shows promise") is retried with `finetune` steps after it.
 *    One within the budget is not: fine-tuning does not change its size or speed.
 * 3. chains — every structural result within the budget (one-shot or trained; prune.structured, share.lowrank,
 *    moe.moefy, distill.kd, prune.cofi) followed by the best quantization scheme of phase 1 (best by the objective
 *    among the quantization candidates within the budget), e.g. prune.structured → finetune → quant.rtn int8-dynamic.
 * 4. trained-only families — fff.ultrafast (every MLP a depth-8 fast-feedforward tree), distill.kd into fewer
 *    layers, prune.cofi at 40/60 % target sparsity. They have no
 *    one-shot version to show promise, cost the most, and so run last, when the budget still allows.
 * 5. chains again, for what phase 4 put within the budget.
 *
 * Early rejection (gate.ts): structural one-shot candidates that may get a follow-up are gated at teacher −
 * 3 × max-drop (so their drop is known when it decides promise); all others at teacher − max-drop.
 */
import crypto from 'node:crypto';
import type { Recipe, RecipeStep } from '../compress/runner.ts';

export type Phase = 'one-shot' | 'trained' | 'chain';

export interface Candidate {
  /** Short readable name, e.g. `structured h0.5 n0.5 + ft60 → rtn int8-dynamic`. */
  name: string;
  /** The method family that decides follow-ups: quant, prune.structured, share.lowrank, … */
  family: string;
  phase: Phase;
  /** The recipe without model, task or gate (what best.json holds, with model and task added). */
  recipe: Recipe;
  /** Gate at teacher − 3 × max-drop instead of teacher − max-drop (see the file comment). */
  promiseGate?: boolean;
}

/** What the space needs to know of a finished candidate. */
export interface Outcome {
  key: string;
  family: string;
  phase: Phase;
  status: 'measured' | 'rejected' | 'failed';
  /** Drop against the teacher in points (measured candidates; for rejected ones from the subset, a lower bound). */
  drop: number | null;
  within: boolean;
  objective: number | null;
  recipe: Recipe;
  /** Relative output error per quantized layer (compress's report.json `layers.error`), when it measured one. */
  layerError?: Record<string, number> | null;
}

export interface SpaceOptions {
  maxDrop: number;
  /** Fine-tuning steps of trained candidates (60). */
  trainSteps: number;
}

/** Stable identity of a candidate: a hash of its recipe (steps, train settings, calibration). */
export function candidateKey(recipe: Recipe): string {
  const canon = JSON.stringify({ steps: recipe.steps, train: recipe.train ?? null, calibration_samples: recipe.calibration_samples ?? null });
  return crypto.createHash('sha256').update(canon).digest('hex').slice(0, 12);
}

const STRUCTURAL_WITH_FOLLOW_UP = ['prune.structured', 'share.lowrank', 'share.kmeans'];
const CHAINABLE = ['prune.structured', 'share.lowrank', 'moe.moefy', 'distill.kd', 'prune.cofi'];

const oneShot = (name: string, family: string, steps: RecipeStep[], extra: Partial<Recipe> = {}): Candidate => ({
  name,
  family,
  phase: 'one-shot',
  recipe: { ...extra, steps },
  ...(STRUCTURAL_WITH_FOLLOW_UP.includes(family) || isInt4(steps) ? { promiseGate: true } : {}),
});

/** A one-step int4 quantization (rtn or gptq): the candidates a mixed-precision retry applies to. */
const isInt4 = (steps: readonly RecipeStep[]) => steps.length === 1 && ['quant.rtn', 'quant.gptq'].includes(steps[0]!.method) && steps[0]!.scheme === 'int4';

/** Share of an int4 candidate's quantized layers that a mixed-precision retry keeps at int8-dynamic. */
export const SENSITIVE_FRACTION = 0.25;

/**
 * Phase 1b: int4 one-shots that missed the budget by at most 3 × max-drop, again with their most sensitive layers
 * (largest measured relative error; ties by name) at int8-dynamic and the rest at the same int4 step.
 */
export function mixedPrecision(done: Outcome[], all: Candidate[], o: SpaceOptions): Candidate[] {
  const out: Candidate[] = [];
  for (const c of all) {
    if (c.phase !== 'one-shot' || !isInt4(c.recipe.steps)) continue;
    const r = done.find((d) => d.key === candidateKey(c.recipe));
    if (!r || r.status !== 'measured' || r.within || r.drop === null || r.drop > 3 * o.maxDrop || !r.layerError) continue;
    const ranked = Object.entries(r.layerError).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    if (ranked.length < 2) continue;
    const keep = ranked.slice(0, Math.max(1, Math.round(SENSITIVE_FRACTION * ranked.length))).map(([n]) => n).sort();
    const step = c.recipe.steps[0]!;
    out.push({
      name: `${c.name}, ${keep.length} sensitive → int8-dynamic`,
      family: 'quant',
      phase: 'one-shot',
      recipe: { ...c.recipe, steps: [{ method: 'quant.rtn', scheme: 'int8-dynamic', targets: keep }, { ...step, ignore: [...((step.ignore as string[] | undefined) ?? []), ...keep] }] },
    });
  }
  return out;
}

/** Phase 1: every one-shot candidate, cheapest first. */
export function oneShotCandidates(): Candidate[] {
  const q = (scheme: string, granularity?: string) => ({ method: 'quant.rtn', scheme, ...(granularity ? { granularity } : {}) });
  return [
    oneShot('rtn int8', 'quant', [q('int8')]),
    oneShot('rtn int8-dynamic', 'quant', [q('int8-dynamic')]),
    oneShot('rtn int4 g128', 'quant', [q('int4', 'group:128')]),
    oneShot('rtn int4 g64', 'quant', [q('int4', 'group:64')]),
    oneShot('rtn int4 g32', 'quant', [q('int4', 'group:32')]),
    ...[0.5, 0.7, 0.9].map((s) => oneShot(`magnitude ${s * 100}%`, 'prune.magnitude', [{ method: 'prune.magnitude', sparsity: s, scope: 'global' }])),
    ...[16, 64].map((k) => oneShot(`kmeans ${k}`, 'share.kmeans', [{ method: 'share.kmeans', clusters: k, init: 'linear' }])),
    ...([
      [0.5, 0],
      [0, 0.25],
      [0, 0.5],
      [0, 0.75],
      [0.5, 0.5],
      [0, 0.9],
      [0.5, 0.75],
    ] as const).map(([h, n]) => oneShot(`structured h${h} n${n}`, 'prune.structured', [{ method: 'prune.structured', heads: h, neurons: n }], { calibration_samples: 64 })),
    ...[0.5, 0.25].map((r) => oneShot(`lowrank ${r}`, 'share.lowrank', [{ method: 'share.lowrank', ratio: r, activation_aware: true }], { calibration_samples: 64 })),
    ...[1, 2, 4].map((k) => oneShot(`moefy top${k}/8`, 'moe.moefy', [{ method: 'moe.moefy', experts: 8, top_k: k, router_steps: 300 }], { calibration_samples: 128 })),
    ...['group:128', 'group:64'].map((g) => oneShot(`gptq int4 ${g.replace('group:', 'g')}`, 'quant', [{ method: 'quant.gptq', scheme: 'int4', granularity: g }])),
  ];
}

const ft = (steps: number) => ({ steps, lr: 5e-5, batch_size: 16 });

/** Phase 2: fine-tuned versions of promising structural one-shot candidates. */
export function followUps(done: Outcome[], all: Candidate[], o: SpaceOptions): Candidate[] {
  const out: Candidate[] = [];
  for (const c of all) {
    if (c.phase !== 'one-shot' || !STRUCTURAL_WITH_FOLLOW_UP.includes(c.family)) continue;
    const r = done.find((d) => d.key === candidateKey(c.recipe));
    if (!r || r.status !== 'measured' || r.within || r.drop === null || r.drop > 3 * o.maxDrop) continue;
    out.push({ name: `${c.name} + ft${o.trainSteps}`, family: c.family, phase: 'trained', recipe: { ...c.recipe, train: ft(o.trainSteps), steps: [...c.recipe.steps, { method: 'finetune' }] } });
  }
  return out;
}

/** Phase 4: trained-only families. */
export function trainedOnly(o: SpaceOptions): Candidate[] {
  return [
    {
      // UltraFastBERT: every block's MLP a depth-8 tree (511 neurons, 9 evaluated per token), trained on the task
      name: `fff depth 8 (${2 * o.trainSteps} steps)`,
      family: 'fff.ultrafast',
      phase: 'trained',
      recipe: { train: { steps: 2 * o.trainSteps, lr: 5e-4, batch_size: 16 }, steps: [{ method: 'fff.ultrafast', depth: 8 }] },
    },
    {
      name: `kd → 1 layer (${2 * o.trainSteps} steps)`,
      family: 'distill.kd',
      phase: 'trained',
      recipe: { train: { steps: 2 * o.trainSteps, lr: 2e-4, batch_size: 16, task_weight: 0 }, steps: [{ method: 'distill.kd', layers: 1, temperature: 2, alpha: 0.5 }] },
    },
    ...[0.4, 0.6].map((t): Candidate => ({
      name: `cofi ${t * 100}% + ft${o.trainSteps}`,
      family: 'prune.cofi',
      phase: 'trained',
      recipe: {
        train: { steps: 2 * o.trainSteps, lr: 5e-5, batch_size: 16, warmup: 0, task_weight: 0 },
        steps: [
          { method: 'prune.cofi', target_sparsity: t, prepruning_steps: Math.max(1, Math.round(o.trainSteps / 3)), lagrangian_warmup: 0.5, reg_lr: 0.05 },
          { method: 'finetune', train: { steps: o.trainSteps, lr: 3e-5, task_weight: 1, schedule: 'constant' } },
        ],
      },
    })),
  ];
}

/** Phases 3 and 5: each structural result within the budget followed by the best quantization of phase 1. */
export function chains(done: Outcome[], named: Map<string, string>): Candidate[] {
  // single-step schemes only: a mixed-precision recipe names the unpruned model's layers
  const quant = done.filter((d) => d.family === 'quant' && d.recipe.steps.length === 1 && d.status === 'measured' && d.within && d.objective !== null).sort((a, b) => a.objective! - b.objective!)[0];
  if (!quant) return [];
  const qStep = quant.recipe.steps[quant.recipe.steps.length - 1]!;
  const out: Candidate[] = [];
  for (const d of done) {
    if (d.phase === 'chain' || d.status !== 'measured' || !d.within || !CHAINABLE.includes(d.family)) continue;
    out.push({
      name: `${named.get(d.key) ?? d.key} → ${named.get(quant.key) ?? quant.key}`,
      family: d.family,
      phase: 'chain',
      recipe: { ...d.recipe, steps: [...d.recipe.steps, qStep] },
    });
  }
  return out;
}
