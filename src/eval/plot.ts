/**
 * Loss curves as SVG line plots: `shrink plot <run folder | log.jsonl> -o curve.svg [--y loss,eval] [--smooth N]`.
 *
 * The trainer appends one JSON entry per step to log.jsonl (`step`, `loss`, `lr`, `gradNorm`, `parts`, and `eval`
 * on evaluation steps). A run that was killed and resumed logs some steps twice: the later entry wins, and a line
 * torn by the kill is skipped. Series are picked by key: `loss` (training loss), `eval` (the held-out loss that
 * `shrink pretrain` logs; `eval.metric` when an evaluation has no `loss`), `lr`, `gradNorm`, `eval.<key>`,
 * `parts.<key>`. `--smooth N` draws a trailing moving average over N logged steps of every per-step series, over
 * the raw curve in a lighter shade; evaluation series are drawn as lines with dots, unsmoothed.
 *
 * The plot is plain SVG 1.1 (no scripts, no external fonts or styles): axes with "nice" 1-2-5 ticks and grid lines,
 * axis labels, a title and a legend, so it opens in any browser or converts with rsvg-convert / ImageMagick.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { LogEntry } from '../train/trainer.ts';
import { atomicWriteFile } from '../io/atomic.ts';

export interface Series {
  /** Legend label. */
  label: string;
  /** [x, y] pairs, x increasing. */
  points: [number, number][];
  color: string;
  /** Draw a dot on every point (evaluation series). */
  dots?: boolean;
  /** Thin, light line (the raw curve behind a smoothed one). */
  faint?: boolean;
  /** Leave out of the legend. */
  noLegend?: boolean;
}

export interface PlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Most points drawn per series; longer series are averaged in equal buckets of x (default 2000). */
  maxPoints?: number;
}

/** Where a run's log is: the file itself, or `<dir>/log.jsonl` (train -o), or `<dir>/.run/log.jsonl` (pretrain). */
export function findLog(target: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch {
    throw new Error(`${target}: no such file or folder (expected a run folder or its log.jsonl)`);
  }
  if (st.isFile()) return target;
  const tried = [path.join(target, 'log.jsonl'), path.join(target, '.run', 'log.jsonl')];
  for (const f of tried) if (fs.existsSync(f)) return f;
  throw new Error(`${target}: no training log (looked for ${tried.join(' and ')})`);
}

/** The entries of a log.jsonl by step (a step logged twice counts once: the later entry), sorted by step. */
export function readLog(file: string): LogEntry[] {
  const byStep = new Map<number, LogEntry>();
  let bad = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const e = JSON.parse(line) as LogEntry;
      if (typeof e?.step === 'number' && Number.isFinite(e.step)) byStep.set(e.step, e);
      else bad++;
    } catch {
      bad++; // a line torn by a kill
    }
  }
  if (byStep.size === 0) throw new Error(`${file}: no log entries${bad ? ` (${bad} unreadable line${bad > 1 ? 's' : ''})` : ''}`);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** The value of a series key in one entry (undefined when absent or not finite). */
export function valueOf(e: LogEntry, key: string): number | undefined {
  let v: unknown;
  if (key === 'eval') v = e.eval ? (e.eval.loss ?? e.eval.metric) : undefined;
  else if (key.startsWith('eval.')) v = e.eval?.[key.slice(5)];
  else if (key.startsWith('parts.')) v = e.parts?.[key.slice(6)];
  else v = (e as unknown as Record<string, unknown>)[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Trailing moving average over `n` points (the first points average what there is). */
export function smooth(points: [number, number][], n: number): [number, number][] {
  if (n <= 1) return points;
  const out: [number, number][] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i]![1];
    if (i >= n) sum -= points[i - n]![1];
    out.push([points[i]![0], sum / Math.min(i + 1, n)]);
  }
  return out;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const LABELS: Record<string, string> = { loss: 'training loss', eval: 'held-out loss', lr: 'learning rate', gradNorm: 'gradient norm' };

/** Series for the given keys of a log; keys with no values are left out (see `missing`). */
export function seriesFromLog(entries: LogEntry[], keys: string[], opts: { smooth?: number } = {}): { series: Series[]; missing: string[] } {
  const series: Series[] = [];
  const missing: string[] = [];
  keys.forEach((key, i) => {
    const pts: [number, number][] = [];
    for (const e of entries) {
      const v = valueOf(e, key);
      if (v !== undefined) pts.push([e.step, v]);
    }
    if (pts.length === 0) {
      missing.push(key);
      return;
    }
    const color = PALETTE[i % PALETTE.length]!;
    const label = LABELS[key] ?? key;
    const perEval = key === 'eval' || key.startsWith('eval.');
    const n = opts.smooth ?? 1;
    if (!perEval && n > 1) {
      series.push({ label, points: pts, color, faint: true, noLegend: true });
      series.push({ label: `${label} (mean of ${n} steps)`, points: smooth(pts, n), color });
    } else series.push({ label, points: pts, color, dots: perEval && pts.length <= 200 });
  });
  return { series, missing };
}

/**
 * "Nice" tick values (steps of 1, 2 or 5 × 10^k) from the last tick at or below `min` to the first at or above
 * `max`, about `count` intervals; `integer` keeps the step a whole number (training steps).
 */
export function niceTicks(min: number, max: number, count = 6, integer = false): number[] {
  if (!(Number.isFinite(min) && Number.isFinite(max))) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    const d = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= d;
    max += d;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9)) ?? 10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const out: number[] = [];
  for (let k = first; k <= last; k++) out.push(+(k * step).toPrecision(12));
  return out;
}

/** A tick label: as few decimals as the tick step needs; exponent notation for tiny or huge values. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(Math.max(0, Math.min(3, -Math.floor(Math.log10(step)) + Math.floor(Math.log10(a)))));
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number) => (Math.round(v * 100) / 100).toString();

/** Average a long series in equal x-buckets down to at most `max` points. */
function downsample(points: [number, number][], max: number): [number, number][] {
  if (points.length <= max) return points;
  const out: [number, number][] = [];
  const per = points.length / max;
  for (let b = 0; b < max; b++) {
    const lo = Math.floor(b * per);
    const hi = Math.max(lo + 1, Math.floor((b + 1) * per));
    let sx = 0;
    let sy = 0;
    for (let i = lo; i < hi; i++) {
      sx += points[i]![0];
      sy += points[i]![1];
    }
    out.push([sx / (hi - lo), sy / (hi - lo)]);
  }
  return out;
}

/** An SVG line plot of the series: axes, ticks, grid, axis labels, title and legend. */
export function lineChartSvg(series: Series[], opts: PlotOptions = {}): string {
  const W = opts.width ?? 800;
  const H = opts.height ?? 480;
  const m = { left: 72, right: 24, top: opts.title ? 44 : 20, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) throw new Error('plot: no points to draw');
  // the axes run from the tick at or below the smallest value to the tick at or above the largest
  const xt = niceTicks(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])), 8, true);
  const yt = niceTicks(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])), 6);
  const xmin = xt[0]!;
  const xmax = xt[xt.length - 1]!;
  const ymin = yt[0]!;
  const ymax = yt[yt.length - 1]!;
  const ystep = yt[1]! - yt[0]!;
  const X = (x: number) => m.left + ((x - xmin) / (xmax - xmin)) * pw;
  const Y = (y: number) => m.top + ph - ((y - ymin) / (ymax - ymin)) * ph;
  const xstep = xt[1]! - xt[0]!;
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`);
  o.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (opts.title) o.push(`<text class="title" x="${W / 2}" y="26" text-anchor="middle" font-size="15" font-weight="bold" fill="#222222">${esc(opts.title)}</text>`);
  // grid and ticks
  o.push('<g class="grid" stroke="#e5e5e5" stroke-width="1">');
  for (const v of yt) o.push(`<line x1="${m.left}" y1="${fmt(Y(v))}" x2="${m.left + pw}" y2="${fmt(Y(v))}"/>`);
  for (const v of xt) o.push(`<line x1="${fmt(X(v))}" y1="${m.top}" x2="${fmt(X(v))}" y2="${m.top + ph}"/>`);
  o.push('</g>');
  o.push('<g class="x-ticks" fill="#333333" text-anchor="middle">');
  for (const v of xt) o.push(`<line x1="${fmt(X(v))}" y1="${m.top + ph}" x2="${fmt(X(v))}" y2="${m.top + ph + 5}" stroke="#333333"/><text x="${fmt(X(v))}" y="${m.top + ph + 19}">${esc(formatTick(v, xstep))}</text>`);
  o.push('</g>');
  o.push('<g class="y-ticks" fill="#333333" text-anchor="end">');
  for (const v of yt) o.push(`<line x1="${m.left - 5}" y1="${fmt(Y(v))}" x2="${m.left}" y2="${fmt(Y(v))}" stroke="#333333"/><text x="${m.left - 8}" y="${fmt(Y(v) + 4)}">${esc(formatTick(v, ystep))}</text>`);
  o.push('</g>');
  o.push(`<g class="axes" stroke="#333333" stroke-width="1.2" fill="none"><line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}"/><line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}"/></g>`);
  o.push(`<text class="x-label" x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle" fill="#222222">${esc(opts.xLabel ?? 'step')}</text>`);
  o.push(`<text class="y-label" x="18" y="${m.top + ph / 2}" text-anchor="middle" fill="#222222" transform="rotate(-90 18 ${m.top + ph / 2})">${esc(opts.yLabel ?? 'loss')}</text>`);
  // the curves, clipped to the plot area
  o.push(`<clipPath id="plot-area"><rect x="${m.left - 4}" y="${m.top - 4}" width="${pw + 8}" height="${ph + 8}"/></clipPath>`);
  o.push('<g class="series" clip-path="url(#plot-area)" fill="none">');
  for (const s of series) {
    const pts = downsample(s.points, opts.maxPoints ?? 2000);
    const d = pts.map(([x, y]) => `${fmt(X(x))},${fmt(Y(y))}`).join(' ');
    o.push(`<polyline data-label="${esc(s.label)}" points="${d}" stroke="${s.color}" stroke-width="${s.faint ? 1 : 1.8}"${s.faint ? ' stroke-opacity="0.3"' : ''} stroke-linejoin="round"/>`);
    if (s.dots) for (const [x, y] of pts) o.push(`<circle cx="${fmt(X(x))}" cy="${fmt(Y(y))}" r="3" fill="${s.color}"/>`);
  }
  o.push('</g>');
  // legend, top right inside the plot area
  const shown = series.filter((s) => !s.noLegend);
  if (shown.length) {
    const lw = Math.max(...shown.map((s) => s.label.length)) * 7 + 44;
    const lx = m.left + pw - lw - 8;
    const ly = m.top + 8;
    o.push(`<g class="legend"><rect x="${lx}" y="${ly}" width="${lw}" height="${shown.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`);
    shown.forEach((s, i) => {
      const y = ly + 16 + i * 18;
      o.push(`<line x1="${lx + 8}" y1="${y - 4}" x2="${lx + 30}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"/>${s.dots ? `<circle cx="${lx + 19}" cy="${y - 4}" r="3" fill="${s.color}"/>` : ''}<text x="${lx + 36}" y="${y}" fill="#222222">${esc(s.label)}</text>`);
    });
    o.push('</g>');
  }
  o.push('</svg>');
  return o.join('\n') + '\n';
}

export interface PlotResult {
  log: string;
  out: string;
  steps: number;
  series: { label: string; points: number; last: number }[];
  missing: string[];
  /** The series differ in size by more than 100×, so the smaller ones look flat: plot them separately. */
  scaleWarning?: boolean;
}

/** A run's name in a legend: its folder (`runs/moe/.run/log.jsonl` → `moe`), or the file name without `.jsonl`. */
export function runName(target: string): string {
  let p = path.resolve(target);
  if (path.basename(p) === 'log.jsonl') p = path.dirname(p);
  if (path.basename(p) === '.run') p = path.dirname(p);
  return path.basename(p).replace(/\.jsonl$/, '');
}

/**
 * Read the logs of one run or several (compared on one plot, e.g. a dense LM beside its MoE twin) and write the
 * SVG. With several runs every series is labelled `<run>: <series>` (`labels` names the runs; default: the
 * folder or file name) and colours go by run, then key.
 */
export function plotRun(target: string | string[], out: string, o: { y?: string[]; smooth?: number; title?: string; width?: number; height?: number; labels?: string[] } = {}): PlotResult {
  const targets = Array.isArray(target) ? target : [target];
  const keys = o.y ?? ['loss', 'eval'];
  if (targets.length === 0) throw new Error('plot: give at least one run');
  if (keys.length === 0) throw new Error('--y needs at least one series key (loss, eval, lr, gradNorm, eval.<key>, parts.<key>)');
  if (o.labels && o.labels.length !== targets.length) throw new Error(`--labels: ${o.labels.length} label${o.labels.length === 1 ? '' : 's'} for ${targets.length} run${targets.length === 1 ? '' : 's'}`);
  if (fs.existsSync(out) && !fs.statSync(out).isFile()) throw new Error(`${out}: is a folder; -o takes the SVG file to write`);
  const parent = path.dirname(path.resolve(out));
  if (!fs.existsSync(parent)) throw new Error(`cannot write ${out}: folder ${parent} does not exist`);
  const runs = targets.map((t, r) => {
    const log = findLog(t);
    return { log, entries: readLog(log), name: o.labels?.[r] ?? runName(t) };
  });
  const series: Series[] = [];
  const missing: string[] = [];
  runs.forEach((run, r) => {
    const got = seriesFromLog(run.entries, keys, { smooth: o.smooth });
    for (const k of got.missing) missing.push(runs.length > 1 ? `${run.name}: ${k}` : k);
    for (const s of got.series) {
      const color = runs.length > 1 ? PALETTE[(r * keys.length + keys.findIndex((k) => s.label.startsWith(LABELS[k] ?? k))) % PALETTE.length]! : s.color;
      series.push({ ...s, color, label: runs.length > 1 ? `${run.name}: ${s.label}` : s.label });
    }
  });
  if (series.length === 0) throw new Error(`${runs.map((r) => r.log).join(', ')}: none of the series ${keys.join(', ')} has a value (keys: loss, eval, lr, gradNorm, eval.<key>, parts.<key>)`);
  const yLabel = keys.every((k) => k === 'loss' || k === 'eval' || k.startsWith('parts.') || k === 'eval.loss') ? 'loss (nats per token)' : keys.map((k) => LABELS[k] ?? k).join(', ');
  const rel = path.relative(process.cwd(), path.resolve(targets[0]!));
  const title = o.title ?? (runs.length > 1 ? runs.map((r) => r.name).join(' vs ') : `${rel === '' ? '.' : rel.startsWith('..') ? targets[0] : rel}: ${runs[0]!.entries.length} logged steps`);
  atomicWriteFile(out, lineChartSvg(series, { title, yLabel, width: o.width, height: o.height }));
  const spans = series.filter((x) => !x.faint).map((x) => Math.max(...x.points.map((p) => Math.abs(p[1]))));
  const scaleWarning = spans.length > 1 && Math.min(...spans) < Math.max(...spans) / 100;
  return {
    log: runs.map((r) => r.log).join(', '),
    out,
    ...(scaleWarning ? { scaleWarning: true } : {}),
    steps: Math.max(...runs.map((r) => r.entries[r.entries.length - 1]!.step)),
    series: series.filter((s) => !s.faint).map((s) => ({ label: s.label, points: s.points.length, last: s.points[s.points.length - 1]![1] })),
    missing,
  };
}

/** `shrink plot`: registered by the CLI (src/cli/main.ts). */
export function registerPlot(program: Command, out: (s: string) => void): void {
  const int = (name: string, min: number) => (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
  program
    .command('plot')
    .description('Draw the loss curve of a training run (its log.jsonl) as an SVG line plot: training loss, held-out loss, lr, …')
    .argument('<runs...>', 'run folders (train -o: log.jsonl; pretrain: .run/log.jsonl) or log.jsonl files; several are drawn on one plot')
    .requiredOption('-o, --out <file>', 'SVG file to write (replaced if it exists)')
    .option('--y <keys>', 'comma-separated series: loss, eval (held-out loss), lr, gradNorm, eval.<key>, parts.<key>', 'loss,eval')
    .option('--smooth <n>', 'moving average over n logged steps of the per-step series (the raw curve stays, lighter)', int('smooth', 1), 1)
    .option('--title <text>', 'plot title (default: the run and its number of steps, or the runs compared)')
    .option('--labels <names>', 'comma-separated names of the runs in the legend (default: their folder names)')
    .option('--width <px>', 'width in pixels', int('width', 200), 800)
    .option('--height <px>', 'height in pixels', int('height', 150), 480)
    .option('--json', 'print JSON')
    .action((targets: string[], o: { out: string; y: string; smooth: number; title?: string; labels?: string; width: number; height: number; json?: boolean }) => {
      const keys = o.y.split(',').map((k) => k.trim()).filter(Boolean);
      const labels = o.labels?.split(',').map((k) => k.trim());
      const r = plotRun(targets, o.out, { y: keys, smooth: o.smooth, title: o.title, width: o.width, height: o.height, labels });
      // a series asked for by name that the log lacks is worth a warning; the default's eval may simply be absent
      for (const k of r.missing) {
        if (o.y === 'loss,eval' && (k === 'eval' || k.endsWith(': eval'))) continue;
        process.stderr.write(targets.length > 1 ? `shrink: warning: no values for '${k}'\n` : `shrink: warning: ${r.log} has no values for '${k}'\n`);
      }
      if (r.scaleWarning) process.stderr.write(`shrink: warning: the series ${keys.join(', ')} differ in size by more than 100×, so the smaller ones look flat; plot them separately (one --y each)\n`);
      if (o.json) out(JSON.stringify(r) + '\n');
      else out(`wrote ${r.out} (${r.log}, to step ${r.steps}: ${r.series.map((s) => `${s.label} ${s.points} points, last ${s.last.toPrecision(4)}`).join('; ')})\n`);
    });
}
