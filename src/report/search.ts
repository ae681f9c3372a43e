/**
 * `shrink search`'s page: the candidates of a search as rows of `shrink report`'s table and points of its Pareto
 * plots (metric against bytes and latency), with the accuracy budget drawn as a line and the chosen candidate as a
 * star. Written by `shrink search` as `<dir>/report.html`; `shrink report <search dir>` draws it again.
 *
 * - Every measured candidate is one output (rejected and failed ones have no metric: counted in the subtitle, listed
 *   in the search's table). Colours: red the chosen one, blue the others within budget, grey those over it; names
 *   are written beside the chosen one and the Pareto front only (the tooltip names every point).
 * - Latency on one scale: candidates were timed minutes apart on a machine whose load changes, each with the model
 *   in the same compress run. A point's latency is the model's (the search's own measurement) times the candidate's
 *   ratio to the model in the same run: the median per-round ratio of the interleaved re-timing where the candidate
 *   has one (latency objective, within budget), else its compress run's latency over the model's in that run.
 */
import path from 'node:path';
import type { CompressReport, Measured } from '../cli/compress.ts';
import type { CandidateRecord, SearchResult } from '../search/index.ts';
import { metricValue, type RenderOptions } from './html.ts';
import type { NamedReport } from './read.ts';

const CHOSEN = '#d62728';
const WITHIN = '#1f77b4';
const OVER = '#9e9e9e';

/** The candidate's latency over the model's, measured in the same run (null when it has none). */
function latencyRatio(x: CandidateRecord, batch: 1 | 32): number | null {
  if (x.confirmed) return 1 / (batch === 1 ? x.confirmed.speedup_b1 : x.confirmed.speedup_b32);
  const a = batch === 1 ? x.latency_ms_b1 : x.latency_ms_b32;
  const b = batch === 1 ? x.before_latency_ms_b1 : x.before_latency_ms_b32;
  return a !== null && b !== null && b > 0 ? a / b : null;
}

/** The search as `renderReport` input: one output per measured candidate, and the page's options. */
export function searchReports(r: SearchResult, dir: string): { reports: NamedReport[]; options: RenderOptions } {
  const t = r.teacher;
  const before: Measured = { params: t.params, bytes: t.bytes, metric: t.metric, latency_ms_b1: t.latency_ms_b1, latency_ms_b32: t.latency_ms_b32 };
  const front = new Set(r.pareto);
  const measured = r.records.filter((x) => x.status === 'measured' && x.metric !== null);
  const reports: NamedReport[] = measured.map((x) => {
    const r1 = latencyRatio(x, 1);
    const r32 = latencyRatio(x, 32);
    const after = { params: x.params!, bytes: x.bytes!, metric: x.metric, latency_ms_b1: r1 === null ? NaN : t.latency_ms_b1 * r1, latency_ms_b32: r32 === null ? NaN : t.latency_ms_b32 * r32 };
    const report: CompressReport = {
      model: r.model,
      out: path.join(dir, 'runs', x.key),
      task: r.task,
      metric_name: t.metric_name,
      before,
      after,
      steps: x.recipe.steps.map((s, i) => ({ step: i + 1, method: s.method, kind: x.phase, stage: 1, ms: 0 })),
      recipe: x.recipe as unknown as Record<string, unknown>,
      eval_command: null,
      seconds: x.seconds,
    };
    const chosen = r.best?.key === x.key;
    return {
      name: x.name,
      dir: path.join(dir, 'runs', x.key),
      report,
      style: { color: chosen ? CHOSEN : x.within ? WITHIN : OVER, chosen, quiet: !chosen && !front.has(x.key) },
    };
  });
  const within = measured.filter((x) => x.within).length;
  const other = r.records.length - measured.length;
  const retimed = measured.filter((x) => x.confirmed).length;
  const objective = r.objective === 'bytes' ? 'bytes' : `latency at batch ${r.batch}`;
  const subtitle =
    `${measured.length} measured candidates (${within} within ${r.maxDrop} point${r.maxDrop === 1 ? '' : 's'} of the model, ${measured.length - within} over)` +
    (other ? `, ${other} rejected early or failed (not plotted; see the search's table)` : '') +
    `; objective: ${objective}; chosen: ${r.best ? r.best.name : 'none within budget'}. ` +
    `Latency: the model's own (1 warm-up + best of 5) times each candidate's ratio to the model measured in the same run` +
    (retimed ? ` (interleaved re-timing, ${r.best?.confirmed?.rounds ?? r.teacherConfirmed?.rounds ?? 7} rounds, for the ${retimed} re-timed; their compress run for the rest)` : ' (its compress run)') +
    '. Blue: within budget, grey: over it; names beside the front and the chosen one only (hover for the others).';
  return {
    reports,
    options: {
      title: `shrink search: ${r.model} on ${r.task}`,
      subtitle,
      budget: t.metric !== null ? { value: metricValue(t.metric_name, t.metric) - r.maxDrop, label: `budget: the model's ${t.metric_name} − ${r.maxDrop} point${r.maxDrop === 1 ? '' : 's'}` } : undefined,
      legend: false,
    },
  };
}
