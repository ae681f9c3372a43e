/**
 * Reading `shrink compress` outputs for `shrink report`: each folder's report.json, checked field by field so a
 * bad one fails with one line naming the folder (or its report.json) and the field, before anything is written.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CompressReport } from '../cli/compress.ts';
import { MAX_JSON_FILE_BYTES, ShrinkError, show } from '../io/errors.ts';

/** One output folder's report, with the name it is shown under. */
export interface NamedReport {
  /** Short label: the folder's name, or its path when two folders share a name. */
  name: string;
  dir: string;
  report: CompressReport;
  /** How it is drawn, where not by its index (shrink search's page: colour by status, the chosen one a star). */
  style?: ReportStyle;
}

export interface ReportStyle {
  /** Colour of its swatch and points (default: the palette by index). */
  color?: string;
  /** Drawn as a star and marked ★ in the table (shrink search's choice). */
  chosen?: boolean;
  /** No name written beside its points (many candidates); the tooltip still names it. */
  quiet?: boolean;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Check the fields `shrink report` uses; errors name `file` and the field. */
function checkReport(raw: unknown, file: string): CompressReport {
  const bad = (field: string, what: string, v: unknown) => new ShrinkError(`${file}: ${field}: expected ${what}, got ${show(v, 80)}`, { file });
  if (!isObj(raw)) throw new ShrinkError(`${file}: expected a JSON object (the report of shrink compress), got ${show(raw, 80)}`, { file });
  const str = (o: Obj, k: string, field: string, nullable = false) => {
    const v = o[k];
    if (typeof v === 'string' || (nullable && v === null)) return;
    throw bad(field, nullable ? 'a string or null' : 'a string', v);
  };
  const num = (o: Obj, k: string, field: string, nullable = false) => {
    const v = o[k];
    if ((typeof v === 'number' && Number.isFinite(v)) || (nullable && v === null)) return;
    throw bad(field, nullable ? 'a number or null' : 'a number', v);
  };
  str(raw, 'model', 'model');
  str(raw, 'task', 'task', true);
  str(raw, 'metric_name', 'metric_name', true);
  for (const side of ['before', 'after']) {
    const m = raw[side];
    if (!isObj(m)) throw bad(side, 'an object (params, bytes, metric, latency_ms_b1, latency_ms_b32)', m);
    num(m, 'params', `${side}.params`);
    num(m, 'bytes', `${side}.bytes`);
    num(m, 'metric', `${side}.metric`, true);
    // a run without a task measures no latency: NaN, which JSON writes as null
    num(m, 'latency_ms_b1', `${side}.latency_ms_b1`, true);
    num(m, 'latency_ms_b32', `${side}.latency_ms_b32`, true);
    if (m.kernels !== undefined && (!isObj(m.kernels) || Object.values(m.kernels).some((k) => typeof k !== 'string'))) throw bad(`${side}.kernels`, 'an object of strings', m.kernels);
  }
  if (!Array.isArray(raw.steps)) throw bad('steps', 'a list of step reports', raw.steps);
  raw.steps.forEach((s, i) => {
    if (!isObj(s)) throw bad(`steps.${i}`, 'an object', s);
    str(s, 'method', `steps.${i}.method`);
  });
  if (raw.recipe !== undefined && !isObj(raw.recipe)) throw bad('recipe', 'an object', raw.recipe);
  if (raw.layers !== undefined) {
    if (!isObj(raw.layers)) throw bad('layers', 'an object (sparsity, error)', raw.layers);
    for (const k of ['sparsity', 'error']) {
      const v = raw.layers[k];
      if (v === undefined) continue;
      if (!isObj(v)) throw bad(`layers.${k}`, 'an object of numbers by layer name', v);
      for (const [n, x] of Object.entries(v)) if (typeof x !== 'number' || !Number.isFinite(x)) throw bad(`layers.${k}.${n}`, 'a number', x);
    }
  }
  return raw as unknown as CompressReport;
}

/** The report.json of one `shrink compress` output folder (ShrinkError naming the folder when missing or malformed). */
export function readCompressReport(dir: string): CompressReport {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new ShrinkError(`${dir}: no such folder (expected an output folder of shrink compress)`, { file: dir });
  }
  if (!st.isDirectory()) throw new ShrinkError(`${dir}: not a folder (expected an output folder of shrink compress, holding report.json)`, { file: dir });
  const file = path.join(dir, 'report.json');
  let text: string;
  try {
    const fst = fs.statSync(file);
    if (!fst.isFile()) throw new ShrinkError(`${file}: not a regular file`, { file });
    if (fst.size > MAX_JSON_FILE_BYTES) throw new ShrinkError(`${file}: ${fst.size} bytes is larger than the ${MAX_JSON_FILE_BYTES}-byte limit for a report`, { file });
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof ShrinkError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ShrinkError(`${dir}: no report.json (expected an output folder of shrink compress)`, { file: dir });
    throw new ShrinkError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file, cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ShrinkError(`${file}: not valid JSON: ${(e as Error).message.split('\n')[0]}`, { file, cause: e });
  }
  return checkReport(raw, file);
}

/**
 * Read every folder's report (the first bad one throws) and name each: its folder name, or its path relative to
 * the working directory when two folders share a name.
 */
export function loadReports(dirs: string[]): NamedReport[] {
  if (dirs.length === 0) throw new ShrinkError('report: give at least one output folder of shrink compress');
  const reports = dirs.map((dir) => ({ dir, report: readCompressReport(dir) }));
  const base = (d: string) => path.basename(path.resolve(d));
  const counts = new Map<string, number>();
  for (const { dir } of reports) counts.set(base(dir), (counts.get(base(dir)) ?? 0) + 1);
  return reports.map(({ dir, report }) => {
    const rel = path.relative(process.cwd(), path.resolve(dir));
    return { name: counts.get(base(dir))! > 1 ? rel || base(dir) : base(dir), dir, report };
  });
}
