/**
 * `npm run fuzz -- <target|all> [--cases N] [--seed S] [--replay]`: mutation fuzzing of Shrink's readers
 * (targets in fuzz/readers.ts: safetensors, hf, checkpoint, recipe; a name with a file fuzz/targets/<name>.ts runs that file with the same options). Coverage-guided fuzzing with Jazzer.js was
 * tried and does not run here (see README "Fuzzing"), so this is a seeded mutation fuzzer over real files.
 *
 * Prints one JSON line per target: {target, cases, seconds, failures, distinct, seed}. Each distinct failure (by its
 * first line) is saved as fuzz/corpus/<target>/<hash>.json (file name → base64), which
 * test/fuzz/corpus.test.ts replays as a regression test. `--replay` runs only the saved corpus.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng } from './mutate.ts';
import { TARGETS, decodeCase, encodeCase, runCase, type Target } from './readers.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv: string[]): { targets: string[]; cases: number; seed: number; replay: boolean } {
  const targets: string[] = [];
  let cases = 1000;
  let seed = 1;
  let replay = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--cases') cases = Number(argv[++i]);
    else if (a === '--seed') seed = Number(argv[++i]);
    else if (a === '--replay') replay = true;
    else if (a.startsWith('-')) throw new Error(`fuzz: unknown option ${a}`);
    else targets.push(a);
  }
  if (!Number.isSafeInteger(cases) || cases < 0) throw new Error('fuzz: --cases must be a non-negative integer');
  if (!targets.length) throw new Error(`fuzz: name a target (${Object.keys(TARGETS).join(', ')}, or all)`);
  const names = targets.includes('all') ? Object.keys(TARGETS) : targets;
  for (const t of names)
    if (!TARGETS[t] && !external(t)) throw new Error(`fuzz: unknown target '${t}' (${[...Object.keys(TARGETS), ...externalNames()].join(', ')})`);
  return { targets: names, cases, seed, replay };
}

/** Targets kept in their own files (fuzz/targets/<name>.ts, each with its own command line and summary). */
function externalNames(): string[] {
  const d = path.join(HERE, 'targets');
  return fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)) : [];
}
function external(t: string): string | null {
  const f = path.join(HERE, 'targets', `${t}.ts`);
  return /^[\w-]+$/.test(t) && fs.existsSync(f) ? f : null;
}

function corpusDir(t: string): string {
  return path.join(HERE, 'corpus', t);
}

function fuzz(t: Target, cases: number, seed: number): void {
  const t0 = performance.now();
  const seeds = t.seeds();
  const rng = new Rng(seed);
  const distinct = new Map<string, string>();
  let failures = 0;
  for (let i = 0; i < cases; i++) {
    const c = i < seeds.length ? seeds[i]! : t.mutate(rng, seeds);
    const r = runCase(t, c);
    if (!r) continue;
    failures++;
    const key = r.split('\n')[0]!.replace(/'[^']*'|"[^"]*"|\/tmp\/\S+/g, 'S').replace(/\d+/g, 'N').slice(0, 90);
    if (distinct.has(key)) continue;
    const enc = encodeCase(c);
    const id = crypto.createHash('sha1').update(enc).digest('hex').slice(0, 12);
    distinct.set(key, id);
    fs.mkdirSync(corpusDir(t.name), { recursive: true });
    fs.writeFileSync(path.join(corpusDir(t.name), `${id}.json`), enc);
    process.stderr.write(`[${t.name}] case ${i}: ${r}\n  saved fuzz/corpus/${t.name}/${id}.json\n`);
  }
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  console.log(JSON.stringify({ target: t.name, cases, seconds, failures, distinct: distinct.size, seed }));
}

function replay(t: Target): void {
  const dir = corpusDir(t.name);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  const t0 = performance.now();
  let failures = 0;
  for (const f of files) {
    const r = runCase(t, decodeCase(fs.readFileSync(path.join(dir, f), 'utf8')));
    if (r) {
      failures++;
      process.stderr.write(`[${t.name}] ${f}: ${r}\n`);
    }
  }
  console.log(JSON.stringify({ target: t.name, cases: files.length, seconds: Math.round((performance.now() - t0) / 100) / 10, failures, replay: true }));
}

try {
  const o = parseArgs(process.argv.slice(2));
  for (const name of o.targets) {
    const file = TARGETS[name] ? null : external(name);
    if (file) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', file, '--cases', String(o.cases), '--seed', String(o.seed)], { stdio: 'inherit' });
      if (r.status !== 0) process.exitCode = r.status ?? 1;
      continue;
    }
    (o.replay ? replay : (t: Target) => fuzz(t, o.cases, o.seed))(TARGETS[name]!);
  }
} catch (e) {
  console.error(`fuzz: ${(e as Error).message}`.replace(/^fuzz: fuzz: /, "fuzz: "));
  process.exit(2);
}
