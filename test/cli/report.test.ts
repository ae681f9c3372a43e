// `shrink report`: compress outputs (report.json folders, written here by hand in the shape compress writes) in,
// one self-contained HTML page out; bad folders and an existing output fail before anything is written; a headless
// Chromium opens the page and checks every chart drew.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { paretoFlags, type ChartSpec } from '../../src/report/html.ts';

const root = path.resolve(import.meta.dirname, '../..');
const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root });
const tmpdir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'cli-report-'));

const TEACHER = '/work/data/models/bert-teacher-sst2';
const BEFORE = { params: 2558338, bytes: 10233352, metric: 0.801605504587156, latency_ms_b1: 1.038, latency_ms_b32: 36.221 };
const LAYERS = ['query', 'key', 'value'].map((k) => `bert.encoder.layer.0.attention.self.${k}`).concat(['bert.encoder.layer.0.intermediate.dense', 'bert.encoder.layer.0.output.dense']);

/** A report.json as `shrink compress` writes it (fields and nesting copied from real outputs). */
function report(out: string, after: Record<string, unknown>, steps: Record<string, unknown>[], recipeSteps: Record<string, unknown>[], layers?: Record<string, unknown>) {
  return {
    model: TEACHER,
    out,
    task: 'sst2',
    metric_name: 'accuracy',
    before: BEFORE,
    after,
    steps,
    ...(layers ? { layers } : {}),
    recipe: { model: TEACHER, task: 'sst2', train: { steps: 20, lr: 0.0005, batch_size: 16, max_length: 64, seed: 0 }, steps: recipeSteps },
    eval_command: `shrink eval ${out} -t sst2`,
    seconds: 5.2,
  };
}

/** Three outputs: int8 (quantized, per-layer error), magnitude-50 (pruned, per-layer sparsity), kd (a student). */
function fixtures(dir: string): string[] {
  const write = (name: string, r: unknown) => {
    const d = path.join(dir, name);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'report.json'), JSON.stringify(r, null, 2) + '\n');
    return d;
  };
  const int8 = path.join(dir, 'int8');
  const mag = path.join(dir, 'magnitude-50');
  const kd = path.join(dir, 'kd');
  return [
    write(
      'int8',
      report(
        int8,
        { params: 2558338, bytes: 2690000, metric: 0.7993119266055045, latency_ms_b1: 0.62, latency_ms_b32: 20.5, kernels: { [LAYERS[0]!]: 'int8-dynamic 128×128: large int8-gemm (avx512-vnni tile)' } },
        [{ step: 1, method: 'quant.rtn', kind: 'one-shot', stage: 1, ms: 120, quantized_modules: 12, quantized_weights: 393216, quantized_bytes: 399360, bits_per_weight: 8.125 }],
        [{ method: 'quant.rtn', scheme: 'int8-dynamic', granularity: 'channel', embeddings: true }],
        { error: Object.fromEntries(LAYERS.map((n, i) => [n, [1.2e-4, 9.5e-5, 2.1e-4, 3.3e-4, 7.7e-4][i]!])) },
      ),
    ),
    write(
      'magnitude-50',
      report(
        mag,
        { params: 2558338, bytes: 7800000, metric: 0.7821100917431193, latency_ms_b1: 0.95, latency_ms_b32: 30.1 },
        [{ step: 1, method: 'prune.magnitude', kind: 'one-shot', stage: 1, ms: 80, pruned_layers: 5, target_weights: 98304, pruned_weights: 49152, sparsity: 0.5, sparse_layers: 5, csr_layers: 0, sparse_weight_bytes: 208896, dense_weight_bytes: 393216 }],
        [{ method: 'prune.magnitude', sparsity: 0.5, scope: 'global', targets: null, ignore: null, storage: 'sparse' }],
        { sparsity: Object.fromEntries(LAYERS.map((n, i) => [n, [0.41, 0.45, 0.52, 0.55, 0.5][i]!])) },
      ),
    ),
    write(
      'kd',
      report(
        kd,
        { params: 1126786, bytes: 4507144, metric: 0.5091743119266054, latency_ms_b1: 0.114, latency_ms_b32: 5.623 },
        [{ step: 1, method: 'distill.kd', kind: 'trained', stage: 1, ms: 1791, student_layers: 1, student_hidden: 64, student_params: 1126786, params_ratio: 0.4404 }],
        [{ method: 'distill.kd', temperature: 2, alpha: 0.5, student: { layers: 1, hidden: 64, heads: 2, intermediate: 256 } }],
      ),
    ),
  ];
}

/** The chart specs embedded in a page. */
function chartsOf(html: string): ChartSpec[] {
  const m = /<script type="application\/json" id="shrink-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'the page embeds its chart data');
  return (JSON.parse(m[1]!) as { charts: ChartSpec[] }).charts;
}

test('paretoFlags: a point is optimal unless another is no worse on both axes and better on one', () => {
  const pts = [
    { x: 10, y: 80 }, // original: best metric
    { x: 3, y: 79 }, // smaller, nearly as good: optimal
    { x: 8, y: 78 }, // beaten by the one before
    { x: 1, y: 50 }, // smallest: optimal
    { x: 3, y: 79 }, // a tie with an optimal point: optimal too
  ];
  assert.deepEqual(paretoFlags(pts, true), [true, true, false, true, true]);
  // perplexity: lower is better
  assert.deepEqual(paretoFlags([{ x: 1, y: 20 }, { x: 2, y: 10 }, { x: 3, y: 15 }], false), [true, true, false]);
});

test('shrink report: one self-contained page with the table, the Pareto plots and the per-layer charts', () => {
  const dir = tmpdir();
  try {
    const dirs = fixtures(dir);
    const out = path.join(dir, 'report.html');
    const r = run('report', ...dirs, '-o', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    assert.deepEqual(res.outputs, ['int8', 'magnitude-50', 'kd']);
    assert.equal(res.charts, 5); // metric vs bytes, latency b1, latency b32; int8's error; magnitude-50's sparsity
    const html = fs.readFileSync(out, 'utf8');
    assert.equal(res.bytes, Buffer.byteLength(html));
    assert.deepEqual(fs.readdirSync(dir).sort(), ['int8', 'kd', 'magnitude-50', 'report.html']); // no temp file left

    // self-contained: nothing loaded from the network, Chart.js inlined
    assert.doesNotMatch(html, /\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    assert.doesNotMatch(html, /<link\b/i);
    assert.doesNotMatch(html, /<script[^>]*\bsrc=/i);
    assert.match(html, /Chart\.js v4\./);
    assert.match(html, /document\.body\.dataset\.rendered = String\(drawn\)/);
    assert.equal((html.match(/<canvas /g) ?? []).length, 5);

    // the table: one row per output with its recipe and before → after numbers
    const table = /<table id="outputs">([\s\S]*?)<\/table>/.exec(html)![1]!;
    assert.equal((table.match(/<tr>/g) ?? []).length, 4); // header + 3
    assert.match(table, /<b>int8<\/b>[\s\S]*quant\.rtn \(scheme int8-dynamic, granularity channel\)[\s\S]*80\.16 → <b>79\.93<\/b><br><span class="bad">\(-0\.23\)<\/span>[\s\S]*9\.76 MB → <b>2\.57 MB<\/b><br><span class="good">\(3\.80× smaller\)<\/span>[\s\S]*1\.04 → <b>0\.62<\/b><br><span class="good">\(1\.67× faster\)<\/span>[\s\S]*36\.22 → <b>20\.50<\/b><br><span class="good">\(1\.77× faster\)<\/span>/);
    assert.match(table, /<b>magnitude-50<\/b>[\s\S]*prune\.magnitude \(sparsity 0\.5\)[\s\S]*80\.16 → <b>78\.21<\/b>[\s\S]*9\.76 MB → <b>7\.44 MB<\/b>/);
    assert.match(table, /<b>kd<\/b>[\s\S]*distill\.kd \(student layers 1, hidden 64\)[\s\S]*80\.16 → <b>50\.92<\/b>[\s\S]*2,558,338 → 1,126,786/);

    // the chart data
    const charts = chartsOf(html);
    assert.deepEqual(charts.map((c) => c.kind), ['pareto', 'pareto', 'pareto', 'layers', 'layers']);
    const bytes = charts[0]!;
    assert.ok(bytes.kind === 'pareto');
    assert.deepEqual(
      bytes.points.map((p) => [p.label, p.x, +p.y.toFixed(2), p.pareto]),
      [
        ['original: bert-teacher-sst2', 10233352, 80.16, true],
        ['int8', 2690000, 79.93, true],
        ['magnitude-50', 7800000, 78.21, false], // int8 is smaller and better
        ['kd', 4507144, 50.92, false],
      ],
    );
    assert.deepEqual(bytes.front.map((p) => p.x), [2690000, 10233352]);
    const b32 = charts[2]!;
    assert.ok(b32.kind === 'pareto');
    assert.deepEqual(b32.points.map((p) => p.pareto), [true, true, false, true]); // kd is the fastest
    const [err, sp] = [charts[3]!, charts[4]!];
    assert.ok(err.kind === 'layers' && sp.kind === 'layers');
    assert.equal(err.yLog, true);
    assert.deepEqual(err.labels, ['attention.self.query', 'attention.self.key', 'attention.self.value', 'intermediate.dense', 'output.dense']);
    assert.deepEqual(err.values, [1.2e-4, 9.5e-5, 2.1e-4, 3.3e-4, 7.7e-4]);
    assert.deepEqual(sp.values, [41, 45, 52, 55, 50]);
    assert.match(html, /int8-dynamic 128×128: large int8-gemm/); // kernels in the details
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink report: a missing or malformed report.json, or an existing output without --force, fails before writing', () => {
  const dir = tmpdir();
  try {
    const [int8, mag] = fixtures(dir);
    const out = path.join(dir, 'report.html');
    const fails = (args: string[], msg: string) => {
      const r = run('report', ...args);
      assert.equal(r.status, 1, r.stdout);
      assert.equal(r.stderr, `shrink: ${msg}\n`);
    };

    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    fails([int8!, empty, '-o', out], `${empty}: no report.json (expected an output folder of shrink compress)`);
    fails([int8!, path.join(dir, 'nope'), '-o', out], `${path.join(dir, 'nope')}: no such folder (expected an output folder of shrink compress)`);
    const torn = path.join(dir, 'torn');
    fs.mkdirSync(torn);
    fs.writeFileSync(path.join(torn, 'report.json'), '{"model": "x", ');
    const r = run('report', int8!, torn, '-o', out);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^shrink: ${path.join(torn, 'report.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON: .+\n$`));
    const bad = path.join(dir, 'bad');
    fs.mkdirSync(bad);
    const rep = JSON.parse(fs.readFileSync(path.join(mag!, 'report.json'), 'utf8'));
    fs.writeFileSync(path.join(bad, 'report.json'), JSON.stringify({ ...rep, after: { ...rep.after, bytes: '7.4 MB' } }));
    fails([bad, '-o', out], `${path.join(bad, 'report.json')}: after.bytes: expected a number, got "7.4 MB"`);
    assert.equal(fs.existsSync(out), false, 'nothing written');

    fs.writeFileSync(out, 'keep me');
    fails([int8!, '-o', out], `output file ${out} exists (use --force to replace it)`);
    assert.equal(fs.readFileSync(out, 'utf8'), 'keep me');
    fails([int8!, '-o', dir], `${dir} is a folder; -o takes the HTML file to write`);
    const ok = run('report', int8!, mag!, '-o', out, '--force');
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^wrote .*report\.html \(2 outputs: int8, magnitude-50; 5 charts; \d+ KB\)\n$/);
    assert.match(fs.readFileSync(out, 'utf8'), /^<!DOCTYPE html>/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** chromium (or chromium-browser) on PATH, else null. */
function findChromium(): string | null {
  for (const name of ['chromium', 'chromium-browser']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

test('shrink report: headless Chromium draws every chart of the page', { timeout: 420_000 }, (t) => {
  let chromium = findChromium();
  if (!chromium && process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    spawnSync('apt-get', ['install', '-y', 'chromium'], { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    chromium = findChromium();
  }
  if (!chromium) {
    t.skip('skipped: no chromium (apt-get install chromium)');
    return;
  }
  const dir = tmpdir();
  try {
    const out = path.join(dir, 'report.html');
    const r = run('report', ...fixtures(dir), '-o', out);
    assert.equal(r.status, 0, r.stderr);
    const charts = chartsOf(fs.readFileSync(out, 'utf8')).length;
    const c = spawnSync(
      chromium,
      ['--headless=new', '--no-sandbox', '--disable-gpu', `--user-data-dir=${path.join(dir, 'profile')}`, '--virtual-time-budget=5000', '--dump-dom', `file://${out}`],
      { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 },
    );
    assert.equal(c.status, 0, `chromium failed: ${c.error?.message ?? ''} ${c.stderr.slice(-2000)}`);
    const dom = c.stdout;
    assert.equal(/<body[^>]*\bdata-rendered="(\d+)"/.exec(dom)?.[1], String(charts), 'data-rendered is the number of charts');
    const canvases = [...dom.matchAll(/<canvas\b[^>]*>/g)].map((m) => m[0]);
    assert.equal(canvases.length, charts);
    for (const cv of canvases) {
      const px = Number(/data-pixels="(-?\d+)"/.exec(cv)?.[1]);
      assert.ok(px > 1000, `a canvas drew: ${cv}`);
    }
    assert.doesNotMatch(dom, /<p class="chart-error">/, "no chart failed");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
