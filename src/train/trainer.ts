/**
 * The training loop: AdamW with decay / no-decay groups, warmup + linear or cosine decay, global-norm clipping,
 * gradient accumulation, evaluation every N steps with best-model keeping, and checkpoints that resume exactly.
 *
 * A checkpoint is a folder `checkpoint-<step>` holding model.safetensors, optimizer.safetensors and state.json
 * (step, optimizer scalars, scheduler, every RNG state, the data order, the best metric). It is written into a
 * temporary folder and renamed into place, so an interrupted save never leaves a half-written checkpoint; `latest`
 * then names it (written atomically too). Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves, and returns
 * `interrupted: true` — the signal is observed from inside the synchronous loop (src/train/interrupt.ts), so it
 * works while a step runs. A non-finite loss stops the run with an error instead of training on garbage.
 *
 * Extension points for compression methods (src/compress/runner.ts): a step may return `{loss, parts}` and every
 * part is logged (console via onLog, and `log.jsonl` in outDir); extra parameter groups (method parameters such as
 * mask logits or Lagrange multipliers, with their own lr, no decay, `maximize` for gradient ascent, `fixedLr` to
 * stay off the schedule) are optimized and checkpointed beside the model; an optional teacher runs in eval mode
 * with frozen weights; `beforeStep` / `afterOptimizerStep` hooks run around every optimizer step; `stateful`
 * objects (samplers, method state) go into every checkpoint, so a resume mid-stage is bit-exact.
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
import { savePretrained } from '../models/registry.ts';
import { interruptRequested, watchInterrupts } from './interrupt.ts';

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
  /** Append every log entry to outDir/log.jsonl (default true when outDir is set). */
  logFile?: boolean;
  /**
   * Write the model to outDir/best at each better evaluation (default true). Off where the caller keeps its own best
   * state (compress stages: the model with the methods' parameters, in best-state.safetensors).
   */
  saveBest?: boolean;
}

export interface StepContext {
  step: number;
  microStep: number;
  /** The frozen teacher (TrainerHooks.teacher), if any: run it under noGrad. */
  teacher?: Module;
}

/** What a step may return instead of a bare loss: the total plus its named parts (each logged). */
export interface StepResult {
  loss: Tensor;
  parts?: Record<string, Tensor | number>;
}

/** Parameters that are not the model's (method parameters), optimized as their own AdamW group. */
export interface ExtraParamGroup {
  /** Prefix of the group's tensors in the checkpoint's extra.safetensors. */
  name: string;
  params: [string, Tensor][];
  /** Default: the trainer's lr. */
  lr?: number;
  /** Default 0. */
  weightDecay?: number;
  /** Gradient ascent (Lagrange multipliers). */
  maximize?: boolean;
  /** Keep lr constant instead of following the schedule. */
  fixedLr?: boolean;
}

export interface TrainerHooks {
  /** Loss of one micro-batch (the trainer calls backward on it), or the loss with its named parts. */
  lossFn: (ctx: StepContext) => Tensor | StepResult;
  /** Evaluation: a metric to keep the best model by, plus anything to log. */
  /** `eligible: 0` in the result: logged, never the best (e.g. a pruning run not yet at its target size). */
  evaluate?: (step: number) => { metric: number; [k: string]: number };
  /** Objects with state to checkpoint (e.g. a BatchSampler). */
  stateful?: Record<string, { state(): unknown; setState(s: never): void }>;
  /** Extra generators to checkpoint (the default generator always is). */
  generators?: Record<string, Generator>;
  onLog?: (entry: LogEntry) => void;
  /** Method parameter groups beside the model's. */
  paramGroups?: ExtraParamGroup[];
  /** A teacher: put in eval mode and frozen for the run, handed to lossFn; it never receives gradients. */
  teacher?: Module;
  /** Before each optimizer step's micro-batches (schedules, mask sampling). */
  beforeStep?: (step: number) => void;
  /** After each optimizer step (clamping, re-masking). `step` is the number of steps done. */
  afterOptimizerStep?: (step: number) => void;
}

export interface LogEntry {
  step: number;
  loss?: number;
  /** Named loss parts (mean over micro-batches). */
  parts?: Record<string, number>;
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

/** The step of the checkpoint `outDir/latest` names (what a resume starts from), or null when there is none. */
export function checkpointStep(outDir: string): number | null {
  const latest = path.join(outDir, 'latest');
  if (!fs.existsSync(latest)) return null;
  const statePath = path.join(outDir, fs.readFileSync(latest, 'utf8').trim(), 'state.json');
  if (!fs.existsSync(statePath)) return null;
  const step = (JSON.parse(fs.readFileSync(statePath, 'utf8')) as { step?: unknown }).step;
  return typeof step === 'number' ? step : null;
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
    const groups = decayGroups(model.namedParameters(), cfg.weightDecay ?? 0.01);
    for (const g of hooks.paramGroups ?? [])
      groups.push({ params: g.params.map(([, t]) => t), lr: g.lr ?? cfg.lr ?? 5e-5, weightDecay: g.weightDecay ?? 0, maximize: g.maximize ?? false, fixedLr: g.fixedLr ?? false });
    this.optimizer = new AdamW(groups, { lr: cfg.lr ?? 5e-5 });
    this.scheduler = new LRScheduler(this.optimizer, cfg.schedule ?? 'linear', cfg.warmupSteps ?? 0, cfg.totalSteps);
  }

  /** Run until totalSteps (or an interrupt). */
  train(): TrainResult {
    const { outDir, resume } = this.cfg;
    if (resume && outDir) this.tryResume(outDir);
    const accum = this.cfg.gradAccumulation ?? 1;
    const history: LogEntry[] = [];
    const stopWatching = watchInterrupts();
    const teacher = this.hooks.teacher;
    const teacherGrad = teacher?.parameters().map((p) => p.requiresGrad);
    teacher?.eval().requiresGrad_(false);
    const logFile = outDir && (this.cfg.logFile ?? true) ? path.join(outDir, 'log.jsonl') : null;
    if (outDir) fs.mkdirSync(outDir, { recursive: true });
    try {
      this.model.train();
      while (this.step < this.cfg.totalSteps && !this.interrupted) {
        if (interruptRequested()) {
          this.interrupted = true;
          break;
        }
        const t0 = performance.now();
        this.optimizer.zeroGrad();
        this.hooks.beforeStep?.(this.step);
        let lossSum = 0;
        const partSums: Record<string, number> = {};
        for (let m = 0; m < accum; m++) {
          const r = this.hooks.lossFn({ step: this.step, microStep: m, teacher });
          const loss = r instanceof Tensor ? r : r.loss;
          const value = loss.item();
          if (!Number.isFinite(value)) throw new Error(`training diverged: loss is ${value} at step ${this.step + 1}`);
          lossSum += value;
          if (!(r instanceof Tensor))
            for (const [k, v] of Object.entries(r.parts ?? {})) partSums[k] = (partSums[k] ?? 0) + (v instanceof Tensor ? v.item() : v);
          (accum > 1 ? loss.div(accum) : loss).backward();
        }
        const gradNorm = this.cfg.maxGradNorm ? clipGradNorm(this.model.parameters(), this.cfg.maxGradNorm) : undefined;
        const lr = this.scheduler.lr;
        this.optimizer.step();
        this.scheduler.step();
        this.step++;
        this.hooks.afterOptimizerStep?.(this.step);
        const entry: LogEntry = { step: this.step, loss: lossSum / accum, lr, gradNorm, msPerStep: performance.now() - t0 };
        if (Object.keys(partSums).length) entry.parts = Object.fromEntries(Object.entries(partSums).map(([k, v]) => [k, v / accum]));
        if (this.hooks.evaluate && this.cfg.evalEvery && (this.step % this.cfg.evalEvery === 0 || this.step === this.cfg.totalSteps)) {
          this.model.eval();
          const ev = noGrad(() => this.hooks.evaluate!(this.step));
          this.model.train();
          entry.eval = ev;
          // an evaluation with eligible: 0 is logged but never counted as the best
          const better = ev.eligible !== 0 && (this.bestMetric === null || ((this.cfg.greaterIsBetter ?? true) ? ev.metric > this.bestMetric : ev.metric < this.bestMetric));
          if (better) {
            this.bestMetric = ev.metric;
            if (outDir && (this.cfg.saveBest ?? true)) this.saveModel(path.join(outDir, 'best'));
          }
        }
        history.push(entry);
        this.hooks.onLog?.(entry);
        if (logFile) fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
        if (outDir && this.cfg.saveEvery && this.step % this.cfg.saveEvery === 0) this.saveCheckpoint(outDir);
      }
      if (interruptRequested()) this.interrupted = true;
      if (outDir) this.saveCheckpoint(outDir);
    } finally {
      stopWatching();
      if (teacher && teacherGrad) teacher.parameters().forEach((p, i) => (p.requiresGrad = teacherGrad[i]!));
    }
    return { step: this.step, interrupted: this.interrupted, bestMetric: this.bestMetric, history };
  }

  /** Ask the loop to stop after the current step (what Ctrl-C does). */
  interrupt(): void {
    this.interrupted = true;
  }

  /** The model as a loadable folder (compressed structure described in config.json, as savePretrained does). */
  private saveModel(dir: string): void {
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    const cfg = (this.model as unknown as { config?: Record<string, unknown> }).config;
    if (cfg) savePretrained(this.model as Module & { config: Record<string, unknown> }, tmp);
    else saveSafetensors(path.join(tmp, 'model.safetensors'), this.model.stateDict({ forSave: true }), { format: 'pt' });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }

  /** Method parameters by checkpoint key `<group>.<name>`. */
  private extraTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const g of this.hooks.paramGroups ?? []) for (const [n, t] of g.params) out.set(`${g.name}.${n}`, t);
    return out;
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
    const extra = this.extraTensors();
    if (extra.size) saveSafetensors(path.join(tmp, 'extra.safetensors'), extra);
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
    const extra = this.extraTensors();
    if (extra.size) {
      const file = path.join(dir, 'extra.safetensors');
      if (!fs.existsSync(file)) throw new Error(`resume: ${file} is missing (the checkpoint has no method parameters; was it written by another recipe?)`);
      const saved = loadSafetensors(file).tensors;
      const missing = [...extra.keys()].filter((k) => !saved.has(k));
      if (missing.length) throw new Error(`resume: ${file} lacks ${missing.length} method parameter(s): ${missing.slice(0, 5).join(', ')}`);
      noGrad(() => {
        for (const [k, t] of extra) {
          const v = saved.get(k)!;
          if (v.shape.join() !== t.shape.join()) throw new Error(`resume: ${file}: '${k}' has shape [${v.shape}], expected [${t.shape}]`);
          t.copy_(v);
        }
      });
    }
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
