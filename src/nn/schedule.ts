/**
 * Learning-rate schedules as Hugging Face's get_*_schedule_with_warmup: a multiplier of the base lr as a function
 * of the step, and a scheduler object that applies it to an optimizer after each step.
 */
import type { Optimizer } from './optim.ts';

export type ScheduleName = 'constant' | 'linear' | 'cosine';

/** Multiplier at `step` (0-based, the value used for the update after `step` scheduler steps). */
export function lrMultiplier(name: ScheduleName, step: number, warmupSteps: number, totalSteps: number, numCycles = 0.5): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (name === 'constant') return 1;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (name === 'linear') return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

export class LRScheduler {
  private baseLrs: number[];
  lastStep = 0;
  constructor(readonly optimizer: Optimizer, readonly name: ScheduleName, readonly warmupSteps: number, readonly totalSteps: number) {
    if (!['constant', 'linear', 'cosine'].includes(name)) throw new Error(`LRScheduler: unknown schedule '${name}' (constant, linear, cosine)`);
    if (!(warmupSteps >= 0) || !(totalSteps >= 0)) throw new Error('LRScheduler: warmupSteps and totalSteps must be non-negative');
    this.baseLrs = optimizer.groups.map((g) => g.lr);
    this.apply();
  }
  private apply(): void {
    const m = lrMultiplier(this.name, this.lastStep, this.warmupSteps, this.totalSteps);
    this.optimizer.groups.forEach((g, i) => (g.lr = this.baseLrs[i]! * m));
  }
  /** Advance one step (call after optimizer.step()). */
  step(): void {
    this.lastStep++;
    this.apply();
  }
  get lr(): number {
    return this.optimizer.groups[0]!.lr;
  }
  stateDict(): { lastStep: number; baseLrs: number[] } {
    return { lastStep: this.lastStep, baseLrs: [...this.baseLrs] };
  }
  loadStateDict(s: { lastStep: number; baseLrs: number[] }): void {
    this.lastStep = s.lastStep;
    this.baseLrs = [...s.baseLrs];
    this.apply();
  }
}
