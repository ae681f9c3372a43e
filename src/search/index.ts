/**
 * `shrink search` as a library: the smallest or fastest recipe whose dev-set metric stays within `maxDrop` points
 * of the uncompressed model, across the method families (candidate space and phase order: space.ts).
 *
 * How one search runs:
 * - The model is measured once (metric on the full dev set, bytes, latency at batch 1 and 32: 1 warm-up + best of 5),
 *   giving the teacher row and the budget `teacher − maxDrop`.
 * - Candidates run phase by phase (space.ts: one-shot first; trained follow-ups only where a structural one-shot
 *   dropped ≤ 3 × maxDrop; chains of a structural result within budget with the best quantization; distillation and
 *   CoFi last). Each is a recipe run by `compressFolder` into `<dir>/runs/<key>`, so every number is measured by the
 *   same code as `shrink compress`, never estimated.
 * - Early rejection: the recipe gets a last step `search.gate` (gate.ts) that scores a fixed dev subset (256
 *   examples) and stops the run when the Wilson 95 % upper bound of that accuracy is below the candidate's gate
 *   (teacher − maxDrop; teacher − 3·maxDrop for structural one-shots that may earn a fine-tuned follow-up).
 * - Resumable: each finished candidate (measured, rejected, or failed with its error) is appended as one JSON line to
 *   `<dir>/candidates.jsonl` with its recipe and numbers; a rerun reads it and skips those candidates (by recipe hash),
 *   except a rejection whose gate was stricter than the current one. A candidate killed mid-run leaves no line; its
 *   training checkpoints (compress's `.<key>.compress-run`) let the rerun resume it. A candidate folder already
 *   complete (report.json) is read rather than recomputed.
 * - `budgetMinutes`: no new candidate starts once this run's wall time exceeds it (the one running finishes).
 * - Latency objective: compress's latencies (1 warm-up + best of 5, each candidate minutes apart) swing with the
 *   machine's load, so at the end the candidates within budget are loaded from their folders and timed again with
 *   the model, interleaved round by round (eval/latency.ts compareLatency, 7 rounds, each turn repeating its forward
 *   for ≥ 20 ms: a single call's time after another model's swings by 2× on its own — the model, timed first in every
 *   round, measured 1.46 against 0.78 ms for a second copy of itself); they are ranked by the median
 *   round ("re-timed" in the table, with the median per-round speed-up against the model). Not written to
 *   candidates.jsonl: every run re-times.
 * - Output: `<dir>/best.json` (the winner's recipe with model and task: `shrink compress --recipe <dir>/best.json -o x`),
 *   `<dir>/best/` (a copy of its compress folder, the gate step left out of report.json), `<dir>/search.json` (the
 *   summary), and the table (formatSearch) of every candidate sorted by the objective with the Pareto front marked.
 *   Candidate folders that are neither within budget nor on the front are deleted to save disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compressFolder, measure, type CompressReport, type Measured } from '../cli/compress.ts';
import { fromPretrained } from '../models/registry.ts';
import type { Module } from '../nn/module.ts';
import { taskData, isTaskName } from '../compress/tasks.ts';
import { parseRecipe, type Recipe } from '../compress/runner.ts';
import { checkOutPath, writeDirAtomic } from '../io/outdir.ts';
import { atomicWriteFile, atomicWriteJson } from '../io/atomic.ts';
import { ShrinkError } from '../io/errors.ts';
import { renderReport } from '../report/html.ts';
import { searchReports } from '../report/search.ts';
import { ensureTeacher } from '../train/teachers.ts';
import { GLUE_TASKS, type GlueTask } from '../data/glue.ts';
import { formatBytes } from '../cli/inspect.ts';
import { EarlyRejection } from './gate.ts';
import { compareLatency } from '../eval/latency.ts';
import { noGrad } from '../tensor/autograd.ts';
import type { ModelInputs } from '../models/outputs.ts';
import { candidateKey, chains, followUps, mixedPrecision, oneShotCandidates, trainedOnly, type Candidate, type Outcome, type Phase } from './space.ts';

export { wilsonInterval, devSubset, EarlyRejection, Z95 } from './gate.ts';
export { candidateKey, mixedPrecision, oneShotCandidates, SENSITIVE_FRACTION, type Candidate } from './space.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export type Objective = 'latency' | 'bytes';

export interface SearchOptions {
  task: string;
  /** Largest allowed drop of the metric, in points (accuracy 80.16 % → 79.16 % is 1.0). */
  maxDrop: number;
  objective: Objective;
  /** Which latency the `latency` objective minimizes: batch 1 or 32 (default 32). */
  batch?: 1 | 32;
  out: string;
  /** Stop starting new candidates after this many minutes of this run. */
  budgetMinutes?: number;
  /** Dev examples the gate scores before the full evaluation (256; 0 turns early rejection off). */
  gateSubset?: number;
  /** Fine-tuning steps of trained candidates (60). */
  trainSteps?: number;
  /**
   * Latency objective: the candidates within budget and the model are timed again at the end, interleaved round by
   * round (compareLatency), and ranked by the median round; this many rounds (7; 0: rank by compress's numbers).
   */
  confirmRounds?: number;
  /** A fixed candidate list instead of the phased space (tests, custom sweeps). */
  candidates?: Candidate[];
  /** Progress, one line each. */
  log?: (line: string) => void;
  /** Called with each record as it is appended (and with those read back, `resumed` true). */
  onRecord?: (r: CandidateRecord, resumed: boolean) => void;
}

export interface CandidateRecord {
  key: string;
  name: string;
  family: string;
  phase: Phase;
  status: 'measured' | 'rejected' | 'failed';
  recipe: Recipe;
  /** Full dev-set metric (a fraction, as report.json), params, bytes, latencies: compressFolder's `after`. */
  metric: number | null;
  /** Points lost against the teacher (negative: gained). */
  drop: number | null;
  within: boolean;
  params: number | null;
  bytes: number | null;
  latency_ms_b1: number | null;
  latency_ms_b32: number | null;
  /** The uncompressed model's latencies measured in the same compressFolder run (load on the machine varies). */
  before_latency_ms_b1: number | null;
  before_latency_ms_b32: number | null;
  gate: { subset: number; correct: number | null; upper: number | null; threshold: number } | null;
  /** Relative output error per quantized layer (report.json `layers.error`): what guides mixed precision. */
  layer_error?: Record<string, number>;
  error?: string;
  seconds: number;
  at: string;
  /** Not stored in candidates.jsonl: this run's interleaved re-timing (latency objective, within-budget candidates). */
  confirmed?: Confirmed;
}

export interface Confirmed {
  /** Median over the rounds, ms per call. */
  latency_ms_b1: number;
  latency_ms_b32: number;
  /** Median per-round speed-up against the model timed in the same rounds (> 1: faster). */
  speedup_b1: number;
  speedup_b32: number;
  rounds: number;
}

export interface TeacherRow extends Measured {
  model: string;
  metric_name: string;
}

export interface SearchResult {
  model: string;
  task: string;
  objective: Objective;
  batch: 1 | 32;
  maxDrop: number;
  teacher: TeacherRow;
  /** The model's own median latencies in the confirmation rounds (latency objective). */
  teacherConfirmed: Confirmed | null;
  /** Every record, this run's and earlier runs'. */
  records: CandidateRecord[];
  /** Keys of the Pareto front (metric up, objective down) among measured candidates. */
  pareto: string[];
  best: CandidateRecord | null;
  /** Paths written (null when no candidate was within budget). */
  bestRecipe: string | null;
  bestDir: string | null;
  /** `<dir>/report.html`: the candidates' Pareto plots (src/report/search.ts); null when none was measured. */
  reportHtml: string | null;
  evaluated: number;
  skipped: number;
  budgetStopped: boolean;
  /** Candidates the phases had generated but not started when the budget ran out. */
  notStarted: number;
  seconds: number;
}

function resolveModelDir(p: string): string {
  if (p.startsWith('teacher:')) {
    const t = p.slice('teacher:'.length);
    if (!(GLUE_TASKS as readonly string[]).includes(t)) throw new Error(`model '${p}': expected teacher:<task> with a task of ${GLUE_TASKS.join(', ')}`);
    return ensureTeacher(t as GlueTask).dir;
  }
  if (path.isAbsolute(p) || fs.existsSync(p)) return p;
  const inPkg = path.join(ROOT, p);
  return fs.existsSync(inPkg) ? inPkg : p;
}

/** The value the objective minimizes. */
export function objectiveOf(r: { bytes: number | null; latency_ms_b1: number | null; latency_ms_b32: number | null; confirmed?: Confirmed }, objective: Objective, batch: 1 | 32): number | null {
  if (objective === 'latency' && r.confirmed) return batch === 1 ? r.confirmed.latency_ms_b1 : r.confirmed.latency_ms_b32;
  return objective === 'bytes' ? r.bytes : batch === 1 ? r.latency_ms_b1 : r.latency_ms_b32;
}

/** Keys of the non-dominated points: higher metric, lower objective. */
export function paretoFront(points: { key: string; metric: number; objective: number }[]): string[] {
  return points
    .filter((p) => !points.some((q) => q !== p && q.metric >= p.metric && q.objective <= p.objective && (q.metric > p.metric || q.objective < p.objective)))
    .map((p) => p.key);
}

/** Read candidates.jsonl; a torn last line (a kill mid-write) is cut off so appends stay one record a line. */
export function readRecords(file: string): CandidateRecord[] {
  if (!fs.existsSync(file)) return [];
  let text = fs.readFileSync(file, 'utf8');
  if (text.length && !text.endsWith('\n')) {
    text = text.slice(0, text.lastIndexOf('\n') + 1);
    fs.writeFileSync(file, text);
  }
  const out: CandidateRecord[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as CandidateRecord);
    } catch {
      throw new Error(`${file}: line ${i + 1} is not JSON; fix or remove it to resume`);
    }
  }
  return out;
}

function appendRecord(file: string, r: CandidateRecord): void {
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, JSON.stringify(r) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const SETTINGS_FILE = 'search-settings.json';

/** Check `<dir>`: absent, empty, or an earlier search of the same model and task. */
function openSearchDir(out: string, model: string, task: string): void {
  checkOutPath(out);
  if (fs.existsSync(out)) {
    const entries = fs.readdirSync(out);
    const settings = path.join(out, SETTINGS_FILE);
    if (entries.length && !fs.existsSync(settings)) throw new Error(`output folder ${out} exists, is not empty and is not a shrink search folder (no ${SETTINGS_FILE}); choose a new folder`);
    if (fs.existsSync(settings)) {
      const s = JSON.parse(fs.readFileSync(settings, 'utf8')) as { model: string; task: string };
      if (s.model !== model || s.task !== task) throw new Error(`output folder ${out} holds a search of ${s.model} on ${s.task}, not ${model} on ${task}; choose a new folder`);
    }
  }
  fs.mkdirSync(path.join(out, 'runs'), { recursive: true });
  if (!fs.existsSync(path.join(out, SETTINGS_FILE))) atomicWriteJson(path.join(out, SETTINGS_FILE), { model, task });
}

/** Run a search (see the file comment). */
export function search(modelArg: string, o: SearchOptions): SearchResult {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const batch = o.batch ?? 32;
  if (!isTaskName(o.task) || o.task.startsWith('ppl:')) throw new Error(`--task must be a GLUE task (${GLUE_TASKS.join(', ')}), got '${o.task}'`);
  if (!(Number.isFinite(o.maxDrop) && o.maxDrop >= 0)) throw new Error(`--max-drop must be a number of points >= 0, got ${o.maxDrop}`);
  if (o.objective !== 'latency' && o.objective !== 'bytes') throw new Error(`--objective must be latency or bytes, got '${String(o.objective)}'`);
  if (batch !== 1 && batch !== 32) throw new Error(`--batch must be 1 or 32, got ${String(batch)}`);
  if (o.budgetMinutes !== undefined && !(o.budgetMinutes >= 0)) throw new Error(`--budget-minutes must be a number >= 0, got ${o.budgetMinutes}`);
  const trainSteps = o.trainSteps ?? 60;
  const gateSubset = o.gateSubset ?? 256;
  const modelDir = resolveModelDir(modelArg);
  if (!fs.existsSync(path.join(modelDir, 'config.json'))) throw new Error(`${modelArg}: not a model folder (no config.json)`);
  openSearchDir(o.out, modelArg, o.task);
  const jsonl = path.join(o.out, 'candidates.jsonl');
  const records = readRecords(jsonl);
  for (const r of records) o.onRecord?.(r, true);

  // the uncompressed model, measured as compressFolder measures its "before"
  log(`measuring ${modelDir} on ${o.task}`);
  const teacherModel = fromPretrained(modelDir) as Module;
  const td = taskData(modelDir, o.task, { maxLength: 64 });
  const tm = measure(teacherModel, td, { b1: td.latencyInputs(1), b32: td.latencyInputs(32) });
  const teacher: TeacherRow = { ...tm, model: modelArg, metric_name: td.metric };
  const tMetric = teacher.metric!;
  const accuracyTask = td.metric === 'accuracy';
  const threshold = (promise: boolean) => tMetric - ((promise ? 3 : 1) * o.maxDrop) / 100;
  log(`teacher: ${td.metric} ${(100 * tMetric).toFixed(2)} %, ${formatBytes(tm.bytes)}, b1 ${tm.latency_ms_b1} ms, b32 ${tm.latency_ms_b32} ms; budget: ${td.metric} ≥ ${(100 * tMetric - o.maxDrop).toFixed(2)}`);

  const byKey = new Map<string, CandidateRecord>();
  for (const r of records) byKey.set(r.key, r);
  const names = new Map<string, string>(records.map((r) => [r.key, r.name]));
  const budgetMs = o.budgetMinutes === undefined ? Infinity : o.budgetMinutes * 60_000;
  let evaluated = 0;
  let skipped = 0;
  let budgetStopped = false;
  let notStarted = 0;
  const seen = new Set<string>();

  const outcome = (r: CandidateRecord): Outcome => ({ key: r.key, family: r.family, phase: r.phase, status: r.status, drop: r.drop, within: r.within, objective: objectiveOf(r, o.objective, batch), recipe: r.recipe, layerError: r.layer_error ?? null });

  const runOne = (c: Candidate): CandidateRecord => {
    const key = candidateKey(c.recipe);
    const dir = path.join(o.out, 'runs', key);
    const gateAt = threshold(!!c.promiseGate);
    const gated = accuracyTask && gateSubset > 0;
    const recipe: Recipe = {
      ...c.recipe,
      task: o.task,
      steps: [...c.recipe.steps, ...(gated ? [{ method: 'search.gate', task: o.task, vocab_dir: modelDir, subset: gateSubset, min_accuracy: gateAt, max_length: 64 }] : [])],
    };
    const c0 = performance.now();
    const base = { key, name: c.name, family: c.family, phase: c.phase, recipe: c.recipe };
    const empty = { metric: null, drop: null, within: false, params: null, bytes: null, latency_ms_b1: null, latency_ms_b32: null, before_latency_ms_b1: null, before_latency_ms_b32: null };
    let report: CompressReport;
    try {
      const done = path.join(dir, 'report.json');
      if (fs.existsSync(done)) {
        report = JSON.parse(fs.readFileSync(done, 'utf8')) as CompressReport;
        log(`${c.name}: complete folder found in ${dir}, reading its report`);
      } else {
        parseRecipe(recipe, `candidate ${c.name}`);
        report = compressFolder(modelDir, { recipe: { recipe, where: `candidate ${c.name}` }, out: dir, task: o.task, force: true });
      }
    } catch (e) {
      const seconds = +((performance.now() - c0) / 1000).toFixed(1);
      fs.rmSync(path.join(o.out, 'runs', `.${key}.compress-run`), { recursive: true, force: true });
      if (e instanceof EarlyRejection)
        return { ...base, status: 'rejected', ...empty, drop: 100 * (tMetric - e.upper), gate: { subset: e.n, correct: e.correct, upper: e.upper, threshold: e.threshold }, error: e.message, seconds, at: new Date().toISOString() };
      if ((e as { exitCode?: number }).exitCode === 130 || (e as Error).name === 'TrainingInterrupted') throw e;
      return { ...base, status: 'failed', ...empty, gate: null, error: (e as Error).message, seconds, at: new Date().toISOString() };
    }
    const a = report.after;
    const g = report.steps.find((s) => s.method === 'search.gate');
    const drop = 100 * (tMetric - a.metric!);
    return {
      ...base,
      status: 'measured',
      metric: a.metric,
      drop: +drop.toFixed(4),
      within: drop <= o.maxDrop + 1e-9,
      params: a.params,
      bytes: a.bytes,
      latency_ms_b1: a.latency_ms_b1,
      latency_ms_b32: a.latency_ms_b32,
      before_latency_ms_b1: report.before.latency_ms_b1,
      before_latency_ms_b32: report.before.latency_ms_b32,
      gate: g ? { subset: g.subset as number, correct: Math.round((g.subset as number) * (g.subset_accuracy as number)), upper: g.wilson_upper as number, threshold: gateAt } : null,
      ...(report.layers?.error ? { layer_error: report.layers.error } : {}),
      seconds: +((performance.now() - c0) / 1000).toFixed(1),
      at: new Date().toISOString(),
    };
  };

  /** Run a phase's candidates in order; false once the budget stopped the search. */
  const runPhase = (label: string, cands: Candidate[]): boolean => {
    for (const [i, c] of cands.entries()) {
      const key = candidateKey(c.recipe);
      names.set(key, c.name);
      const prev = byKey.get(key);
      // a rejection under a stricter gate than today's is tried again; everything else recorded is final
      const stricter = prev?.status === 'rejected' && prev.gate !== null && prev.gate.threshold > threshold(!!c.promiseGate) + 1e-12;
      if (prev && !stricter) {
        if (!seen.has(key)) skipped++;
        seen.add(key);
        continue;
      }
      seen.add(key);
      if (performance.now() - t0 > budgetMs) {
        budgetStopped = true;
        notStarted += cands.length - i;
        return false;
      }
      log(`[${label}] ${c.name} (${key})`);
      const r = runOne(c);
      appendRecord(jsonl, r);
      byKey.set(key, r);
      evaluated++;
      o.onRecord?.(r, false);
      log(`  ${r.status}${r.metric !== null ? `: ${(100 * r.metric).toFixed(2)} % (drop ${r.drop!.toFixed(2)}), ${formatBytes(r.bytes!)}, b1 ${r.latency_ms_b1} ms, b32 ${r.latency_ms_b32} ms` : r.error ? `: ${r.error}` : ''} [${r.seconds} s]`);
      if (r.status !== 'measured' || !r.within) fs.rmSync(path.join(o.out, 'runs', key), { recursive: true, force: true });
    }
    return true;
  };


  // latency objective: re-time records within budget with the model, interleaved (see the file comment)
  let teacherConfirmed: Confirmed | null = null;
  const rounds = o.confirmRounds ?? 7;
  const retime = (recs: CandidateRecord[], what: string): void => {
    const pool = recs.filter((r) => fs.existsSync(path.join(o.out, 'runs', r.key, 'report.json')));
    if (rounds <= 0 || !pool.length) return;
    log(`timing the model and ${what} (${pool.length}) again, interleaved, ${rounds} rounds`);
    const models = new Map<string, Module>([['teacher', teacherModel], ...pool.map((r) => [r.key, fromPretrained(path.join(o.out, 'runs', r.key)) as Module] as [string, Module])]);
    const time = (inputs: ModelInputs) =>
      compareLatency(
        Object.fromEntries(
          [...models].map(([k, m]) => {
            m.eval();
            return [k, () => void noGrad(() => (m as unknown as { forward(x: ModelInputs): unknown }).forward(inputs))];
          }),
        ),
        { reference: 'teacher', rounds, warmup: 1, minMs: 20 },
      );
    const b1 = time(td.latencyInputs(1));
    const b32 = time(td.latencyInputs(32));
    const conf = (k: string): Confirmed => ({ latency_ms_b1: +b1.median[k]!.toFixed(3), latency_ms_b32: +b32.median[k]!.toFixed(3), speedup_b1: +b1.ratios[k]!.median.toFixed(3), speedup_b32: +b32.ratios[k]!.median.toFixed(3), rounds });
    teacherConfirmed = conf('teacher');
    for (const r of pool) r.confirmed = conf(r.key);
  };
  const sp = { maxDrop: o.maxDrop, trainSteps };
  const outcomes = () => [...byKey.values()].map(outcome);
  if (o.candidates) runPhase('list', o.candidates);
  else {
    const first = oneShotCandidates();
    void (
      runPhase('one-shot', first) &&
      runPhase('one-shot', mixedPrecision(outcomes(), first, sp)) &&
      runPhase('trained', followUps(outcomes(), first, sp)) &&
      (o.objective !== 'latency' || (retime([...byKey.values()].filter((r) => r.family === 'quant' && r.status === 'measured' && r.within), 'the quantization candidates within budget'), true)) &&
      runPhase('chain', chains(outcomes(), names)) &&
      runPhase('trained', trainedOnly(sp)) &&
      runPhase('chain', chains(outcomes(), names))
    );
  }
  if (budgetStopped) log(`budget of ${o.budgetMinutes} min reached: ${notStarted} candidate(s) of the current phase not started (later phases not generated); run the same command again, with a larger --budget-minutes, to continue`);

  // results: every record of this search folder
  const all = [...byKey.values()];
  const measured = all.filter((r) => r.status === 'measured' && r.metric !== null);
  if (o.objective === 'latency') retime(measured.filter((r) => r.within), 'the candidates within budget');
  const pareto = paretoFront(measured.map((r) => ({ key: r.key, metric: r.metric!, objective: objectiveOf(r, o.objective, batch)! })));
  const best = measured.filter((r) => r.within).sort((a, b) => cmp(a, b, o.objective, batch))[0] ?? null;

  let bestRecipe: string | null = null;
  let bestDir: string | null = null;
  if (best) {
    bestRecipe = path.join(o.out, 'best.json');
    bestDir = path.join(o.out, 'best');
    atomicWriteJson(bestRecipe, { description: `shrink search: ${best.name} — ${td.metric} ${(100 * best.metric!).toFixed(2)} % (teacher ${(100 * tMetric).toFixed(2)} %, max drop ${o.maxDrop}), objective ${o.objective}${o.objective === 'latency' ? ` b${batch}` : ''}`, model: modelArg, task: o.task, ...best.recipe });
    const src = path.join(o.out, 'runs', best.key);
    if (fs.existsSync(path.join(src, 'report.json'))) copyBest(src, bestDir);
    else {
      // its folder is gone (deleted by hand, or an older search): run the winner's recipe again
      log(`${best.name}: its folder is gone; running its recipe again into ${bestDir}`);
      compressFolder(modelDir, { recipe: { recipe: { ...best.recipe, task: o.task }, where: 'best.json' }, out: bestDir, task: o.task, force: true });
    }
  } else log(`no candidate kept ${td.metric} within ${o.maxDrop} points of the teacher; no best.json written`);
  // keep the folders worth looking at: within budget or on the front
  const keep = new Set([...pareto, ...measured.filter((r) => r.within).map((r) => r.key)]);
  for (const e of fs.readdirSync(path.join(o.out, 'runs'))) if (/^[0-9a-f]{12}$/.test(e) && !keep.has(e)) fs.rmSync(path.join(o.out, 'runs', e), { recursive: true, force: true });

  const result: SearchResult = {
    model: modelArg,
    task: o.task,
    objective: o.objective,
    batch,
    maxDrop: o.maxDrop,
    teacher,
    teacherConfirmed,
    records: all,
    pareto,
    best,
    bestRecipe,
    bestDir,
    reportHtml: null,
    evaluated,
    skipped,
    budgetStopped,
    notStarted,
    seconds: +((performance.now() - t0) / 1000).toFixed(1),
  };
  // the re-timing is not in candidates.jsonl (every run re-times): search.json keeps this run's, for readSearch
  const confirmed = Object.fromEntries(all.filter((r) => r.confirmed).map((r) => [r.key, r.confirmed!]));
  if (measured.length) {
    result.reportHtml = path.join(o.out, 'report.html');
    const { reports, options } = searchReports(result, o.out);
    atomicWriteFile(result.reportHtml, renderReport(reports, options));
  }
  atomicWriteJson(path.join(o.out, 'search.json'), { ...result, records: undefined, candidates: all.length, confirmed });
  return result;
}

/**
 * A finished search folder read back (search.json + candidates.jsonl, this run's re-timing re-attached), e.g. for
 * `shrink report <dir>`. Errors name the file.
 */
export function readSearch(dir: string): SearchResult {
  const file = path.join(dir, 'search.json');
  if (!fs.existsSync(file)) throw new ShrinkError(`${dir}: no search.json (expected a folder of shrink search that ran to its end)`, { file: dir });
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ShrinkError(`${file}: not valid JSON: ${(e as Error).message.split('\n')[0]}`, { file, cause: e });
  }
  if (typeof raw !== 'object' || raw === null) throw new ShrinkError(`${file}: expected the summary of shrink search (model, task, teacher, pareto, best)`, { file });
  const o = raw as Partial<SearchResult> & { confirmed?: Record<string, Confirmed> };
  const t = o.teacher as Partial<TeacherRow> | undefined;
  if (typeof o.model !== 'string' || typeof o.task !== 'string') throw new ShrinkError(`${file}: expected the summary of shrink search (model, task, teacher, pareto, best)`, { file });
  if (!t || typeof t.bytes !== 'number' || typeof t.params !== 'number' || typeof t.latency_ms_b1 !== 'number' || typeof t.latency_ms_b32 !== 'number' || typeof t.metric_name !== 'string')
    throw new ShrinkError(`${file}: teacher: expected the model's params, bytes, metric, metric_name and latencies`, { file });
  if (!Array.isArray(o.pareto)) throw new ShrinkError(`${file}: pareto: expected a list of candidate keys`, { file });
  if (typeof o.maxDrop !== 'number' || (o.objective !== 'latency' && o.objective !== 'bytes')) throw new ShrinkError(`${file}: expected maxDrop (a number) and objective (latency or bytes)`, { file });
  const records = readRecords(path.join(dir, 'candidates.jsonl'));
  for (const r of records) if (o.confirmed?.[r.key]) r.confirmed = o.confirmed[r.key];
  const best = o.best ? (records.find((r) => r.key === o.best!.key) ?? null) : null;
  return { ...(o as SearchResult), records, best, reportHtml: o.reportHtml ?? null };
}

function cmp(a: CandidateRecord, b: CandidateRecord, objective: Objective, batch: 1 | 32): number {
  const d = objectiveOf(a, objective, batch)! - objectiveOf(b, objective, batch)!;
  if (d !== 0) return d;
  const other = objective === 'bytes' ? objectiveOf(a, 'latency', 32)! - objectiveOf(b, 'latency', 32)! : a.bytes! - b.bytes!;
  return other !== 0 ? other : b.metric! - a.metric!;
}

/** Copy the winner's compress folder to `<dir>/best` (atomically), without the gate step in report.json. */
function copyBest(src: string, dest: string): void {
  writeDirAtomic(
    dest,
    (tmp) => {
      fs.cpSync(src, tmp, { recursive: true });
      const f = path.join(tmp, 'report.json');
      const rep = JSON.parse(fs.readFileSync(f, 'utf8')) as CompressReport & { recipe: { steps?: { method: string }[] } };
      rep.steps = rep.steps.filter((s) => s.method !== 'search.gate');
      if (rep.recipe.steps) rep.recipe.steps = rep.recipe.steps.filter((s) => s.method !== 'search.gate');
      rep.out = dest;
      rep.eval_command = rep.eval_command?.replace(src, dest) ?? null;
      atomicWriteJson(f, rep);
    },
    { force: true },
  );
}

const pct = (m: number | null) => (m === null ? '—' : (100 * m).toFixed(2));

/** The table: every candidate sorted by the objective (within budget, over it, then rejected / failed), Pareto front `*`, chosen `★`. */
export function formatSearch(r: SearchResult): string {
  // within budget first, then over it (each by the objective), then rejected and failed
  const measured = r.records.filter((x) => x.status === 'measured').sort((a, b) => Number(b.within) - Number(a.within) || cmp(a, b, r.objective, r.batch));
  const rest = r.records.filter((x) => x.status !== 'measured');
  const front = new Set(r.pareto);
  const t = r.teacher;
  const row = (x: CandidateRecord) => {
    const mark = `${r.best?.key === x.key ? '★' : ''}${front.has(x.key) ? '*' : ''}`;
    const status = x.status === 'measured' ? (x.within ? 'within' : `over (−${x.drop!.toFixed(2)})`) : x.status === 'rejected' ? `rejected early (${x.gate!.correct}/${x.gate!.subset}, upper ${pct(x.gate!.upper)} < ${pct(x.gate!.threshold)})` : `failed: ${(x.error ?? '').split('\n')[0]!.slice(0, 80)}`;
    const b32 = x.latency_ms_b32 === null ? '—' : `${x.latency_ms_b32.toFixed(1)}${x.before_latency_ms_b32 ? ` (${(x.latency_ms_b32 / x.before_latency_ms_b32).toFixed(2)}×)` : ''}`;
    const conf = x.confirmed ? `${x.confirmed.latency_ms_b1.toFixed(2)} / ${x.confirmed.latency_ms_b32.toFixed(1)} (${x.confirmed.speedup_b1.toFixed(2)}× / ${x.confirmed.speedup_b32.toFixed(2)}×)` : '—';
    return `| ${mark} | ${x.name} | ${x.phase} | ${pct(x.metric)}${x.drop !== null && x.status === 'measured' ? ` (${x.drop >= 0 ? '−' : '+'}${Math.abs(x.drop).toFixed(2)})` : ''} | ${x.bytes === null ? '—' : `${formatBytes(x.bytes)} (${(x.bytes / t.bytes).toFixed(2)}×)`} | ${x.latency_ms_b1 === null ? '—' : x.latency_ms_b1.toFixed(2)} | ${b32} | ${conf} | ${status} | ${x.seconds} |`;
  };
  const lines = [
    `| | candidate (search ${r.model}, ${r.task}, max drop ${r.maxDrop}, objective ${r.objective}${r.objective === 'latency' ? ` b${r.batch}` : ''}) | phase | ${t.metric_name} % (Δ) | bytes | b1 ms | b32 ms (÷ teacher, same run) | re-timed b1 / b32 ms (speed-up) | status | s |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    `| | teacher (uncompressed) | — | ${pct(t.metric)} | ${formatBytes(t.bytes)} | ${t.latency_ms_b1.toFixed(2)} | ${t.latency_ms_b32.toFixed(1)} | ${r.teacherConfirmed ? `${r.teacherConfirmed.latency_ms_b1.toFixed(2)} / ${r.teacherConfirmed.latency_ms_b32.toFixed(1)}` : '—'} | reference | |`,
    ...measured.map(row),
    ...rest.map(row),
    '',
    `★ chosen, * Pareto front (${t.metric_name} up, ${r.objective === 'bytes' ? 'bytes' : `latency b${r.batch}`} down; re-timed latency where there is one). ${r.evaluated} candidate(s) evaluated in this run, ${r.skipped} already in candidates.jsonl; ${r.seconds} s.` +
      (r.budgetStopped ? ` Budget of the run reached: ${r.notStarted} candidate(s) of the current phase not started; run again to continue.` : ''),
    r.best ? `best: ${r.best.name} → ${r.bestRecipe} (shrink compress --recipe ${r.bestRecipe} -o <dir>), model folder ${r.bestDir}` : `no candidate within ${r.maxDrop} points of the teacher`,
    ...(r.reportHtml ? [`plots: ${r.reportHtml} (Pareto plots of every measured candidate against bytes and latency; opens offline)`] : []),
  ];
  return lines.join('\n') + '\n';
}
