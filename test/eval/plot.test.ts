// `shrink plot`: reading log.jsonl (resumed runs log some steps twice; a kill can tear the last line), picking and
// smoothing series, nice ticks, and the SVG itself — well-formed, with axes, ticks, labels, legend and one polyline
// per series whose points lie inside the plot area.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { findLog, formatTick, lineChartSvg, niceTicks, plotRun, readLog, seriesFromLog, smooth } from '../../src/eval/plot.ts';
import { run, tmpDir } from '../cli/helpers.ts';

/** A run folder like `shrink pretrain` leaves: .run/log.jsonl with a resume overlap, a torn line and evaluations. */
function fakeRun(dir: string, steps = 120): string {
  fs.mkdirSync(path.join(dir, '.run'), { recursive: true });
  const lines: string[] = [];
  const entry = (s: number, bump = 0) => JSON.stringify({ step: s, loss: 10 * Math.exp(-s / 40) + 2 + 0.3 * Math.sin(s) + bump, lr: 1e-3 * (1 - s / steps), gradNorm: 1, msPerStep: 5, ...(s % 20 === 0 ? { eval: { metric: 9 * Math.exp(-s / 40) + 2.5, loss: 9 * Math.exp(-s / 40) + 2.5, ms: 3 } } : {}) });
  for (let s = 1; s <= 50; s++) lines.push(entry(s, 100)); // logged before a kill …
  lines.push('{"step":51,"loss":3.'); // … which tore this line
  for (let s = 41; s <= steps; s++) lines.push(entry(s)); // the resumed run logs 41–50 again
  fs.writeFileSync(path.join(dir, '.run', 'log.jsonl'), lines.join('\n') + '\n');
  return dir;
}

/** Tags balance (a small well-formedness check: every opened element is closed in order). */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes <${stack[stack.length]}>`);
    else stack.push(name!);
  }
  assert.deepEqual(stack, []);
  assert.doesNotMatch(svg.replace(/&(amp|lt|gt|quot);/g, ''), /&/);
}

test('readLog keeps one entry per step (the later one), skips torn lines, and sorts by step', () => {
  const dir = fakeRun(tmpDir('plot-'));
  assert.equal(findLog(dir), path.join(dir, '.run', 'log.jsonl'));
  const e = readLog(findLog(dir));
  assert.deepEqual(e.map((x) => x.step), Array.from({ length: 120 }, (_, i) => i + 1));
  assert.ok(e[44]!.loss! < 50, 'step 45 is the resumed run\'s entry, not the killed one\'s');
  assert.ok(e[9]!.loss! > 100, 'steps before the resume point keep the first run\'s entries');
  assert.throws(() => findLog(path.join(dir, 'nope')), /nope: no such file or folder \(expected a run folder or its log\.jsonl\)/);
  fs.mkdirSync(path.join(dir, 'empty'));
  assert.throws(() => findLog(path.join(dir, 'empty')), /empty: no training log \(looked for .*empty\/log\.jsonl and .*empty\/\.run\/log\.jsonl\)/);
  fs.rmSync(dir, { recursive: true });
});

test('series: loss (optionally smoothed, the raw curve kept faint), eval from the evaluations, missing keys reported', () => {
  const e = readLog(findLog(fakeRun(tmpDir('plot-'))));
  const { series, missing } = seriesFromLog(e, ['loss', 'eval', 'parts.kd'], { smooth: 10 });
  assert.deepEqual(missing, ['parts.kd']);
  assert.deepEqual(series.map((s) => [s.label, s.points.length, !!s.faint, !!s.dots]), [
    ['training loss', 120, true, false],
    ['training loss (mean of 10 steps)', 120, false, false],
    ['held-out loss', 6, false, true],
  ]);
  assert.deepEqual(smooth([[1, 1], [2, 3], [3, 5], [4, 7]], 2), [[1, 1], [2, 2], [3, 4], [4, 6]]);
  assert.deepEqual(seriesFromLog(e, ['eval.metric']).series[0]!.points.map((p) => p[0]), [20, 40, 60, 80, 100, 120]);
});

test('niceTicks cover the data with 1-2-5 steps; labels use as many decimals as the step needs', () => {
  assert.deepEqual(niceTicks(1, 120, 8, true), [0, 20, 40, 60, 80, 100, 120]);
  assert.deepEqual(niceTicks(2.3, 9.7, 6), [2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(6.12, 6.48, 6), [6.1, 6.2, 6.3, 6.4, 6.5]);
  assert.deepEqual(niceTicks(5, 5, 4), [4.5, 5, 5.5]);
  assert.equal(formatTick(6.2, 0.1), '6.2');
  assert.equal(formatTick(2000, 500), '2,000');
  assert.equal(formatTick(4, 2), '4');
  assert.equal(formatTick(0.0005, 0.0001), '5e-4');
  assert.equal(formatTick(0.00015, 0.00005), '1.5e-4');
});

test('the SVG: well-formed, axes with ticks and labels, a title and legend, one polyline per series inside the plot area', () => {
  const e = readLog(findLog(fakeRun(tmpDir('plot-'))));
  const { series } = seriesFromLog(e, ['loss', 'eval'], { smooth: 10 });
  const svg = lineChartSvg(series, { title: 'run <a> & b', yLabel: 'loss (nats per token)', width: 800, height: 480 });
  assertWellFormed(svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="800" height="480" viewBox="0 0 800 480"/);
  assert.ok(svg.includes('>run &lt;a&gt; &amp; b</text>'), 'the title, escaped');
  assert.match(svg, /<text class="x-label"[^>]*>step<\/text>/);
  assert.match(svg, /<text class="y-label"[^>]*transform="rotate\(-90[^>]*>loss \(nats per token\)<\/text>/);
  const xTicks = [...svg.matchAll(/<g class="x-ticks"[^]*?<\/g>/g)][0]![0];
  assert.deepEqual([...xTicks.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]), ['0', '20', '40', '60', '80', '100', '120']);
  const yTicks = [...svg.matchAll(/<g class="y-ticks"[^]*?<\/g>/g)][0]![0];
  const yl = [...yTicks.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => Number(m[1]));
  assert.ok(yl.length >= 4 && yl[0]! <= 2.5 && yl[yl.length - 1]! >= 11, `y ticks ${yl}`);
  const legend = [...svg.matchAll(/<g class="legend">[^]*?<\/g>/g)][0]![0];
  assert.deepEqual([...legend.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]), ['training loss (mean of 10 steps)', 'held-out loss']);
  const lines = [...svg.matchAll(/<polyline data-label="([^"]*)" points="([^"]*)"/g)];
  assert.deepEqual(lines.map((m) => m[1]), ['training loss', 'training loss (mean of 10 steps)', 'held-out loss']);
  for (const [, , pts] of lines) {
    const xy = pts!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    for (const [x, y] of xy) assert.ok(x >= 72 - 0.01 && x <= 800 - 24 + 0.01 && y >= 44 - 0.01 && y <= 480 - 56 + 0.01, `point ${x},${y} outside the plot area`);
    for (let i = 1; i < xy.length; i++) assert.ok(xy[i]![0] > xy[i - 1]![0], 'x increases');
  }
  assert.equal([...svg.matchAll(/<circle /g)].length, 6 + 1, 'a dot per evaluation, and one in the legend');
  // a long series is averaged down to maxPoints
  const long = lineChartSvg([{ label: 'x', color: '#000', points: Array.from({ length: 10000 }, (_, i) => [i + 1, Math.sin(i)] as [number, number]) }], { maxPoints: 500 });
  assert.equal(/points="([^"]*)"/.exec(long)![1]!.split(' ').length, 500);
});

test('shrink plot writes the SVG of a run folder or a log file; bad inputs are one-line errors', () => {
  const dir = fakeRun(tmpDir('plot-cli-'));
  const out = path.join(dir, 'curve.svg');
  const r = run('plot', dir, '-o', out, '--smooth', '5');
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.startsWith(`wrote ${out} (${path.join(dir, '.run', 'log.jsonl')}, to step 120: training loss (mean of 5 steps) 120 points, last `), r.stdout);
  assert.match(r.stdout, /held-out loss 6 points, last 2\.\d+\)\n$/);
  assertWellFormed(fs.readFileSync(out, 'utf8'));
  const lr = run('plot', path.join(dir, '.run', 'log.jsonl'), '-o', out, '--y', 'lr,parts.kd', '--json');
  assert.equal(lr.status, 0, lr.stderr);
  assert.equal(lr.stderr, `shrink: warning: ${path.join(dir, '.run', 'log.jsonl')} has no values for 'parts.kd'\n`);
  assert.deepEqual(JSON.parse(lr.stdout).series.map((s: { label: string }) => s.label), ['learning rate']);
  assert.match(fs.readFileSync(out, 'utf8'), />learning rate, parts\.kd<\/text>/);
  const mixed = run('plot', dir, '-o', out, '--y', 'loss,lr');
  assert.equal(mixed.status, 0, mixed.stderr);
  assert.equal(mixed.stderr, 'shrink: warning: the series loss, lr differ in size by more than 100×, so the smaller ones look flat; plot them separately (one --y each)\n');
  const none = run('plot', dir, '-o', out, '--y', 'parts.kd');
  assert.equal(none.status, 1);
  assert.match(none.stderr, /^shrink: .*log\.jsonl: none of the series parts\.kd has a value/);
  const folder = run('plot', dir, '-o', dir);
  assert.equal(folder.stderr, `shrink: ${dir}: is a folder; -o takes the SVG file to write\n`);
  assert.throws(() => plotRun(dir, path.join(dir, 'no', 'x.svg')), /cannot write .*x\.svg: folder .*no does not exist/);
  fs.rmSync(dir, { recursive: true });
});

test('shrink plot draws several runs on one plot, each series named by its run; --labels renames them', () => {
  const a = fakeRun(tmpDir('plot-a-'));
  const b = fakeRun(tmpDir('plot-b-'));
  const out = path.join(a, 'both.svg');
  const r = run('plot', a, path.join(b, '.run', 'log.jsonl'), '-o', out, '--y', 'eval,parts.kd', '--json');
  assert.equal(r.status, 0, r.stderr);
  const [na, nb] = [path.basename(a), path.basename(b)];
  assert.deepEqual(JSON.parse(r.stdout).series.map((s: { label: string }) => s.label), [`${na}: held-out loss`, `${nb}: held-out loss`]);
  assert.equal(r.stderr, `shrink: warning: no values for '${na}: parts.kd'\nshrink: warning: no values for '${nb}: parts.kd'\n`);
  const svg = fs.readFileSync(out, 'utf8');
  assertWellFormed(svg);
  assert.ok(svg.includes(`${na} vs ${nb}`), "title names both runs");
  // one colour per run
  const colours = [...svg.matchAll(/<polyline data-label="[^"]*" points="[^"]*" stroke="(#[0-9a-f]+)"/g)].map((m) => m[1]);
  assert.equal(new Set(colours).size, 2);
  const named = run('plot', a, b, '-o', out, '--labels', 'dense,moe', '--json');
  assert.equal(named.status, 0, named.stderr);
  assert.deepEqual(JSON.parse(named.stdout).series.map((s: { label: string }) => s.label), ['dense: training loss', 'dense: held-out loss', 'moe: training loss', 'moe: held-out loss']);
  const bad = run('plot', a, b, '-o', out, '--labels', 'one');
  assert.equal(bad.stderr, 'shrink: --labels: 1 label for 2 runs\n');
  fs.rmSync(a, { recursive: true });
  fs.rmSync(b, { recursive: true });
});
