/**
 * `shrink report`'s page: one self-contained HTML file comparing any number of `shrink compress` outputs.
 *
 * - A table, one row per output: recipe, metric before → after, bytes before → after (and how many times smaller),
 *   latency at batch 1 and 32 before → after (and the speed-up), and on which Pareto fronts the output lies.
 * - Pareto plots, per task and metric: metric against bytes, against latency at batch 1, and at batch 32. The
 *   original model of each output is a reference point; points no other point beats on both axes are filled and
 *   joined by the front line, the others drawn hollow.
 * - Per-layer plots where report.json has them (`layers`, see src/report/layers.ts): the relative output error of
 *   each quantized layer (log scale), the sparsity of each layer of a pruned model.
 *
 * Charts are drawn by Chart.js (its UMD build, read from node_modules and inlined), from data embedded as JSON; the
 * page needs no network. After drawing it sets `document.body.dataset.rendered` to the number of charts drawn and
 * each canvas's `data-pixels` to its count of non-blank pixels, so a headless browser can check the plots drew.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { CompressReport } from '../cli/compress.ts';
import type { NamedReport } from './read.ts';

export type { NamedReport } from './read.ts';

/** A point of a Pareto plot. */
export interface ParetoPoint {
  /** Output name, or `original: <model>` for a reference point. */
  label: string;
  x: number;
  y: number;
  /** Index of the output (its colour), or -1 for a reference point. */
  output: number;
  pareto: boolean;
  /** The output is shrink search's choice (drawn as a star). */
  chosen?: boolean;
  /** No name beside the point. */
  quiet?: boolean;
}

/** What the page draws, as embedded JSON (also what tests read back). */
export type ChartSpec =
  | { id: string; kind: 'pareto'; title: string; xLabel: string; yLabel: string; xLog: boolean; yLog: boolean; points: ParetoPoint[]; front: { x: number; y: number }[] }
  | { id: string; kind: 'layers'; title: string; yLabel: string; yLog: boolean; yMax?: number; output: number; labels: string[]; values: number[] };

export interface RenderOptions {
  /** Page title (default: "Shrink report: N outputs"). */
  title?: string;
  /** The Chart.js UMD source to inline (default: read from node_modules, {@link chartJsSource}). */
  chartJs?: string;
  /** The line under the title (default: how many outputs and charts, and how latency was measured). */
  subtitle?: string;
  /** A horizontal line at this metric (as shown: percent or perplexity) in every Pareto plot, e.g. an accuracy budget. */
  budget?: { value: number; label: string };
  /** The legend under each Pareto plot (default true; off for many outputs). */
  legend?: boolean;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

/** The colour of output i. */
export function colorOf(i: number): string {
  return i < 0 ? '#000000' : PALETTE[i % PALETTE.length]!;
}

/** Chart.js's UMD build from node_modules (the `chart.js` dependency). */
export function chartJsSource(): string {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve('chart.js');
  } catch (e) {
    throw new Error(`shrink report needs the chart.js package (npm install chart.js@4): ${(e as Error).message.split('\n')[0]}`);
  }
  const file = path.join(path.dirname(main), 'chart.umd.min.js');
  if (!fs.existsSync(file)) throw new Error(`shrink report: ${file} is missing (reinstall chart.js@4)`);
  return fs.readFileSync(file, 'utf8');
}

/** Whether a larger metric is better (everything but perplexity). */
export function higherIsBetter(metricName: string | null): boolean {
  return metricName !== 'perplexity';
}

/**
 * Pareto-optimal flags for points where x is a cost (smaller is better) and y a metric: a point is optimal when no
 * other point is at least as good on both axes and strictly better on one.
 */
export function paretoFlags(points: readonly { x: number; y: number }[], higher: boolean): boolean[] {
  const better = (a: number, b: number) => (higher ? a > b : a < b);
  return points.map((p) => !points.some((q) => q.x <= p.x && !better(p.y, q.y) && (q.x < p.x || better(q.y, p.y))));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** A metric as shown: perplexity as is, fractions (accuracy, F1, Matthews) in percent. */
export function metricValue(name: string | null, v: number): number {
  return name === 'perplexity' ? v : 100 * v;
}

function fmtMetric(name: string | null, v: number | null): string {
  if (!finite(v)) return '—';
  return name === 'perplexity' ? v.toFixed(3) : (100 * v).toFixed(2);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** The recipe in one line: each step's method and its main options (scheme, bits, sparsity, student size, …). */
export function recipeSummary(r: CompressReport): string {
  const KEYS = ['scheme', 'bits', 'granularity', 'sparsity', 'target_sparsity', 'final_sparsity', 'experts', 'num_experts', 'rank', 'stage'];
  const given = (r.recipe as { steps?: unknown } | undefined)?.steps;
  const steps: Record<string, unknown>[] = Array.isArray(given) ? (given as Record<string, unknown>[]) : r.steps.map((s) => ({ method: s.method }));
  return steps
    .map((s) => {
      const opts = KEYS.filter((k) => ['string', 'number'].includes(typeof s[k])).map((k) => `${k} ${String(s[k])}`);
      const st = s.student as Record<string, unknown> | null | undefined;
      if (st && typeof st === 'object') opts.push(`student ${['layers', 'hidden'].filter((k) => typeof st[k] === 'number').map((k) => `${k} ${String(st[k])}`).join(', ')}`);
      return `${String(s.method)}${opts.length ? ` (${opts.join(', ')})` : ''}`;
    })
    .join(' → ');
}

/** A task as shown: GLUE names as they are, `ppl:<file>` by the file's name. */
export function taskLabel(task: string | null): string {
  if (task === null) return '—';
  return task.startsWith('ppl:') ? `ppl:${path.basename(task.slice(4))}` : task;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Layer names without their common dotted prefix (bert.encoder.layer.3.attention.self.query → 3.attention.self.query). */
export function shortLayerNames(names: string[]): string[] {
  if (names.length < 2) return names;
  const parts = names.map((n) => n.split('.'));
  let k = 0;
  while (parts.every((p) => p.length > k + 1 && p[k] === parts[0]![k])) k++;
  return parts.map((p) => p.slice(k).join('.'));
}

interface Group {
  key: string;
  task: string | null;
  metric: string;
  members: number[];
}

/** The charts of a set of reports, in page order. */
export function buildCharts(reports: readonly NamedReport[]): { charts: ChartSpec[]; groups: Group[]; paretoOf: Map<number, string[]> } {
  const groups: Group[] = [];
  reports.forEach(({ report: r }, i) => {
    if (r.metric_name === null || !finite(r.after.metric)) return;
    const key = `${r.task ?? ''}|${r.metric_name}`;
    let g = groups.find((x) => x.key === key);
    if (!g) groups.push((g = { key, task: r.task, metric: r.metric_name, members: [] }));
    g.members.push(i);
  });
  const charts: ChartSpec[] = [];
  const paretoOf = new Map<number, string[]>();
  const axes: { key: 'bytes' | 'latency_ms_b1' | 'latency_ms_b32'; label: string; short: string }[] = [
    { key: 'bytes', label: 'size (bytes)', short: 'bytes' },
    { key: 'latency_ms_b1', label: 'latency at batch 1 (ms)', short: 'latency b1' },
    { key: 'latency_ms_b32', label: 'latency at batch 32 (ms)', short: 'latency b32' },
  ];
  groups.forEach((g) => {
    const higher = higherIsBetter(g.metric);
    const task = taskLabel(g.task);
    const yLabel = g.metric === 'perplexity' ? `perplexity (${task}, lower is better)` : `${g.metric} % (${task})`;
    for (const ax of axes) {
      const points: ParetoPoint[] = [];
      // the original of each output: one reference point per model, its before numbers (median over the runs)
      const byModel = new Map<string, number[]>();
      for (const i of g.members) byModel.set(reports[i]!.report.model, [...(byModel.get(reports[i]!.report.model) ?? []), i]);
      for (const [model, idx] of byModel) {
        const xs = idx.map((i) => reports[i]!.report.before[ax.key]).filter(finite);
        const ys = idx.map((i) => reports[i]!.report.before.metric).filter(finite);
        if (xs.length && ys.length) points.push({ label: `original: ${path.basename(model)}`, x: median(xs), y: metricValue(g.metric, median(ys)), output: -1, pareto: false });
      }
      for (const i of g.members) {
        const a = reports[i]!.report.after;
        const st = reports[i]!.style;
        if (finite(a[ax.key]) && finite(a.metric))
          points.push({ label: reports[i]!.name, x: a[ax.key] as number, y: metricValue(g.metric, a.metric), output: i, pareto: false, ...(st?.chosen ? { chosen: true } : {}), ...(st?.quiet ? { quiet: true } : {}) });
      }
      if (!points.some((p) => p.output >= 0)) continue;
      const flags = paretoFlags(points, higher);
      points.forEach((p, j) => (p.pareto = flags[j]!));
      for (const p of points) if (p.pareto && p.output >= 0) paretoOf.set(p.output, [...(paretoOf.get(p.output) ?? []), ax.short]);
      const front = points.filter((p) => p.pareto).map((p) => ({ x: p.x, y: p.y })).sort((a, b) => a.x - b.x || a.y - b.y);
      const xs = points.map((p) => p.x).filter((x) => x > 0);
      const xLog = xs.length === points.length && Math.max(...xs) / Math.min(...xs) > 20;
      // perplexity is exp(loss): a broken model's would flatten all the others on a linear axis
      const ys = points.map((p) => p.y);
      const yLog = g.metric === 'perplexity' && Math.min(...ys) > 0 && Math.max(...ys) / Math.min(...ys) > 5;
      charts.push({ id: `chart-${charts.length}`, kind: 'pareto', title: `${task} ${g.metric} vs ${ax.short}`, xLabel: ax.label + (xLog ? ', log scale' : ''), yLabel: yLabel + (yLog ? ', log scale' : ''), xLog, yLog, points, front });
    }
  });
  reports.forEach(({ name, report: r }, i) => {
    const err = r.layers?.error;
    if (err && Object.keys(err).length) {
      const names = Object.keys(err);
      const values = names.map((n) => err[n]!);
      charts.push({ id: `chart-${charts.length}`, kind: 'layers', title: `${name}: relative output error per quantized layer`, yLabel: '‖y_q − y‖² / ‖y‖² (log scale)', yLog: values.every((v) => v > 0), output: i, labels: shortLayerNames(names), values });
    }
    const sp = r.layers?.sparsity;
    if (sp && Object.keys(sp).length) {
      const names = Object.keys(sp);
      charts.push({ id: `chart-${charts.length}`, kind: 'layers', title: `${name}: sparsity per layer (weights removed)`, yLabel: 'sparsity %', yLog: false, yMax: 100, output: i, labels: shortLayerNames(names), values: names.map((n) => +(100 * sp[n]!).toFixed(2)) });
    }
  });
  return { charts, groups, paretoOf };
}

/** The browser side: draws every chart spec with Chart.js, then records what it drew for headless checks. */
const CLIENT = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('shrink-data').textContent);
  var drawn = 0;
  function fmt(v) { return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(2) : String(+v.toPrecision(4)); }
  function bytes(v) { var u = ['B', 'KB', 'MB', 'GB']; var i = 0; while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; } return (+v.toPrecision(3)) + ' ' + u[i]; }
  // names next to the points of Pareto plots (own plugin: Chart.js has no data labels built in)
  var labels = {
    id: 'shrinkLabels',
    afterDatasetsDraw: function (chart) {
      var spec = chart.config.options.plugins.shrinkLabels;
      if (!spec) return;
      var ctx = chart.ctx;
      ctx.save();
      ctx.font = '11px sans-serif';
      ctx.textBaseline = 'middle';
      // points drawn at the same place share one label ("a, b, c")
      var at = {};
      var order = [];
      chart.data.datasets.forEach(function (ds, di) {
        if (!ds.pointLabel) return;
        var meta = chart.getDatasetMeta(di);
        if (meta.hidden) return;
        meta.data.forEach(function (el) {
          var k = Math.round(el.x / 4) + ',' + Math.round(el.y / 4);
          if (!at[k]) { at[k] = { x: el.x, y: el.y, names: [], color: ds.pointLabelColor }; order.push(k); }
          at[k].names.push(ds.pointLabel);
        });
      });
      var placed = [];
      order.forEach(function (k) {
        var p = at[k];
        var text = p.names.join(', ');
        var w = ctx.measureText(text).width;
        var x = Math.max(chart.chartArea.left + 2, p.x + 9 + w > chart.chartArea.right ? p.x - 9 - w : p.x + 9);
        var y = p.y - 10;
        // move a label down until it overlaps none drawn before it
        for (var tries = 0; tries < 20 && placed.some(function (r) { return x < r.x + r.w && r.x < x + w && Math.abs(r.y - y) < 12; }); tries++) y += 12;
        placed.push({ x: x, y: y, w: w });
        ctx.fillStyle = p.names.length > 1 ? '#333333' : p.color;
        ctx.fillText(text, x, y);
      });
      ctx.restore();
    },
  };
  function paretoConfig(spec) {
    var sets = [];
    sets.push({ type: 'line', label: 'Pareto front', data: spec.front, borderColor: '#555', borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, fill: false, order: 2 });
    if (data.budget) {
      var xs = spec.points.map(function (p) { return p.x; });
      sets.push({ type: 'line', label: data.budget.label, data: [{ x: Math.min.apply(null, xs), y: data.budget.value }, { x: Math.max.apply(null, xs), y: data.budget.value }], borderColor: '#c62828', borderDash: [2, 3], borderWidth: 1.5, pointRadius: 0, fill: false, order: 3 });
    }
    spec.points.forEach(function (p) {
      var c = p.output < 0 ? '#000000' : data.colors[p.output];
      sets.push({
        type: 'scatter', label: (p.chosen ? '★ ' : '') + p.label + (p.pareto ? ' (Pareto)' : ''), data: [{ x: p.x, y: p.y }], order: p.chosen ? 0 : 1,
        pointStyle: p.output < 0 ? 'rectRot' : p.chosen ? 'star' : 'circle', pointRadius: p.output < 0 ? 8 : p.chosen ? 13 : p.pareto ? 7 : 6, pointBorderWidth: p.chosen ? 3 : 2,
        borderColor: c, backgroundColor: p.pareto || p.chosen ? c : '#ffffff', pointLabel: p.quiet ? null : (p.chosen ? '★ ' : '') + p.label, pointLabelColor: c,
      });
    });
    return {
      type: 'scatter',
      data: { datasets: sets },
      plugins: [labels],
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, layout: { padding: { top: 8, right: 12 } },
        plugins: {
          shrinkLabels: true,
          title: { display: true, text: spec.title, font: { size: 14 } },
          legend: { display: data.legend !== false, position: 'bottom', labels: { usePointStyle: true, boxWidth: 8 } },
          tooltip: { callbacks: { label: function (it) { return it.dataset.label + ': ' + (spec.xLabel.indexOf('bytes') >= 0 ? bytes(it.parsed.x) : fmt(it.parsed.x) + ' ms') + ', ' + fmt(it.parsed.y); } } },
        },
        scales: {
          x: { type: spec.xLog ? 'logarithmic' : 'linear', title: { display: true, text: spec.xLabel }, ticks: { callback: function (v) { return spec.xLabel.indexOf('bytes') >= 0 ? bytes(v) : fmt(v); } } },
          y: { type: spec.yLog ? 'logarithmic' : 'linear', title: { display: true, text: spec.yLabel } },
        },
      },
    };
  }
  function layersConfig(spec) {
    var c = data.colors[spec.output];
    return {
      type: 'bar',
      data: { labels: spec.labels, datasets: [{ label: spec.yLabel, data: spec.values, backgroundColor: c, borderColor: c }] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: spec.title, font: { size: 14 } }, legend: { display: false } },
        scales: {
          x: { ticks: { autoSkip: false, maxRotation: 90, minRotation: 60, font: { size: 9 } } },
          y: { type: spec.yLog ? 'logarithmic' : 'linear', max: spec.yMax, min: spec.yLog ? undefined : 0, title: { display: true, text: spec.yLabel } },
        },
      },
    };
  }
  function fail(canvas, e) {
    var p = document.createElement('p');
    p.className = 'chart-error';
    p.textContent = 'chart not drawn: ' + (e && e.message ? e.message : String(e));
    canvas.parentNode.appendChild(p);
  }
  data.charts.forEach(function (spec) {
    var canvas = document.getElementById(spec.id);
    try {
      if (typeof Chart === 'undefined') throw new Error('Chart.js did not load');
      new Chart(canvas, spec.kind === 'pareto' ? paretoConfig(spec) : layersConfig(spec));
      drawn++;
    } catch (e) { fail(canvas, e); }
  });
  Array.prototype.forEach.call(document.querySelectorAll('canvas'), function (canvas) {
    var n = 0;
    try {
      var px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (var i = 3; i < px.length; i += 4) if (px[i] !== 0) n++;
    } catch (e) { n = -1; }
    canvas.dataset.pixels = String(n);
  });
  document.body.dataset.rendered = String(drawn);
})();
`;

const CSS = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; } h3 { font-size: 15px; margin: 16px 0 6px; }
.sub { color: #666; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
#outputs { width: 100%; font-size: 13px; } #outputs td:nth-child(2) { min-width: 220px; } .small { font-size: 11px; word-break: break-all; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; }
.good { color: #1a7f37; } .bad { color: #c62828; } .muted { color: #888; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
.chart { position: relative; height: 380px; border: 1px solid #eee; border-radius: 6px; padding: 8px; }
.chart.wide { grid-column: 1 / -1; height: 340px; }
.chart-error { color: #c62828; }
details { margin: 6px 0; } summary { cursor: pointer; }
code { font-size: 12px; }
`;

/** Render the page for these reports (see the file comment). */
export function renderReport(reports: readonly NamedReport[], opts: RenderOptions = {}): string {
  if (reports.length === 0) throw new Error('renderReport: no reports');
  const { charts, groups, paretoOf } = buildCharts(reports);
  const title = opts.title ?? `Shrink report: ${reports.length} output${reports.length > 1 ? 's' : ''}`;
  const chartJs = (opts.chartJs ?? chartJsSource()).replace(/<\/(script)/gi, '<\\/$1');
  const ratio = (b: number, a: number) => (a > 0 && b > 0 ? `${(b / a).toFixed(2)}×` : '—');
  const cls = (good: boolean) => (good ? 'good' : 'bad');
  const rows = reports.map(({ name, dir, report: r }, i) => {
    const metricCell = (() => {
      if (!finite(r.before.metric) && !finite(r.after.metric)) return '<td class="num muted">—</td>';
      const d = finite(r.before.metric) && finite(r.after.metric) ? metricValue(r.metric_name, r.after.metric) - metricValue(r.metric_name, r.before.metric) : null;
      const good = d === null || (higherIsBetter(r.metric_name) ? d >= 0 : d <= 0);
      return `<td class="num">${fmtMetric(r.metric_name, r.before.metric)} → <b>${fmtMetric(r.metric_name, r.after.metric)}</b>${d === null ? '' : `<br><span class="${cls(good)}">(${d >= 0 ? '+' : ''}${d.toFixed(r.metric_name === 'perplexity' ? 3 : 2)})</span>`}</td>`;
    })();
    const lat = (k: 'latency_ms_b1' | 'latency_ms_b32') => {
      const b = r.before[k];
      const a = r.after[k];
      if (!finite(b) || !finite(a)) return '<td class="num muted">—</td>';
      return `<td class="num">${b.toFixed(2)} → <b>${a.toFixed(2)}</b><br><span class="${cls(a <= b)}">(${a <= b ? `${ratio(b, a)} faster` : `${ratio(a, b)} slower`})</span></td>`;
    };
    return [
      '<tr>',
      `<td><span class="swatch" style="background:${reports[i]!.style?.color ?? colorOf(i)}"></span><b>${reports[i]!.style?.chosen ? '★ ' : ''}${esc(name)}</b><br><span class="muted small">${esc(dir)}</span></td>`,
      `<td>${esc(recipeSummary(r))}</td>`,
      `<td>${esc(taskLabel(r.task))}${r.metric_name ? ` <span class="muted">(${esc(r.metric_name)})</span>` : ''}</td>`,
      metricCell,
      `<td class="num">${formatBytes(r.before.bytes)} → <b>${formatBytes(r.after.bytes)}</b><br><span class="${cls(r.after.bytes <= r.before.bytes)}">(${r.after.bytes === r.before.bytes ? 'same' : r.after.bytes < r.before.bytes ? `${ratio(r.before.bytes, r.after.bytes)} smaller` : `${ratio(r.after.bytes, r.before.bytes)} larger`})</span></td>`,
      `<td class="num">${r.before.params.toLocaleString('en-US')} → ${r.after.params.toLocaleString('en-US')}</td>`,
      lat('latency_ms_b1'),
      lat('latency_ms_b32'),
      `<td>${esc((paretoOf.get(i) ?? []).join(', ') || '—')}</td>`,
      '</tr>',
    ].join('');
  });
  const canvas = (c: ChartSpec) => `<div class="chart${c.kind === 'layers' ? ' wide' : ''}"><canvas id="${c.id}" role="img" aria-label="${esc(c.title)}"></canvas></div>`;
  const pareto = charts.filter((c) => c.kind === 'pareto');
  const layerCharts = charts.filter((c) => c.kind === 'layers');
  const noMetric = reports.filter((x) => !finite(x.report.after.metric)).map((x) => x.name);
  const noLayers = reports.filter((x) => !x.report.layers && x.report.steps.some((s) => /^(prune|quant)\./.test(s.method))).map((x) => x.name);
  const details = reports.map(({ name, dir, report: r }) => {
    const stepRows = r.steps.map((s) => {
      const rest = Object.entries(s).filter(([k]) => !['step', 'method', 'kind', 'stage', 'ms'].includes(k)).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toFixed(4) : typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
      return `<tr><td>${esc(String(s.step ?? ''))}</td><td>${esc(s.method)}</td><td>${esc(String(s.kind ?? ''))}</td><td>${esc(rest)}</td><td class="num">${typeof s.ms === 'number' ? (s.ms / 1000).toFixed(1) + ' s' : ''}</td></tr>`;
    });
    const kernels = Object.entries(r.after.kernels ?? {});
    return [
      `<details><summary><b>${esc(name)}</b> — ${esc(recipeSummary(r))}</summary>`,
      `<p>folder <code>${esc(dir)}</code>, from <code>${esc(r.model)}</code>${r.eval_command ? `; reproduce the metric: <code>${esc(r.eval_command)}</code>` : ''}${typeof r.seconds === 'number' ? `; ${r.seconds} s` : ''}</p>`,
      '<table><tr><th>step</th><th>method</th><th>kind</th><th>result</th><th>time</th></tr>',
      ...stepRows,
      '</table>',
      ...(kernels.length ? ['<table><tr><th>quantized layer</th><th>kernels (latency runs)</th></tr>', ...kernels.map(([k, v]) => `<tr><td><code>${esc(k)}</code></td><td>${esc(v)}</td></tr>`), '</table>'] : []),
      '</details>',
    ].join('\n');
  });
  const data = { charts, colors: reports.map((x, i) => x.style?.color ?? colorOf(i)), outputs: reports.map((x) => x.name), budget: opts.budget ?? null, legend: opts.legend ?? true };
  const json = JSON.stringify(data).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p class="sub">${opts.subtitle !== undefined ? esc(opts.subtitle) : `${reports.length} output${reports.length > 1 ? 's' : ''} of <code>shrink compress</code>; ${charts.length} chart${charts.length === 1 ? '' : 's'}. Latency: 1 warm-up + best of 5, as measured by each run on its machine.`}</p>
<h2>Outputs</h2>
<table id="outputs">
<tr><th>output</th><th>recipe</th><th>task</th><th>metric before → after</th><th>size before → after</th><th>parameters</th><th>latency b1 (ms)</th><th>latency b32 (ms)</th><th>Pareto-optimal on</th></tr>
${rows.join('\n')}
</table>
${noMetric.length ? `<p class="muted">No metric (run without a task), so not in the Pareto plots: ${esc(noMetric.join(', '))}.</p>` : ''}
<h2>Pareto plots</h2>
${pareto.length ? `<p class="sub">${groups.length > 1 ? 'One set per task and metric. ' : ''}Filled points are Pareto-optimal (no other point is both smaller/faster and at least as good) and joined by the dashed front; hollow points are beaten by another; diamonds are the original models.${opts.budget ? ` The red dotted line is ${esc(opts.budget.label)}.` : ''}${reports.some((x) => x.style?.chosen) ? ' The star is the chosen output.' : ''}</p><div class="charts">${pareto.map(canvas).join('\n')}</div>` : '<p class="muted">No output has a metric to plot.</p>'}
<h2>Per layer</h2>
${layerCharts.length ? `<div class="charts">${layerCharts.map(canvas).join('\n')}</div>` : '<p class="muted">No output has per-layer data.</p>'}
${noLayers.length ? `<p class="muted">No per-layer data in report.json (written by an older shrink compress): ${esc(noLayers.join(', '))}.</p>` : ''}
<h2>Details</h2>
${details.join('\n')}
<script type="application/json" id="shrink-data">${json}</script>
<script>${chartJs}</script>
<script>${CLIENT}</script>
</body>
</html>
`;
}
