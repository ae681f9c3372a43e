/**
 * GLUE TSV loaders (SST-2, MRPC, RTE, CoLA) with each file's quirks, read the way HF `datasets`' glue script does:
 *
 * - fields are split on tabs only: quote characters are text, never CSV quoting (csv.QUOTE_NONE);
 * - MRPC train/dev start with a UTF-8 BOM (stripped); SST-2, MRPC and RTE have a header row, which is checked;
 *   CoLA train/dev have none (`source, label, original judgement, sentence`);
 * - MRPC keeps only `Quality` (the label) and the two strings, dropping the `#1 ID` / `#2 ID` columns;
 * - RTE labels are strings: entailment = 0, not_entailment = 1 (HF glue's ClassLabel order);
 * - CRLF line ends are accepted, a trailing newline is optional, blank lines are skipped;
 * - texts are kept exactly as in the file (SST-2's trailing space before the tab included, as HF keeps it).
 *
 * A bad row (wrong column count, bad label) or a wrong header is one error naming the file, the 1-based line
 * number and what was expected.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type GlueTask = 'sst2' | 'mrpc' | 'rte' | 'cola';
export type GlueMetric = 'accuracy' | 'f1' | 'matthews';
export const GLUE_TASKS: readonly GlueTask[] = ['sst2', 'mrpc', 'rte', 'cola'];

export interface GlueSplit {
  task: GlueTask;
  split: 'train' | 'dev';
  /** The file read. */
  file: string;
  /** [sentence] or [sentence1, sentence2]. */
  texts: [string, string?][];
  labels: number[];
  numLabels: number;
  /** HF glue ClassLabel names, index = label id. */
  labelNames: readonly string[];
  /** The GLUE metric of the task (MRPC: F1 of class 1; CoLA: Matthews correlation). */
  metric: GlueMetric;
}

interface Spec {
  dir: string;
  /** Expected header fields, or null when the file has no header row. */
  header: readonly string[] | null;
  columns: number;
  text: readonly number[];
  label: number;
  labelNames: readonly string[];
  /** Label strings accepted in the file, index = label id. */
  labelValues: readonly string[];
  metric: GlueMetric;
}

const SPECS: Record<GlueTask, Spec> = {
  sst2: {
    dir: 'SST-2', header: ['sentence', 'label'], columns: 2, text: [0], label: 1,
    labelNames: ['negative', 'positive'], labelValues: ['0', '1'], metric: 'accuracy',
  },
  mrpc: {
    dir: 'MRPC', header: ['Quality', '#1 ID', '#2 ID', '#1 String', '#2 String'], columns: 5, text: [3, 4], label: 0,
    labelNames: ['not_equivalent', 'equivalent'], labelValues: ['0', '1'], metric: 'f1',
  },
  rte: {
    dir: 'RTE', header: ['index', 'sentence1', 'sentence2', 'label'], columns: 4, text: [1, 2], label: 3,
    labelNames: ['entailment', 'not_entailment'], labelValues: ['entailment', 'not_entailment'], metric: 'accuracy',
  },
  cola: {
    dir: 'CoLA', header: null, columns: 4, text: [3], label: 1,
    labelNames: ['unacceptable', 'acceptable'], labelValues: ['0', '1'], metric: 'matthews',
  },
};

/** The bundled data folder (data/ at the repository root). */
export const DATA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../data');
/** The bundled GLUE folder (data/glue). */
export const GLUE_DIR = path.join(DATA_DIR, 'glue');

/** Path of a GLUE split file: `<dir>/<SST-2|MRPC|RTE|CoLA>/<split>.tsv`. */
export function glueFile(task: GlueTask, split: 'train' | 'dev', dir: string = GLUE_DIR): string {
  const spec = SPECS[task];
  if (!spec) throw new Error(`loadGlue: unknown task '${task}' (expected one of ${GLUE_TASKS.join(', ')})`);
  if (split !== 'train' && split !== 'dev') throw new Error(`loadGlue: unknown split '${split}' (expected train or dev)`);
  return path.join(dir, spec.dir, `${split}.tsv`);
}

/**
 * Load a GLUE split. `dir` is the folder holding SST-2/, MRPC/, RTE/, CoLA/ (default: the bundled data/glue);
 * `file` reads that one TSV instead (in the task's own format, e.g. what `shrink augment` writes; `dir` is then
 * unused); `limit` keeps the first rows only (the rest of the file is not parsed).
 */
export function loadGlue(task: GlueTask, split: 'train' | 'dev', opts: { dir?: string; file?: string; limit?: number } = {}): GlueSplit {
  const file = opts.file ?? glueFile(task, split, opts.dir);
  if (opts.file !== undefined) glueFile(task, split); // the task and split checks
  const spec = SPECS[task];
  const limit = opts.limit ?? Infinity;
  if (!(limit >= 0) || (limit !== Infinity && !Number.isInteger(limit))) throw new Error(`loadGlue: limit must be a non-negative integer, got ${opts.limit}`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');
  const texts: [string, string?][] = [];
  const labels: number[] = [];
  let first = 0;
  if (spec.header) {
    const got = (lines[0] ?? '').replace(/\r$/, '');
    if (got !== spec.header.join('\t'))
      throw new Error(`${file}:1: expected the ${task} header ${JSON.stringify(spec.header.join('\t'))}, found ${JSON.stringify(got.slice(0, 120))}`);
    first = 1;
  }
  for (let i = first; i < lines.length && labels.length < limit; i++) {
    const line = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    if (line === '') continue;
    const cols = line.split('\t');
    if (cols.length !== spec.columns) {
      const what = spec.header ? ` (${spec.header.join(' | ')})` : ' (source | label | original judgement | sentence)';
      throw new Error(`${file}:${i + 1}: expected ${spec.columns} tab-separated columns${what}, found ${cols.length}`);
    }
    const raw = cols[spec.label]!;
    const label = spec.labelValues.indexOf(raw);
    if (label < 0)
      throw new Error(`${file}:${i + 1}: invalid label ${JSON.stringify(raw.slice(0, 40))}${raw.length > 40 ? '…' : ''} in column ${spec.label + 1} (expected ${spec.labelValues.map((v) => JSON.stringify(v)).join(' or ')})`);
    texts.push(spec.text.length === 1 ? [cols[spec.text[0]!]!] : [cols[spec.text[0]!]!, cols[spec.text[1]!]!]);
    labels.push(label);
  }
  return { task, split, file, texts, labels, numLabels: spec.labelNames.length, labelNames: spec.labelNames, metric: spec.metric };
}
