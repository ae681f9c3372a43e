/**
 * Fine-tuned teachers on demand: `shrink teacher <task>` (and a recipe's `"model": "teacher:<task>"`) fine-tunes the
 * pretrained BERT teacher on a GLUE task with the documented settings below, once, into a cache folder, and hands
 * back the finished folder every later time. The run is an ordinary resumable `finetuneGlue` run (killed → the same
 * command continues from its last checkpoint).
 *
 * Cache: `$SHRINK_CACHE/teachers/<base>-<task>-<key>/` (default `~/.cache/shrink`), where key hashes the base
 * folder's path and weights (size and mtime) and the settings, so a changed base or setting trains a new teacher.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DATA_DIR, TEACHER_DIR, finetuneGlue, type FinetuneResult } from './bert-tasks.ts';
import type { GlueTask } from '../data/glue.ts';
import type { LogEntry } from './trainer.ts';
import { ShrinkError } from '../io/errors.ts';

export interface TeacherSettings {
  steps: number;
  batchSize: number;
  lr: number;
  maxLength: number;
  seed: number;
}

/**
 * The fine-tuning behind each task's teacher: about three epochs of the small tasks, half an epoch of SST-2 (67k sentences; what 2 CPU cores afford),
 * batch 32, lr 1e-4 (a 6-layer, 384-wide model), 128 tokens for the sentence-pair tasks.
 */
export const TEACHER_SETTINGS: Record<GlueTask, TeacherSettings> = {
  sst2: { steps: 1000, batchSize: 32, lr: 1e-4, maxLength: 64, seed: 0 },
  mrpc: { steps: 350, batchSize: 32, lr: 1e-4, maxLength: 128, seed: 0 },
  rte: { steps: 240, batchSize: 32, lr: 1e-4, maxLength: 128, seed: 0 },
  cola: { steps: 800, batchSize: 32, lr: 1e-4, maxLength: 64, seed: 0 },
};

/** The pretrained (MLM) teacher the task teachers start from: the 6-layer one when shipped, else the bundled 2-layer one. */
export function defaultTeacherBase(): string {
  const big = path.join(DATA_DIR, 'models', 'bert-minilm');
  return fs.existsSync(path.join(big, 'config.json')) ? big : TEACHER_DIR;
}

export function cacheRoot(): string {
  return process.env.SHRINK_CACHE || path.join(os.homedir(), '.cache', 'shrink');
}

/** Where the teacher of `task` fine-tuned from `base` with `settings` lives (its `final/` is the model). */
export function teacherRunDir(task: GlueTask, base: string, settings: TeacherSettings): string {
  const weights = path.join(base, 'model.safetensors');
  if (!fs.existsSync(path.join(base, 'config.json')) || !fs.existsSync(weights)) throw new ShrinkError(`teacher base ${base}: not a model folder (config.json and model.safetensors expected)`, { file: base });
  const st = fs.statSync(weights);
  const key = crypto.createHash('sha256').update(JSON.stringify({ base: path.resolve(base), size: st.size, mtime: st.mtimeMs, settings })).digest('hex').slice(0, 12);
  return path.join(cacheRoot(), 'teachers', `${path.basename(path.resolve(base))}-${task}-${key}`);
}

export interface EnsureTeacherOptions {
  base?: string;
  settings?: Partial<TeacherSettings>;
  log?: (line: string) => void;
  onLog?: (e: LogEntry) => void;
}

/** The fine-tuned teacher folder for `task`: trained (or resumed) on first use, reused afterwards. */
export function ensureTeacher(task: GlueTask, o: EnsureTeacherOptions = {}): { dir: string; result: FinetuneResult; cached: boolean } {
  const base = o.base ?? defaultTeacherBase();
  const settings = { ...TEACHER_SETTINGS[task], ...(o.settings ?? {}) };
  const run = teacherRunDir(task, base, settings);
  if (!fs.existsSync(run)) o.log?.(`teacher ${task}: fine-tuning ${base} for ${settings.steps} steps into ${run} (once; later runs reuse it)`);
  fs.mkdirSync(path.dirname(run), { recursive: true });
  const result = finetuneGlue({ modelDir: base, task, ...settings, outDir: run, log: o.log, onLog: o.onLog });
  return { dir: path.join(run, 'final'), result, cached: result.alreadyFinished === true };
}
