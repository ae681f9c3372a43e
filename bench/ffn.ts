/**
 * npm run bench:ffn -- --models <dir>[,<dir>…] [-- --teacher <dir>] [-- --task sst2] [-- --rounds 9] [-- --threads 1]
 *                     [-- --json]
 *
 * What conditional computation in the feedforward slot buys on a real model: each folder (a model whose MLPs became
 * MoE layers by `moe.moefy` / `moe.upcycle`, or fast feedforward trees by `fff.ultrafast`) against its dense teacher
 * (default: the first folder's recipe model in report.json, else --teacher), on the task's latency inputs (the first
 * dev examples, the inputs `shrink compress` times: batch 1 = one example, batch 32):
 * - ffn: the MLP slots alone. Each model's slot inputs are captured on those inputs (one forward with pre-hooks), then
 *   every slot module of the model is called on its captured input; the turn's time is the sum over blocks. This is
 *   the part the method changes (MoE dispatch or CMM against the dense up-GELU-down).
 * - model: the whole forward (embeddings, attention, slots, head).
 * Every variant is timed INTERLEAVED with the teacher, round by round (compareLatency: 1 untimed warm-up, then
 * --rounds rounds, each turn repeating its call for ≥ 20 ms); speed-up = teacher ms / model ms within each round,
 * median over rounds (min–max in --json), best ms per call shown. Before timing, each model's slot outputs are checked
 * to equal its own forward's (the captured calls reproduce what the model computes).
 *
 * Output: a markdown table, or with --json one line per model and batch: {"model","batch","ffn_ms","teacher_ffn_ms",
 * "ffn_speedup","ffn_speedup_min","ffn_speedup_max","model_ms","teacher_model_ms","model_speedup",…,"machine"}.
 */
import fs from 'node:fs';
import path from 'node:path';
import '../src/index.ts';
import { fromPretrained } from '../src/models/registry.ts';
import { anatomy } from '../src/models/anatomy.ts';
import type { ModelInputs } from '../src/models/outputs.ts';
import type { Module } from '../src/nn/module.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { noGrad } from '../src/tensor/autograd.ts';
import { registerForwardHook, registerForwardPreHook } from '../src/nn/hooks.ts';
import { compareLatency } from '../src/eval/latency.ts';
import { taskData } from '../src/compress/tasks.ts';
import { setNumThreads } from '../src/backend/registry.ts';
import { activation } from '../src/models/activations.ts';
import { benchArgs, machineLine } from './common.ts';

const { has, arg, intArg } = benchArgs('bench/ffn.ts', ['--json'], ['--models', '--teacher', '--task', '--rounds', '--threads']);
const json = has('--json');
const models = (arg('--models') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
if (models.length === 0) throw new Error('bench:ffn needs --models <dir>[,<dir>…] (folders written by shrink compress)');
const recipeModel = (dir: string): string | undefined => {
  const f = path.join(dir, 'report.json');
  if (!fs.existsSync(f)) return undefined;
  const r = JSON.parse(fs.readFileSync(f, 'utf8')) as { model?: string; before?: { model?: string } };
  return r.model ?? r.before?.model;
};
const teacherDir = arg('--teacher') ?? recipeModel(models[0]!);
if (!teacherDir) throw new Error(`bench:ffn: ${models[0]}/report.json names no model; give --teacher <dir>`);
const task = arg('--task') ?? 'sst2';
const rounds = intArg('--rounds', 9, 1);
setNumThreads(intArg('--threads', 1, 1));
const log = (s: string) => process.stderr.write(`bench:ffn: ${s}\n`);

type Fwd = Module & { forward(i: ModelInputs): unknown };
const td = taskData(teacherDir, task);
const inputs = { 1: td.latencyInputs(1), 32: td.latencyInputs(32) } as const;
const load = (dir: string) => (fromPretrained(dir) as Fwd).eval();
const all: Record<string, Fwd> = { teacher: load(teacherDir) };
for (const d of models) all[path.basename(path.resolve(d))] = load(d);

type Call = { run: (x: Tensor) => Tensor; input: Tensor; output: Tensor };

/**
 * Each MLP slot's computation and its input on `x` (one forward with hooks), with the output the forward produced:
 * a dense or gated MLP is down(act(up(x))) / down(act(gate(x))·up(x)) on its own Linears (BERT's slot is no module:
 * intermediate.dense → GELU → output.dense, before the dropout, residual and LayerNorm); a replaced slot (MoE, FFF)
 * or GPT-2's MLP module is called as it is.
 */
function slotCalls(m: Fwd, x: ModelInputs): Call[] {
  const calls: Call[] = [];
  const handles = anatomy(m).blocks.flatMap((b) => {
    const a = b.mlp;
    if (!a) return [];
    const lin = (p: string) => m.getSubmodule(p) as unknown as Module & { forward(x: Tensor): Tensor };
    const whole = a.kind === 'custom' || !a.up || !a.down ? lin(a.path) : null;
    const up = a.up ? lin(a.up) : null;
    const down = a.down ? lin(a.down) : null;
    const gate = a.gate ? lin(a.gate) : null;
    const act = a.activation ? activation(a.activation, 'bench:ffn') : null;
    const c: Call = {
      run: whole ? (t) => whole.forward(t) : (t) => down!.forward(gate ? act!(gate.forward(t)).mul(up!.forward(t)) : act!(up!.forward(t))),
      input: null as unknown as Tensor,
      output: null as unknown as Tensor,
    };
    calls.push(c);
    const [first, last] = whole ? [whole, whole] : [gate ?? up!, down!];
    return [registerForwardPreHook(first, (_m, args) => void (c.input ??= args[0] as Tensor)), registerForwardHook(last, (_m, _a, y) => void (c.output = y as Tensor))];
  });
  noGrad(() => m.forward(x));
  handles.forEach((h) => h.remove());
  for (const c of calls) {
    const again = noGrad(() => c.run(c.input)).toFloat32Array();
    const want = c.output.toFloat32Array();
    for (let i = 0; i < want.length; i++)
      if (!(Math.abs(again[i]! - want[i]!) <= 1e-4 * (1 + Math.abs(want[i]!)))) throw new Error(`bench:ffn: a captured slot call does not reproduce the forward's output (element ${i}: ${again[i]} vs ${want[i]})`);
  }
  return calls;
}

const machine = machineLine();
const rows: Record<string, unknown>[] = [];
for (const b of [1, 32] as const) {
  const x = inputs[b];
  const slots = Object.fromEntries(Object.entries(all).map(([k, m]) => [k, slotCalls(m, x)]));
  log(`batch ${b}: ffn slots, ${Object.keys(all).length} models interleaved, 1 warm-up + ${rounds} rounds…`);
  const ffn = compareLatency(
    Object.fromEntries(Object.entries(slots).map(([k, cs]) => [k, () => void noGrad(() => cs.forEach((c) => c.run(c.input)))])),
    { reference: 'teacher', rounds, warmup: 1, minMs: 20 },
  );
  log(`batch ${b}: whole model…`);
  const whole = compareLatency(Object.fromEntries(Object.entries(all).map(([k, m]) => [k, () => void noGrad(() => m.forward(x))])), { reference: 'teacher', rounds, warmup: 1, minMs: 20 });
  const r4 = (v: number) => +v.toFixed(4);
  for (const k of Object.keys(all)) {
    if (k === 'teacher') continue;
    rows.push({
      model: k, batch: b,
      ffn_ms: r4(ffn.best[k]!), teacher_ffn_ms: r4(ffn.best.teacher!), ffn_speedup: r4(ffn.ratios[k]!.median), ffn_speedup_min: r4(ffn.ratios[k]!.min), ffn_speedup_max: r4(ffn.ratios[k]!.max),
      model_ms: r4(whole.best[k]!), teacher_model_ms: r4(whole.best.teacher!), model_speedup: r4(whole.ratios[k]!.median), model_speedup_min: r4(whole.ratios[k]!.min), model_speedup_max: r4(whole.ratios[k]!.max),
      tokens: x.inputIds.numel, machine,
    });
    if (json) console.log(JSON.stringify(rows[rows.length - 1]));
  }
}
if (!json) {
  console.log(`teacher ${teacherDir}, task ${task}; ${machine}`);
  console.log('| model | batch (tokens) | FFN slots ms (teacher) | FFN speed-up | whole model ms (teacher) | model speed-up |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(`| ${r.model} | ${r.batch} (${r.tokens}) | ${r.ffn_ms} (${r.teacher_ffn_ms}) | ${(r.ffn_speedup as number).toFixed(2)}× | ${r.model_ms} (${r.teacher_model_ms}) | ${(r.model_speedup as number).toFixed(2)}× |`);
}
