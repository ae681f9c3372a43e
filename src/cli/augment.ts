/**
 * `shrink augment <mlm-model> --task sst2 -o train_aug.tsv`: TinyBERT data augmentation of a GLUE train set with a
 * BERT MLM teacher (src/data/augment.ts). The output is a TSV in the task's GLUE format, written atomically (a
 * temporary file renamed into place) and never over an existing file without --force. Flags, the model folder and
 * the output path are checked before any work.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { GLUE_TASKS, glueFile, type GlueTask } from '../data/glue.ts';
import { AUGMENT_DEFAULT_M, AUGMENT_DEFAULT_N, AUGMENT_DEFAULT_P, AugmentStopped, augmentGlue, loadAugmentor, type AugmentGlueResult } from '../data/augment.ts';
import { ShrinkError } from '../io/errors.ts';
import { interruptRequested, watchInterrupts } from '../train/interrupt.ts';
import { TrainingInterrupted } from '../train/bert-tasks.ts';
import { num } from './options.ts';

export interface AugmentCliOptions {
  task: string;
  out: string;
  n?: number;
  m: number;
  p: number;
  seed: number;
  limit?: number;
  glueDir?: string;
  force?: boolean;
  json?: boolean;
}


/** Check the output file before any work: not a folder, its parent a writable folder, absent unless force. */
export function checkOutFile(out: string, force?: boolean): void {
  if (out.trim() === '') throw new Error('-o/--out: the path is empty');
  const abs = path.resolve(out);
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new Error(`output file ${out}: a part of its path is a file, not a folder`);
    if (code !== 'ENOENT') throw new Error(`output file ${out}: cannot read it (${code ?? (e as Error).message})`);
  }
  if (st?.isDirectory()) throw new Error(`output file ${out} is a folder; give a file path, e.g. ${path.join(out, 'train.tsv')}`);
  if (st && !force) throw new Error(`output file ${out} exists (use --force to replace it)`);
  // the nearest existing ancestor must be a writable folder (missing folders are created)
  let anc = path.dirname(abs);
  while (!fs.existsSync(anc) && path.dirname(anc) !== anc) anc = path.dirname(anc);
  if (!fs.statSync(anc).isDirectory()) throw new Error(`output file ${out}: ${anc} is a file, not a folder`);
  try {
    fs.accessSync(anc, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw new Error(`output file ${out}: ${anc} is not writable`);
  }
}

/** Remove temporary files `<out>.tmp-<pid>-<hex>` (atomicWrite's) left by runs that were killed. */
function removeStaleTemps(out: string): void {
  const abs = path.resolve(out);
  const base = path.basename(abs);
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(abs));
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^(.*)\.tmp-(\d+)-[0-9a-f]+$/.exec(n);
    if (!m || m[1] !== base || Number(m[2]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[2]), 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) fs.rmSync(path.join(path.dirname(abs), n), { force: true });
  }
}

/** A one-line progress report on stderr (a TTY gets a carriage-return bar), like the training commands'. */
function rowProgress(quiet = false): (done: number, total: number) => void {
  const t0 = performance.now();
  let last = 0;
  return (done, total) => {
    if (quiet) return;
    const s = (performance.now() - t0) / 1000;
    const rate = done / Math.max(s, 1e-9);
    const bar = '#'.repeat(Math.round((done / total) * 30)).padEnd(30, '.');
    const line = `augment [${bar}] ${done}/${total} rows ${rate.toFixed(1)} rows/s eta ${((total - done) / Math.max(rate, 1e-9)).toFixed(0)}s`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}${done === total ? '\n' : ''}`);
    else if (done === total || done - last >= total / 20) {
      last = done;
      process.stderr.write(line + '\n');
    }
  };
}

export function registerAugment(program: Command, out: (s: string) => void): void {
  program
    .command('augment')
    .description("TinyBERT data augmentation of a GLUE train set: words replaced by a BERT MLM's predictions (one-piece words) or nearest input-embedding words (multi-piece words); writes a TSV in the task's GLUE format")
    .argument('<model>', 'BERT masked-LM folder with vocab.txt (e.g. data/models/bert-teacher)')
    .requiredOption('-t, --task <task>', `GLUE task: ${GLUE_TASKS.join(', ')}`)
    .requiredOption('-o, --out <file>', 'TSV file to write (written atomically; an existing file only with --force)')
    .option('--n <n>', `augmented variants tried per text (default: upstream's per task, ${GLUE_TASKS.map((t) => `${t} ${AUGMENT_DEFAULT_N[t]}`).join(', ')})`, num('n', 1, 1e6, true))
    .option('--m <m>', 'candidates per word (top-M MLM predictions or nearest words)', num('m', 1, 1e6, true), AUGMENT_DEFAULT_M)
    .option('--p <p>', 'probability of replacing each candidate word', num('p', 0, 1), AUGMENT_DEFAULT_P)
    .option('--seed <s>', 'random seed', num('seed', 0, 2 ** 32, true), 0)
    .option('--limit <k>', 'augment only the first k rows of the train set', num('limit', 1, 1e9, true))
    .option('--glue-dir <dir>', 'folder with SST-2/, MRPC/, RTE/, CoLA/ train.tsv (default: the bundled data/glue)')
    .option('--force', 'replace an existing output file')
    .option('--json', 'print JSON')
    .action((dir: string, o: AugmentCliOptions) => {
      if (!(GLUE_TASKS as readonly string[]).includes(o.task)) throw new Error(`--task must be one of ${GLUE_TASKS.join(', ')}, got '${o.task}'`);
      const task = o.task as GlueTask;
      if (!fs.existsSync(dir)) throw new ShrinkError(`model folder ${dir} does not exist`, { file: dir });
      checkOutFile(o.out, o.force);
      const input = glueFile(task, 'train', o.glueDir);
      if (!fs.existsSync(input)) throw new ShrinkError(`${input} does not exist (--glue-dir ${o.glueDir ?? ''} must hold ${path.basename(path.dirname(input))}/train.tsv)`, { file: input });
      if (path.resolve(input) === path.resolve(o.out)) throw new Error(`-o ${o.out} is the input train set; write the augmented file elsewhere`);
      const aug = loadAugmentor(dir, { m: o.m });
      removeStaleTemps(o.out);
      // Ctrl-C between chunks of rows: the temporary file is removed, the output stays as it was, exit 130
      const stop = watchInterrupts();
      let r: AugmentGlueResult;
      try {
        r = augmentGlue(aug, task, o.out, { glueDir: o.glueDir, limit: o.limit, n: o.n, m: o.m, p: o.p, seed: o.seed, onProgress: rowProgress(o.json), interrupted: interruptRequested });
      } catch (e) {
        if (!(e instanceof AugmentStopped)) throw e;
        const t = new TrainingInterrupted(e.done, e.total);
        t.message = `interrupted after ${e.done} of ${e.total} rows; ${o.out} not written${fs.existsSync(o.out) ? ' (the old file is unchanged)' : ''}; run the command again (use --limit for fewer rows)`;
        throw t;
      } finally {
        stop();
      }
      if (o.json) out(JSON.stringify(r) + '\n');
      else
        out(
          [
            `| augment: ${dir} | value |`,
            '| --- | --- |',
            `| task | ${r.task} (${r.input}) |`,
            `| rows in | ${r.examples} |`,
            `| rows out | ${r.rows} (originals included) |`,
            `| N / M / p / seed | ${r.n} / ${r.m} / ${r.p} / ${r.seed} |`,
            `| words | ${r.words.mlm} MLM, ${r.words.embedding} nearest-embedding, ${r.words.none} kept |`,
            `| time | ${r.seconds.toFixed(1)} s (${r.examplesPerSecond.toFixed(1)} rows/s, ${r.mlmPasses} MLM passes) |`,
            `| output | ${r.out} |`,
          ].join('\n') + '\n',
        );
    });
}
