/**
 * The training loop: AdamW with decay / no-decay groups, warmup + linear or cosine decay, global-norm clipping,
 * gradient accumulation, evaluation every N steps with best-model keeping, and checkpoints that resume exactly.
 *
 * A checkpoint is a folder `checkpoint-<step>` holding model.safetensors, optimizer.safetensors and state.json
 * (step, optimizer scalars, scheduler, every RNG state, the data order, the best metric). It is written into a
 * temporary folder and renamed into place, so an interrupted save never leaves a half-written checkpoint; `latest`
 * then names it (written atomically too). Ctrl-C (SIGINT) finishes the current step, saves, and returns.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Module } from '../nn/module.ts';
import { AdamW, decayGroups } from '../nn/optim.ts';
import { LRScheduler, type ScheduleName } from '../nn/schedule.ts';
import { clipGradNorm } from '../nn/clip.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { defaultGenerator, type Generator } from '../tensor/random.ts';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.ts';
import { atomicWriteFile, atomicWriteJson } from '../io/atomic.ts';

export interface TrainerConfig {
  /** Optimizer steps to run in total. */
  totalSteps: number;
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  schedule?: ScheduleName;
  /** Micro-batches accumulated per optimizer step. */
  gradAccumulation?: number;
  /** Global gradient-norm clip (0 = off). */
  maxGradNorm?: number;
  evalEvery?: number;
  /** Save a checkpoint every N steps (0 = only at the end / on interrupt). */
  saveEvery?: number;
  /** Checkpoints kept on disk (oldest removed first). */
  keepCheckpoints?: number;
  outDir?: string;
  /** Resume from outDir/latest if it exists. */
  resume?: boolean;
  /** Higher is better (accuracy) unless false (loss, perplexity). */
  greaterIsBetter?: boolean;
}

export interface StepContext {
  step: number;
  microStep: number;
}

export interface TrainerHooks {
  /** Loss of one micro-batch (the trainer calls backward on it). */
  lossFn: (ctx: StepContext) => Tensor;
  /** Evaluation: a metric to keep the best model by, plus anything to log. */
  evaluate?: (step: number) => { metric: number; [k: string]: number };
  /** Objects with state to checkpoint (e.g. a BatchSampler). */
  stateful?: Record<string, { state(): unknown; setState(s: never): void }>;
  /** Extra generators to checkpoint (the default generator always is). */
  generators?: Record<string, Generator>;
  onLog?: (entry: LogEntry) => void;
}

export interface LogEntry {
  step: number;
  loss?: number;
  lr?: number;
  gradNorm?: number;
  eval?: Record<string, number>;
  msPerStep?: number;
}

export interface TrainResult {
  step: number;
  interrupted: boolean;
  bestMetric: number | null;
  history: LogEntry[];
}

export class Trainer {
  readonly optimizer: AdamW;
  readonly scheduler: LRScheduler;
  step = 0;
  bestMetric: number | null = null;
  private interrupted = false;

  constructor(
    readonly model: Module,
    readonly cfg: TrainerConfig,
    readonly hooks: TrainerHooks,
  ) {
    if (!(cfg.totalSteps >= 1)) throw new Error(`Trainer: totalSteps must be >= 1, got ${cfg.totalSteps}`);
    this.optimizer = new AdamW(decayGroups(model.namedParameters(), cfg.weightDecay ?? 0.01), { lr: cfg.lr ?? 5e-5 });
    this.scheduler = new LRScheduler(this.optimizer, cfg.schedule ?? 'linear', cfg.warmupSteps ?? 0, cfg.totalSteps);
  }

  /** Run until totalSteps (or an interrupt). */
  train(): TrainResult {
    const { outDir, resume } = this.cfg;
    if (resume && outDir) this.tryResume(outDir);
    const accum = this.cfg.gradAccumulation ?? 1;
    const history: LogEntry[] = [];
    const onSigint = () => {
      this.interrupted = true;
    };
    process.on('SIGINT', onSigint);
    try {
      this.model.train();
      while (this.step < this.cfg.totalSteps && !this.interrupted) {
        const t0 = performance.now();
        this.optimizer.zeroGrad();
        let lossSum = 0;
        for (let m = 0; m < accum; m++) {
          const loss = this.hooks.lossFn({ step: this.step, microStep: m });
          lossSum += loss.item();
          (accum > 1 ? loss.div(accum) : loss).backward();
        }
        const gradNorm = this.cfg.maxGradNorm ? clipGradNorm(this.model.parameters(), this.cfg.maxGradNorm) : undefined;
        const lr = this.scheduler.lr;
        this.optimizer.step();
        this.scheduler.step();
        this.step++;
        const entry: LogEntry = { step: this.step, loss: lossSum / accum, lr, gradNorm, msPerStep: performance.now() - t0 };
        if (this.hooks.evaluate && this.cfg.evalEvery && (this.step % this.cfg.evalEvery === 0 || this.step === this.cfg.totalSteps)) {
          this.model.eval();
          const ev = noGrad(() => this.hooks.evaluate!(this.step));
          this.model.train();
          entry.eval = ev;
          const better = this.bestMetric === null || ((this.cfg.greaterIsBetter ?? true) ? ev.metric > this.bestMetric : ev.metric < this.bestMetric);
          if (better) {
            this.bestMetric = ev.metric;
            if (outDir) this.saveModel(path.join(outDir, 'best'));
          }
        }
        history.push(entry);
        this.hooks.onLog?.(entry);
        if (outDir && this.cfg.saveEvery && this.step % this.cfg.saveEvery === 0) this.saveCheckpoint(outDir);
      }
      if (outDir) this.saveCheckpoint(outDir);
    } finally {
      process.off('SIGINT', onSigint);
    }
    return { step: this.step, interrupted: this.interrupted, bestMetric: this.bestMetric, history };
  }

  /** Ask the loop to stop after the current step (what Ctrl-C does). */
  interrupt(): void {
    this.interrupted = true;
  }

  private saveModel(dir: string): void {
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    saveSafetensors(path.join(tmp, 'model.safetensors'), this.model.stateDict({ forSave: true }), { format: 'pt' });
    const cfg = (this.model as unknown as { config?: Record<string, unknown> }).config;
    if (cfg) atomicWriteJson(path.join(tmp, 'config.json'), { ...cfg, architectures: [this.model.constructor.name] });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }

  /** Write checkpoint-<step> atomically and point `latest` at it. */
  saveCheckpoint(outDir: string): string {
    const name = `checkpoint-${this.step}`;
    const final = path.join(outDir, name);
    const tmp = path.join(outDir, `.${name}.tmp-${process.pid}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    saveSafetensors(path.join(tmp, 'model.safetensors'), this.model.stateDict(), { format: 'pt' });
    const opt = this.optimizer.stateDict();
    const optTensors = new Map<string, Tensor>();
    opt.buffers.forEach((b, i) => Object.entries(b).forEach(([k, t]) => optTensors.set(`${i}.${k}`, t)));
    saveSafetensors(path.join(tmp, 'optimizer.safetensors'), optTensors);
    const gens: Record<string, number[]> = { default: defaultGenerator.getState() };
    for (const [k, g] of Object.entries(this.hooks.generators ?? {})) gens[k] = g.getState();
    const stateful: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(this.hooks.stateful ?? {})) stateful[k] = s.state();
    atomicWriteJson(path.join(tmp, 'state.json'), {
      step: this.step,
      bestMetric: this.bestMetric,
      optimizer: { step: opt.step, groups: opt.groups, nParams: opt.buffers.length },
      scheduler: this.scheduler.stateDict(),
      generators: gens,
      stateful,
    });
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
    atomicWriteFile(path.join(outDir, 'latest'), name + '\n');
    this.pruneCheckpoints(outDir, name);
    return final;
  }

  private pruneCheckpoints(outDir: string, keepName: string): void {
    const keep = this.cfg.keepCheckpoints ?? 2;
    const all = fs
      .readdirSync(outDir)
      .filter((f) => /^checkpoint-\d+$/.test(f))
      .sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)));
    for (const f of all.slice(0, Math.max(0, all.length - keep))) if (f !== keepName) fs.rmSync(path.join(outDir, f), { recursive: true, force: true });
  }

  /** Restore model, optimizer, scheduler, RNGs and data order from outDir/latest (if any). Returns the step. */
  tryResume(outDir: string): number {
    const latest = path.join(outDir, 'latest');
    if (!fs.existsSync(latest)) return 0;
    const dir = path.join(outDir, fs.readFileSync(latest, 'utf8').trim());
    const statePath = path.join(dir, 'state.json');
    if (!fs.existsSync(statePath)) throw new Error(`resume: ${statePath} is missing (checkpoint incomplete?)`);
    const st = JSON.parse(fs.readFileSync(statePath, 'utf8'));
    this.model.loadStateDict(loadSafetensors(path.join(dir, 'model.safetensors')).tensors);
    const optT = loadSafetensors(path.join(dir, 'optimizer.safetensors')).tensors;
    const buffers: Record<string, Tensor>[] = Array.from({ length: st.optimizer.nParams }, () => ({}));
    for (const [k, t] of optT) {
      const [i, name] = k.split('.') as [string, string];
      buffers[Number(i)]![name] = t;
    }
    this.optimizer.loadStateDict({ step: st.optimizer.step, groups: st.optimizer.groups, buffers });
    this.scheduler.loadStateDict(st.scheduler);
    defaultGenerator.setState(st.generators.default);
    for (const [k, g] of Object.entries(this.hooks.generators ?? {})) if (st.generators[k]) g.setState(st.generators[k]);
    for (const [k, s] of Object.entries(this.hooks.stateful ?? {})) if (st.stateful[k] !== undefined) s.setState(st.stateful[k] as never);
    this.step = st.step;
    this.bestMetric = st.bestMetric;
    return this.step;
  }
}
