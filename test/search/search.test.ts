// `shrink search`: the Wilson bound the early rejection uses, the Pareto front, and a real (small) search on the
// bundled SST-2 teacher with a fixed list of 3 cheap candidates: resumption (a rerun skips what candidates.jsonl
// holds, no duplicate lines), the budget stop, early rejection, and best.json run again by `shrink compress`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { devSubset, paretoFront, readRecords, search, formatSearch, wilsonInterval, candidateKey, mixedPrecision, oneShotCandidates, type Candidate } from '../../src/search/index.ts';
import { trainedOnly } from '../../src/search/space.ts';
import { parseRecipe, resolveSteps } from '../../src/compress/runner.ts';
import { fromPretrained } from '../../src/models/registry.ts';
import type { Module } from '../../src/nn/module.ts';
import { cli, run, root } from '../cli/helpers.ts';

const model = path.join(root, 'data/models/bert-teacher-sst2');

test('wilsonInterval: textbook values, edges and bad input', () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 5e-5, `${a} vs ${b}`);
  // 5 of 10: [0.2366, 0.7634]; 0 of 10: upper 0.2775 (z = 1.96)
  let w = wilsonInterval(5, 10);
  close(w.lower, 0.236593);
  close(w.upper, 0.763407);
  w = wilsonInterval(0, 10);
  assert.equal(w.lower, 0);
  close(w.upper, 0.277533);
  w = wilsonInterval(10, 10);
  close(w.lower, 0.722467);
  close(w.upper, 1);
  // 160 of 200: (0.8 + z²/400 ± z·sqrt(0.8·0.2/200 + z²/160000)) / (1 + z²/200) = [0.73914, 0.84955]
  w = wilsonInterval(160, 200);
  close(w.lower, 0.739144);
  close(w.upper, 0.849548);
  assert.deepEqual(wilsonInterval(0, 0), { lower: 0, upper: 1 });
  assert.throws(() => wilsonInterval(11, 10), /successes/);
  assert.throws(() => wilsonInterval(1.5, 10), /successes/);
  // the subset is fixed (seeded) and has no repeats
  const s = devSubset(872, 256, 0);
  assert.deepEqual(s, devSubset(872, 256, 0));
  assert.equal(new Set(s).size, 256);
  assert.notDeepEqual(s, devSubset(872, 256, 1));
});

test('paretoFront: non-dominated points (metric up, objective down)', () => {
  const pts = [
    { key: 'a', metric: 0.8, objective: 10 },
    { key: 'b', metric: 0.79, objective: 5 },
    { key: 'c', metric: 0.78, objective: 6 }, // dominated by b
    { key: 'd', metric: 0.8, objective: 12 }, // dominated by a
    { key: 'e', metric: 0.7, objective: 1 },
  ];
  assert.deepEqual(paretoFront(pts), ['a', 'b', 'e']);
});

const cands: Candidate[] = [
  { name: 'rtn int8-dynamic', family: 'quant', phase: 'one-shot', recipe: { steps: [{ method: 'quant.rtn', scheme: 'int8-dynamic' }] } },
  { name: 'rtn int4 g128', family: 'quant', phase: 'one-shot', recipe: { steps: [{ method: 'quant.rtn', scheme: 'int4', granularity: 'group:128' }] } },
  // 90 % of the weights, embeddings included (README, Pruning: 49 % accuracy): the gate must stop it
  { name: 'magnitude 90% all', family: 'prune.magnitude', phase: 'one-shot', recipe: { steps: [{ method: 'prune.magnitude', sparsity: 0.9, scope: 'global', targets: ['bert.encoder.**', 'bert.pooler.dense', 'bert.embeddings.word_embeddings', 'bert.embeddings.position_embeddings'] }] } },
];

test('mixedPrecision: an int4 one-shot just over budget is retried with its most sensitive quarter at int8-dynamic', () => {
  const all = oneShotCandidates();
  const g128 = all.find((c) => c.name === 'rtn int4 g128')!;
  assert.equal(g128.promiseGate, true, 'int4 one-shots are gated at teacher − 3 × max-drop, so their drop is known');
  const layers = ['bert.encoder.layer.0.attention.self.query', 'bert.encoder.layer.0.attention.self.key', 'bert.encoder.layer.0.attention.self.value', 'bert.encoder.layer.0.attention.output.dense', 'bert.encoder.layer.0.intermediate.dense', 'bert.encoder.layer.0.output.dense', 'bert.encoder.layer.1.intermediate.dense', 'bert.encoder.layer.1.output.dense'];
  const errs = [0.002, 0.003, 0.0125, 0.001, 0.004, 0.009, 0.001, 0.004];
  const outcome = (drop: number, within: boolean) => ({ key: candidateKey(g128.recipe), family: 'quant', phase: 'one-shot' as const, status: 'measured' as const, drop, within, objective: 1, recipe: g128.recipe, layerError: Object.fromEntries(layers.map((n, i) => [n, errs[i]!])) });
  const sp = { maxDrop: 1, trainSteps: 60 };
  const [m, ...rest] = mixedPrecision([outcome(1.5, false)], all, sp);
  assert.equal(rest.length, 0);
  // 8 layers: the 2 largest errors (value 0.0125, layer 0 output 0.009) go to int8-dynamic
  const keep = ['bert.encoder.layer.0.attention.self.value', 'bert.encoder.layer.0.output.dense'];
  assert.equal(m!.name, 'rtn int4 g128, 2 sensitive → int8-dynamic');
  assert.deepEqual(m!.recipe.steps, [{ method: 'quant.rtn', scheme: 'int8-dynamic', targets: keep }, { method: 'quant.rtn', scheme: 'int4', granularity: 'group:128', ignore: keep }]);
  // the recipe is valid on the model it was measured on
  const model = fromPretrained(path.join(root, 'data/models/bert-teacher-sst2')) as Module;
  assert.equal(resolveSteps(parseRecipe(m!.recipe), model).length, 2);
  // within budget, too far over it, or without per-layer errors: no retry
  assert.deepEqual(mixedPrecision([outcome(0.5, true)], all, sp), []);
  assert.deepEqual(mixedPrecision([outcome(3.5, false)], all, sp), []);
  assert.deepEqual(mixedPrecision([{ ...outcome(1.5, false), layerError: null }], all, sp), []);
});

test('trainedOnly: fast feedforward, distillation and CoFi candidates, each a valid recipe on the SST-2 teacher', () => {
  const model = fromPretrained(path.join(root, 'data/models/bert-teacher-sst2')) as Module;
  const cands = trainedOnly({ maxDrop: 1, trainSteps: 60 });
  assert.deepEqual(cands.map((c) => c.family), ['fff.ultrafast', 'distill.kd', 'prune.cofi', 'prune.cofi']);
  assert.equal(cands[0]!.name, 'fff depth 8 (120 steps)');
  for (const c of cands) assert.ok(resolveSteps(parseRecipe(c.recipe), model).length >= 1, c.name);
});

test('search: 3 cheap candidates on the SST-2 teacher; resume, budget stop, early rejection, best.json runnable', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'search-'));
  const out = path.join(dir, 's');
  try {
    const base = { task: 'sst2', maxDrop: 1.0, objective: 'latency' as const, out, gateSubset: 128 };
    // 1: the first two candidates
    const r1 = search(model, { ...base, candidates: cands.slice(0, 2) });
    assert.equal(r1.evaluated, 2);
    assert.equal(r1.skipped, 0);
    const jsonl = path.join(out, 'candidates.jsonl');
    assert.equal(readRecords(jsonl).length, 2);
    for (const rec of r1.records) {
      assert.equal(rec.status, 'measured');
      for (const k of ['metric', 'bytes', 'latency_ms_b1', 'latency_ms_b32'] as const) assert.equal(typeof rec[k], 'number', `${rec.name} ${k}`);
      assert.ok(rec.gate && rec.gate.subset === 128, 'the gate ran on the subset first');
      assert.ok(rec.bytes! < r1.teacher.bytes * 0.3);
    }
    assert.ok(r1.best, 'int8-dynamic keeps the teacher\'s accuracy');
    assert.ok(r1.best!.within);
    // 2: a third candidate, but a budget already spent: nothing starts, nothing is appended
    const r2 = search(model, { ...base, candidates: cands, budgetMinutes: 0 });
    assert.equal(r2.evaluated, 0);
    assert.equal(r2.skipped, 2);
    assert.equal(r2.budgetStopped, true);
    assert.equal(r2.notStarted, 1);
    assert.match(formatSearch(r2), /Budget of the run reached: 1 candidate/);
    assert.equal(readRecords(jsonl).length, 2);
    // 3: rerun: the two recorded ones are skipped, the third is rejected early on the subset
    const r3 = search(model, { ...base, candidates: cands });
    assert.equal(r3.evaluated, 1);
    assert.equal(r3.skipped, 2);
    const recs = readRecords(jsonl);
    assert.equal(recs.length, 3);
    assert.equal(new Set(recs.map((x) => x.key)).size, 3, 'no candidate twice');
    const rej = recs.find((x) => x.key === candidateKey(cands[2]!.recipe))!;
    assert.equal(rej.status, 'rejected', JSON.stringify(rej));
    assert.ok(rej.gate!.upper! < rej.gate!.threshold);
    assert.equal(rej.metric, null, 'no full evaluation after the rejection');
    assert.ok(!fs.existsSync(path.join(out, 'runs', rej.key)));
    // latency objective: the candidates within budget were timed again with the model, interleaved
    assert.ok(r3.best!.confirmed && r3.best!.confirmed.latency_ms_b32 > 0 && r3.teacherConfirmed);
    const table = formatSearch(r3);
    assert.match(table, /★\*? \| rtn /);
    assert.match(table, /rejected early/);
    // best.json: model and task named, no gate step; best/ is the winner's folder
    const best = JSON.parse(fs.readFileSync(path.join(out, 'best.json'), 'utf8'));
    assert.equal(best.task, 'sst2');
    assert.equal(best.model, model);
    assert.ok(!JSON.stringify(best.steps).includes('search.gate'));
    const bestRep = JSON.parse(fs.readFileSync(path.join(out, 'best', 'report.json'), 'utf8'));
    assert.ok(!JSON.stringify(bestRep.recipe).includes('search.gate'));
    assert.equal(bestRep.after.metric, r3.best!.metric);
    // report.html: every measured candidate a point, the chosen one a star, the budget a line; shrink report draws
    // the same page again from the folder, and refuses to mix it with other folders
    const pageData = (html: string) => JSON.parse(/<script type="application\/json" id="shrink-data">([\s\S]*?)<\/script>/.exec(html)![1]!);
    assert.equal(r3.reportHtml, path.join(out, 'report.html'));
    const page = pageData(fs.readFileSync(r3.reportHtml!, 'utf8'));
    assert.equal(page.budget.value, 100 * r3.teacher.metric! - 1);
    const bytesChart = page.charts.find((c: { title: string }) => c.title === 'sst2 accuracy vs bytes');
    assert.ok(bytesChart, JSON.stringify(page.charts.map((c: { title: string }) => c.title)));
    const pts = bytesChart.points as { label: string; x: number; y: number; output: number; chosen?: boolean }[];
    assert.deepEqual(pts.filter((p) => p.output >= 0).map((p) => p.label).sort(), r3.records.filter((x) => x.status === 'measured').map((x) => x.name).sort());
    const star = pts.filter((p) => p.chosen);
    assert.equal(star.length, 1);
    assert.equal(star[0]!.label, r3.best!.name);
    assert.equal(star[0]!.x, r3.best!.bytes);
    // latency points: the model's ms × the candidate's re-timed ratio to it
    const b32 = page.charts.find((c: { title: string }) => c.title === 'sst2 accuracy vs latency b32').points.find((p: { chosen?: boolean }) => p.chosen);
    assert.ok(Math.abs(b32.x - r3.teacher.latency_ms_b32 / r3.best!.confirmed!.speedup_b32) < 1e-9);
    const again = run('report', out, '-o', path.join(dir, 'again.html'), '--json');
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(pageData(fs.readFileSync(path.join(dir, 'again.html'), 'utf8')).charts, page.charts);
    const mixed = run('report', out, path.join(out, 'best'), '-o', path.join(dir, 'mixed.html'));
    assert.equal(mixed.status, 1);
    assert.equal(mixed.stderr.trim(), `shrink: report: ${out} is a shrink search folder; give it alone (its candidates are the outputs), or give output folders of shrink compress`);
    // shrink compress reproduces the recorded metric and bytes from best.json alone
    const c = run('compress', '--recipe', path.join(out, 'best.json'), '-o', path.join(dir, 'again'), '--json');
    assert.equal(c.status, 0, c.stderr);
    const rep = JSON.parse(c.stdout);
    assert.equal(rep.after.metric, r3.best!.metric);
    assert.equal(rep.after.bytes, r3.best!.bytes);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink search: flag errors are one line, before any work', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'search-cli-'));
  try {
    const o = path.join(dir, 'o');
    const cases: [string[], RegExp][] = [
      [['search', model, '-o', o], /needs --task/],
      [['search', model, '--task', 'sst2'], /needs -o/],
      [['search', model, '--task', 'sst2', '-o', o, '--objective', 'speed'], /--objective must be latency or bytes, got 'speed'/],
      [['search', model, '--task', 'sst2', '-o', o, '--max-drop', '-1'], /--max-drop must be a number of points >= 0, got '-1'/],
      [['search', model, '--task', 'sst2', '-o', o, '--max-drop', 'x'], /--max-drop must be/],
      [['search', model, '--task', 'sst2', '-o', o, '--batch', '8'], /--batch must be 1 or 32, got '8'/],
      [['search', model, '--task', 'sst2', '-o', o, '--budget-minutes', '0'], /--budget-minutes must be a positive number/],
      [['search', model, '--task', 'ppl:x.txt', '-o', o], /--task must be a GLUE task/],
      [['search', path.join(dir, 'nope'), '--task', 'sst2', '-o', o], /not a model folder/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(...args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    fs.mkdirSync(o);
    fs.writeFileSync(path.join(o, 'x'), '');
    const r = await cli('search', model, '--task', 'sst2', '-o', o);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not a shrink search folder/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
