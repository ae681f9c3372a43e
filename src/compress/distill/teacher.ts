/**
 * Teachers of the distilling methods: the runner's (recipe `teacher`, default the input model folder reloaded,
 * run by the runner with `needs.teacher`) or a step's own `teacher` folder, loaded and run by the method (e.g.
 * TinyBERT's general stage distils from the pretrained MLM teacher while the later stages use the fine-tuned one).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Module } from '../../nn/module.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { fromPretrained } from '../../models/registry.ts';
import type { ForwardOptions, ModelInputs, ModelOutput } from '../../models/outputs.ts';

export type ForwardModel = Module & { forward(i: ModelInputs, o?: ForwardOptions): ModelOutput };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** A folder from a recipe: as given when it exists from the working directory, else relative to the package. */
export function resolveFolder(p: string): string {
  if (path.isAbsolute(p) || fs.existsSync(p)) return p;
  const inPkg = path.join(ROOT, p);
  return fs.existsSync(inPkg) ? inPkg : p;
}

/** Check a step's own teacher folder exists (before any work). */
export function checkTeacherFolder(name: string, p: string | null): void {
  if (p === null) return;
  const dir = resolveFolder(p);
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new Error(`${name}: option 'teacher': ${p} is not a model folder (no config.json)`);
}

/** Load a frozen teacher (eval mode, no gradients). */
export function loadTeacher(p: string): ForwardModel {
  const t = fromPretrained(resolveFolder(p)) as ForwardModel;
  t.eval().requiresGrad_(false);
  return t;
}

/** The teacher's outputs on a batch, labels left out (an MLM teacher cannot score classification labels). */
export function teacherForward(teacher: ForwardModel, batch: ModelInputs, opts: ForwardOptions): ModelOutput {
  return noGrad(() => teacher.forward({ ...batch, labels: null }, opts));
}
