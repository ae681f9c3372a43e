/**
 * Learning-rate schedules as Hugging Face's get_*_schedule_with_warmup: pure multipliers of the base lr as a
 * function of the step, and a scheduler object (torch LambdaLR) that applies one to an optimizer. Step k is the
 * number of scheduler.step() calls so far: the lr used by the (k+1)-th optimizer update. So a fresh scheduler
 * with warmup starts at lr 0, as in HF.
 */
import type { Optimizer } from './optim.ts';

export type ScheduleName = 'constant' | 'linear' | 'cosine';
export const SCHEDULES: readonly ScheduleName[] = ['constant', 'linear', 'cosine'];

/** HF get_constant_schedule_with_warmup: step/warmup during warmup, then 1. */
export function constantWithWarmup(step: number, warmupSteps: number): number {
  return step < warmupSteps ? step / Math.max(1, warmupSteps) : 1;
}

/** HF get_linear_schedule_with_warmup: linear 0 → 1 over warmup, then linear 1 → 0 at totalSteps (0 after). */
export function linearWithWarmup(step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
}

/** HF get_cosine_schedule_with_warmup: linear warmup, then 0.5·(1 + cos(π·numCycles·2·progress)), floored at 0. */
export function cosineWithWarmup(step: number, warmupSteps: number, totalSteps: number, numCycles = 0.5): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

/** Multiplier of schedule `name` at `step`. */
export function lrMultiplier(name: ScheduleName, step: number, warmupSteps: number, totalSteps: number, numCycles = 0.5): number {
  switch (name) {
    case 'constant':
      return constantWithWarmup(step, warmupSteps);
    case 'linear':
      return linearWithWarmup(step, warmupSteps, totalSteps);
    case 'cosine':
      return cosineWithWarmup(step, warmupSteps, totalSteps, numCycles);
    default:
      throw new Error(`lrMultiplier: unknown schedule '${String(name)}' (${SCHEDULES.join(', ')})`);
  }
}

export interface SchedulerState {
  lastStep: number;
  baseLrs: number[];
}

/**
 * Binds a schedule to an optimizer: every group's lr = its base lr × multiplier(lastStep), except groups marked
 * `fixedLr: true`, which keep theirs. The base lrs are the
 * groups' lrs at construction. Call step() after each optimizer.step().
 */
export class LRScheduler {
  private baseLrs: number[];
  lastStep = 0;
  readonly numCycles: number;
  constructor(
    readonly optimizer: Optimizer,
    readonly name: ScheduleName,
    readonly warmupSteps: number,
    readonly totalSteps: number,
    opts: { numCycles?: number } = {},
  ) {
    if (!SCHEDULES.includes(name)) throw new Error(`LRScheduler: unknown schedule '${name}' (${SCHEDULES.join(', ')})`);
    if (!(warmupSteps >= 0) || !(totalSteps >= 0)) throw new Error('LRScheduler: warmupSteps and totalSteps must be non-negative');
    this.numCycles = opts.numCycles ?? 0.5;
    this.baseLrs = optimizer.groups.map((g) => g.lr);
    this.apply();
  }
  /** Multiplier at the current step. */
  get multiplier(): number {
    return lrMultiplier(this.name, this.lastStep, this.warmupSteps, this.totalSteps, this.numCycles);
  }
  private apply(): void {
    const m = this.multiplier;
    this.optimizer.groups.forEach((g, i) => {
      if (g.fixedLr !== true) g.lr = this.baseLrs[i]! * m; // a group with fixedLr keeps its lr (e.g. Lagrange multipliers)
    });
  }
  /** Advance one step (call after optimizer.step()). */
  step(): void {
    this.lastStep++;
    this.apply();
  }
  /** Current lr of the first group. */
  get lr(): number {
    return this.optimizer.groups[0]!.lr;
  }
  /** Current lr of every group. */
  get lrs(): number[] {
    return this.optimizer.groups.map((g) => g.lr);
  }
  stateDict(): SchedulerState {
    return { lastStep: this.lastStep, baseLrs: [...this.baseLrs] };
  }
  loadStateDict(s: SchedulerState): void {
    if (s.baseLrs.length !== this.optimizer.groups.length)
      throw new Error(`LRScheduler.loadStateDict: state has ${s.baseLrs.length} base lrs, optimizer has ${this.optimizer.groups.length} groups`);
    this.lastStep = s.lastStep;
    this.baseLrs = [...s.baseLrs];
    this.apply();
  }
}
