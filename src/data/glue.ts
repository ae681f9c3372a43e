/**
 * GLUE TSV loaders (SST-2, MRPC, RTE, CoLA) with each file's quirks: MRPC files start with a UTF-8 BOM, CoLA has no
 * header, RTE labels are strings (entailment = 0, not_entailment = 1 as HF `glue`), and fields are split on tabs
 * only (GLUE text contains quote characters that are not CSV quoting). A bad row is one error naming the file,
 * the 1-based line and what was expected.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type GlueTask = 'sst2' | 'mrpc' | 'rte' | 'cola';
export type GlueMetric = 'accuracy' | 'f1' | 'matthews';

export interface GlueSplit {
  task: GlueTask;
  file: string;
  /** [sentence] or [sentence1, sentence2]. */
  texts: [string, string?][];
  labels: number[];
  numLabels: number;
  metric: GlueMetric;
}

interface Spec {
  dir: string;
  header: boolean;
  columns: number;
  text: number[];
  label: number;
  parseLabel: (s: string) => number | undefined;
  metric: GlueMetric;
}

const binary = (s: string) => (s === '0' ? 0 : s === '1' ? 1 : undefined);
const SPECS: Record<GlueTask, Spec> = {
  sst2: { dir: 'SST-2', header: true, columns: 2, text: [0], label: 1, parseLabel: binary, metric: 'accuracy' },
  mrpc: { dir: 'MRPC', header: true, columns: 5, text: [3, 4], label: 0, parseLabel: binary, metric: 'f1' },
  rte: {
    dir: 'RTE', header: true, columns: 4, text: [1, 2], label: 3,
    parseLabel: (s) => (s === 'entailment' ? 0 : s === 'not_entailment' ? 1 : undefined), metric: 'accuracy',
  },
  cola: { dir: 'CoLA', header: false, columns: 4, text: [3], label: 1, parseLabel: binary, metric: 'matthews' },
};

/** The bundled GLUE folder (data/glue at the repository root). */
export const GLUE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../data/glue');

export function loadGlue(task: GlueTask, split: 'train' | 'dev', opts: { dir?: string; limit?: number } = {}): GlueSplit {
  const spec = SPECS[task];
  if (!spec) throw new Error(`loadGlue: unknown task '${task}' (sst2, mrpc, rte, cola)`);
  const file = path.join(opts.dir ?? GLUE_DIR, spec.dir, `${split}.tsv`);
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
  for (let i = spec.header ? 1 : 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line === '') continue;
    const cols = line.split('\t');
    if (cols.length !== spec.columns) throw new Error(`${file}:${i + 1}: expected ${spec.columns} tab-separated columns, found ${cols.length}`);
    const label = spec.parseLabel(cols[spec.label]!.trim());
    if (label === undefined) throw new Error(`${file}:${i + 1}: invalid label '${cols[spec.label]}'`);
    texts.push(spec.text.length === 1 ? [cols[spec.text[0]!]!.trim()] : [cols[spec.text[0]!]!.trim(), cols[spec.text[1]!]!.trim()]);
    labels.push(label);
    if (opts.limit && labels.length >= opts.limit) break;
  }
  return { task, file, texts, labels, numLabels: 2, metric: spec.metric };
}
