/**
 * `shrink report <dir…> -o report.html`: one self-contained HTML page comparing `shrink compress` outputs (their
 * report.json): a table, Pareto plots of the metric against size and latency, per-layer error and sparsity
 * (src/report/html.ts). Every folder is read and checked before anything is written; the page is written
 * atomically, and an existing file is only replaced with --force.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ShrinkError } from '../io/errors.ts';
import { readSearch } from '../search/index.ts';
import { searchReports } from '../report/search.ts';
import { atomicWriteFile } from '../io/atomic.ts';
import { loadReports } from '../report/read.ts';
import { buildCharts, formatBytes, renderReport } from '../report/html.ts';

export interface ReportResult {
  out: string;
  outputs: string[];
  charts: number;
  bytes: number;
}

/** Check `out` can be written as a file (not a folder; an existing file only with force). */
function checkOutFile(out: string, force: boolean | undefined): void {
  if (out.trim() === '') throw new Error('-o/--out: the path is empty');
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(out);
  } catch {
    st = null;
  }
  if (st?.isDirectory()) throw new Error(`${out} is a folder; -o takes the HTML file to write`);
  if (st && !force) throw new Error(`output file ${out} exists (use --force to replace it)`);
}

/** A folder of `shrink search` (search.json beside candidates.jsonl) rather than of `shrink compress`. */
export function isSearchFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'search.json')) && fs.existsSync(path.join(dir, 'candidates.jsonl'));
}

/**
 * Read the folders' reports and write the page (atomically); returns what was written. One folder of `shrink search`
 * instead draws that search's candidates (src/report/search.ts).
 */
export function writeReport(dirs: string[], out: string, o: { force?: boolean; title?: string } = {}): ReportResult {
  checkOutFile(out, o.force);
  const searches = dirs.filter(isSearchFolder);
  if (searches.length && dirs.length > 1)
    throw new ShrinkError(`report: ${searches[0]} is a shrink search folder; give it alone (its candidates are the outputs), or give output folders of shrink compress`, { file: searches[0] });
  const { reports, options } = searches.length ? searchReports(readSearch(dirs[0]!), dirs[0]!) : { reports: loadReports(dirs), options: {} };
  if (!reports.length) throw new ShrinkError(`report: ${dirs[0]}: the search measured no candidate; nothing to plot`, { file: dirs[0] });
  const html = renderReport(reports, { ...options, ...(o.title ? { title: o.title } : {}) });
  atomicWriteFile(out, html);
  return { out, outputs: reports.map((r) => r.name), charts: buildCharts(reports).charts.length, bytes: Buffer.byteLength(html) };
}

/** Add `shrink report` to the program. */
export function registerReport(program: Command, out: (s: string) => void): void {
  program
    .command('report')
    .description('Compare shrink compress outputs in one self-contained HTML page: a before/after table, Pareto plots of the metric against size and latency, per-layer error of quantized models and sparsity of pruned ones')
    .argument('<dirs...>', 'output folders of shrink compress (each holds report.json), or one folder of shrink search (its candidates)')
    .requiredOption('-o, --out <file>', 'HTML file to write (written atomically; opens offline: Chart.js is inlined)')
    .option('--title <text>', 'page title (default: "Shrink report: N outputs")')
    .option('--force', 'replace an existing output file')
    .option('--json', 'print JSON')
    .action((dirs: string[], o: { out: string; title?: string; force?: boolean; json?: boolean }) => {
      const r = writeReport(dirs, o.out, { force: o.force, title: o.title });
      out(o.json ? JSON.stringify(r) + '\n' : `wrote ${r.out} (${r.outputs.length} output${r.outputs.length > 1 ? 's' : ''}: ${r.outputs.join(', ')}; ${r.charts} chart${r.charts === 1 ? '' : 's'}; ${formatBytes(r.bytes)})\n`);
    });
}
