/**
 * `shrink search <model> --task <task> --max-drop 1.0 --objective latency|bytes [--budget-minutes N] [--batch 32]
 * -o <dir> [--json]`: the fastest (or smallest) recipe across the method families whose dev metric stays within
 * --max-drop points of the model; every candidate measured by `shrink compress`'s code. The search itself is
 * src/search/index.ts (candidate space and order: src/search/space.ts).
 */
import type { Command } from 'commander';
import { formatSearch, search, type CandidateRecord, type Objective } from '../search/index.ts';

function num(flag: string, check: (n: number) => boolean, what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new Error(`${flag} must be ${what}, got '${v}'`);
    return n;
  };
}

/** Add `shrink search` to the program. */
export function registerSearch(program: Command, out: (s: string) => void): void {
  program
    .command('search')
    .description('Search recipes across the compression methods for the fastest (or smallest) model within an accuracy budget; resumable, writes <dir>/best.json and <dir>/best/')
    .argument('<model>', 'model folder (a fine-tuned classifier, e.g. data/models/bert-teacher-sst2) or teacher:<task>')
    .option('-t, --task <task>', 'GLUE task the metric is measured on (sst2, mrpc, rte, cola)')
    .option('--max-drop <points>', 'largest allowed drop of the dev metric, in points', num('--max-drop', (n) => n >= 0, 'a number of points >= 0'), 1.0)
    .option('--objective <what>', 'what to minimize among candidates within the budget: latency or bytes', 'latency')
    .option('--batch <n>', 'the latency the latency objective minimizes: batch 1 or 32', num('--batch', (n) => n === 1 || n === 32, '1 or 32'), 32)
    .option('--budget-minutes <n>', 'start no new candidate after this many minutes (the running one finishes)', num('--budget-minutes', (n) => n > 0, 'a positive number of minutes'))
    .option('--subset <n>', 'dev examples scored first for early rejection (0: off)', num('--subset', (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer'), 256)
    .option('--train-steps <n>', 'fine-tuning steps of trained candidates', num('--train-steps', (n) => Number.isInteger(n) && n >= 1, 'a positive integer'), 60)
    .option('-o, --out <dir>', 'search folder: candidates.jsonl, best.json, best/ (an earlier search there is resumed)')
    .option('--json', 'print one JSON line per candidate and a final summary line')
    .action((modelArg: string, o: { task?: string; maxDrop: number; objective: string; batch: number; budgetMinutes?: number; subset: number; trainSteps: number; out?: string; json?: boolean }) => {
      if (!o.task) throw new Error('search needs --task <task> (sst2, mrpc, rte, cola)');
      if (!o.out) throw new Error('search needs -o/--out <dir>');
      if (o.objective !== 'latency' && o.objective !== 'bytes') throw new Error(`--objective must be latency or bytes, got '${o.objective}'`);
      const err = (s: string) => process.stderr.write(s + '\n');
      const r = search(modelArg, {
        task: o.task,
        maxDrop: o.maxDrop,
        objective: o.objective as Objective,
        batch: o.batch as 1 | 32,
        budgetMinutes: o.budgetMinutes,
        gateSubset: o.subset,
        trainSteps: o.trainSteps,
        out: o.out,
        log: o.json ? undefined : err,
        onRecord: o.json ? (rec: CandidateRecord, resumed: boolean) => out(JSON.stringify({ event: 'candidate', resumed, ...rec }) + '\n') : undefined,
      });
      if (o.json) out(JSON.stringify({ event: 'result', ...r, records: undefined, best: r.best?.key ?? null, bestName: r.best?.name ?? null }) + '\n');
      else {
        out(formatSearch(r));
        if (r.budgetStopped) err(`shrink: budget of ${o.budgetMinutes} min reached; ${r.notStarted} candidate(s) not started; run the same command again to continue`);
        if (!r.best) err(`shrink: warning: no candidate stayed within ${o.maxDrop} points of the model`);
      }
    });
}
