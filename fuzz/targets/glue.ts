/**
 * Fuzz target "glue" (issue #23): GLUE TSV files (src/data/glue.ts) under fast-check.
 *
 *  - round-trip, per task: rows of arbitrary texts (no tab, CR or LF: the format cannot hold them) and labels are
 *    written the way the task's file is laid out (header, BOM, CRLF, trailing newline or not, blank lines) and read
 *    back identical;
 *  - mutated files, per task: the first rows of the bundled data/glue/<TASK>/train.tsv with line edits (missing or
 *    extra columns, bad labels, quotes, CRLF, BOM, huge lines, blank lines) and byte edits (invalid UTF-8, NUL, …):
 *    loadGlue returns a consistent split or throws a plain Error whose message starts with "<file>:<line>:".
 *
 * Run alone: node --import tsx fuzz/targets/glue.ts --cases N [--seed S] (JSON summary on stdout).
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { GLUE_DIR, GLUE_TASKS, glueFile, loadGlue, type GlueSplit, type GlueTask } from '../../src/data/glue.ts';
import { editArb, main, mutateBytes, runProps, unicodeText, type RunOptions, type Summary } from './tokenizers.ts';

const LAYOUT: Record<GlueTask, { dir: string; header: string | null; columns: number; text: number[]; label: number; labels: string[]; bom: boolean }> = {
  sst2: { dir: 'SST-2', header: 'sentence\tlabel', columns: 2, text: [0], label: 1, labels: ['0', '1'], bom: false },
  mrpc: { dir: 'MRPC', header: 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String', columns: 5, text: [3, 4], label: 0, labels: ['0', '1'], bom: true },
  rte: { dir: 'RTE', header: 'index\tsentence1\tsentence2\tlabel', columns: 4, text: [1, 2], label: 3, labels: ['entailment', 'not_entailment'], bom: false },
  cola: { dir: 'CoLA', header: null, columns: 4, text: [3], label: 1, labels: ['0', '1'], bom: false },
};

/** Texts the format can hold: anything but tab, CR and LF (a text that is all blank would make a blank line when alone). */
const cell = unicodeText(20).map((s) => s.replace(/[\t\r\n]/g, ' '));

/** The reader's contract on one file: a consistent split, or a plain Error naming file and line. */
function contract(file: string, fn: () => GlueSplit, task: GlueTask): GlueSplit | undefined {
  const t0 = performance.now();
  try {
    const s = fn();
    const L = LAYOUT[task];
    if (s.texts.length !== s.labels.length) throw new Error(`${s.texts.length} texts but ${s.labels.length} labels`);
    for (const [i, t] of s.texts.entries()) {
      if (t.length !== L.text.length || t.some((x) => typeof x !== 'string')) throw new Error(`row ${i}: ${JSON.stringify(t).slice(0, 200)}`);
      if (!Number.isInteger(s.labels[i]) || s.labels[i]! < 0 || s.labels[i]! >= s.numLabels) throw new Error(`row ${i}: label ${s.labels[i]}`);
    }
    return s;
  } catch (e) {
    if (!(e instanceof Error)) throw new Error(`threw a non-Error: ${String(e)}`);
    if (e.constructor !== Error) throw new Error(`threw ${e.constructor.name} instead of Error: ${e.message}`);
    if (!e.message.startsWith(`${file}:`)) throw e; // a contract violation above, or an error without the file
    if (!/^:\d+: /.test(e.message.slice(file.length))) throw new Error(`error does not name the line: ${e.message.slice(0, 300)}`);
    if (e.message.length > 1000) throw new Error(`error message is ${e.message.length} characters long`);
    return undefined;
  } finally {
    const ms = performance.now() - t0;
    if (ms > 2000) throw new Error(`loadGlue took ${ms.toFixed(0)} ms`);
  }
}

/** Line edits: [kind, line fraction, choice]. */
const lineEdit = fc.tuple(fc.integer({ min: 0, max: 9 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(), fc.string({ maxLength: 12 }));
const BAD_LABELS = ['', '2', '-1', '0.0', ' 0', '1 ', '"1"', 'entailment', 'not_entailment', 'Entailment', '١', '0\u0000', 'nan', '1e0', 'true'];

function mutateLines(text: string, edits: readonly [number, number, number, string][], task: GlueTask): string {
  const lines = text.split('\n');
  const L = LAYOUT[task];
  for (const [kind, f, v, s] of edits) {
    const i = Math.min(lines.length - 1, Math.floor(f * lines.length));
    const cols = lines[i]!.split('\t');
    switch (kind) {
      case 0: cols.splice(v % Math.max(1, cols.length), 1); break; // missing column
      case 1: cols.splice(v % (cols.length + 1), 0, s); break; // extra column
      case 2: cols[L.label] = BAD_LABELS[v % BAD_LABELS.length]!; break; // bad label
      case 3: cols[L.text[0]!] = `"${cols[L.text[0]!] ?? ''}${v % 2 ? '"' : ''}`; break; // quotes
      case 4: lines[i] = lines[i] + '\r'; continue; // CRLF
      case 5: lines[0] = '\ufeff' + lines[0]; continue; // BOM
      case 6: cols[(v >> 1) % cols.length] = 'x'.repeat(v % 2 ? 1 << 18 : 1 << 12); break; // huge line (any column)
      case 7: lines.splice(i, 0, v % 2 ? '' : '\r'); continue; // blank line
      case 8: cols[v % cols.length] = s; break; // arbitrary cell
      default: lines[i] = s; continue; // arbitrary line
    }
    lines[i] = cols.join('\t');
  }
  return lines.join(v(edits));
}
const v = (edits: readonly unknown[]) => (edits.length % 3 === 2 ? '\r\n' : '\n');

export async function run(opts: RunOptions): Promise<Summary> {
  const props = GLUE_TASKS.flatMap((task) => {
    const L = LAYOUT[task];
    const seed = fs.readFileSync(glueFile(task, 'train', GLUE_DIR), 'utf8').split('\n').slice(0, 12).join('\n') + '\n';
    const dirOf = (tmp: string) => {
      fs.mkdirSync(path.join(tmp, L.dir), { recursive: true });
      return tmp;
    };
    return [
      {
        name: `${task} round-trip`,
        weight: 1,
        build: (tmp: string) =>
          fc.property(
            fc.array(fc.tuple(fc.array(cell, { minLength: L.columns, maxLength: L.columns }), fc.nat({ max: 1 })), { maxLength: 8 }),
            fc.boolean(), fc.boolean(), fc.boolean(), fc.nat({ max: 3 }), fc.nat({ max: 9 }),
            (rows, crlf, trailing, bom, blanks, limit) => {
              const dir = dirOf(tmp);
              const file = glueFile(task, 'dev', dir);
              // a text cell that holds only spaces would still be a non-empty line; an empty line needs every cell empty,
              // which cannot happen with a label column
              const body = rows.map(([c, y]) => {
                const cells = c.slice();
                cells[L.label] = L.labels[y]!;
                return cells.join('\t');
              });
              for (let k = 0; k < blanks && body.length; k++) body.splice((k * 7) % (body.length + 1), 0, '');
              const nl = crlf ? '\r\n' : '\n';
              const lines = L.header ? [L.header, ...body] : body;
              const text = (bom || L.bom ? '\ufeff' : '') + lines.join(nl) + (trailing && lines.length ? nl : '');
              fs.writeFileSync(file, text);
              const lim = limit < 9 ? limit : undefined;
              const s = contract(file, () => loadGlue(task, 'dev', { dir, limit: lim }), task);
              if (!s) throw new Error('a well-formed file was rejected');
              const want = rows.slice(0, lim ?? rows.length);
              if (s.labels.join() !== want.map(([, y]) => y).join()) throw new Error(`labels ${s.labels} != ${want.map(([, y]) => y)}`);
              want.forEach(([c], i) => {
                const t = L.text.map((k) => c[k]!);
                if (JSON.stringify(s.texts[i]) !== JSON.stringify(t)) throw new Error(`row ${i}: ${JSON.stringify(s.texts[i])} != ${JSON.stringify(t)}`);
              });
            },
          ),
      },
      {
        name: `${task} mutated`,
        weight: 2,
        build: (tmp: string) =>
          fc.property(fc.array(lineEdit, { maxLength: 5 }), fc.array(editArb, { maxLength: 3 }), fc.boolean(), (ledits, bedits, bytes) => {
            const dir = dirOf(tmp);
            const file = glueFile(task, 'train', dir);
            const text = mutateLines(seed, ledits, task);
            fs.writeFileSync(file, bytes ? mutateBytes(Buffer.from(text), bedits) : text);
            contract(file, () => loadGlue(task, 'train', { dir }), task);
          }),
      },
    ];
  });
  return runProps('glue', props, opts);
}

export const target = { name: 'glue', run };
export default target;

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main('glue', run);
