/**
 * Output folders: check early, write atomically.
 *
 * `checkOutDir` runs before any long work (training, quantization) so a bad `-o` fails at once with one line
 * naming the path: a folder under /proc or /sys, a parent that is a file or not writable, an output that is a
 * file, or a non-empty folder (unless `force`).
 *
 * `writeDirAtomic` fills a fresh temporary sibling `.<name>.tmp-<pid>-<rand>` and only then swaps it into place:
 * an existing `out` is first renamed aside to `.<name>.old-<pid>-<rand>`, the new folder renamed to `out`, and the
 * old one removed. A run that dies at any point (error, Ctrl-C, kill -9) leaves `out` as it was, or — killed in
 * the instant between the two renames — its old content beside it, which the next run puts back. Temp siblings of
 * the same `out` whose process is gone are removed by the next `writeDirAtomic`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { atomicWriteJson, syncDir } from './atomic.ts';

export interface OutDirOptions {
  force?: boolean;
}

/** Pseudo filesystems a model folder can never live on (statfs f_type). */
const KERNEL_FS: Record<number, string> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0xcafe4a11: 'bpf',
  0x1cd1: 'devpts',
};

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return null;
    if (errnoOf(e) === 'ENOTDIR') return null; // a path component is a file: reported by the caller's walk
    throw new Error(`output folder: cannot read ${p} (${errnoOf(e) ?? (e as Error).message})`);
  }
}

/** The kernel filesystem `p` (an existing path) is on, or null for a normal one. */
function kernelFs(p: string): string | null {
  let real = p;
  try {
    real = fs.realpathSync(p);
  } catch {
    // keep p
  }
  for (const root of ['/proc', '/sys']) if (real === root || real.startsWith(root + '/')) return root === '/proc' ? 'proc' : 'sysfs';
  try {
    const type = fs.statfsSync(real).type;
    return KERNEL_FS[type] ?? null;
  } catch {
    return null;
  }
}

function isWritable(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Check before any long work that `out` can be written: its parent is (or can be created as) a writable directory
 * on a normal filesystem (refuse /proc, /sys), `out` is not a file, and is absent or empty unless force. Throws one
 * clear Error naming the path and what is wrong, e.g. "output folder out/x exists and is not empty (use --force to
 * replace it)".
 */
export function checkOutDir(out: string, opts: OutDirOptions = {}): void {
  checkOut(out, opts.force ? 'replace' : 'empty');
}

/**
 * The path checks of checkOutDir only (a normal filesystem, a writable parent, not a file), for folders a command
 * writes into without replacing them (resumable run folders: see openRunDir).
 */
export function checkOutPath(out: string): void {
  checkOut(out, 'path');
}

/** empty: `out` must be absent or empty; replace: it may hold anything but will be replaced; path: no content check. */
function checkOut(out: string, mode: 'empty' | 'replace' | 'path'): void {
  if (typeof out !== 'string' || out.trim() === '') throw new Error('output folder: the path is empty');
  const abs = path.resolve(out);
  if (abs === path.parse(abs).root) throw new Error(`output folder ${out} is the filesystem root; choose a folder below it`);
  // the nearest existing ancestor decides the filesystem and whether the missing part can be created
  let anc = abs;
  let st = statOrNull(anc);
  while (!st) {
    const up = path.dirname(anc);
    if (up === anc) break;
    anc = up;
    st = statOrNull(anc);
  }
  if (!st) throw new Error(`output folder ${out}: no part of the path exists`);
  const fsName = kernelFs(anc);
  if (fsName) throw new Error(`output folder ${out} is on ${fsName === 'proc' ? '/proc' : fsName === 'sysfs' ? '/sys' : `a ${fsName} filesystem`}, a kernel filesystem; choose a folder on a disk`);
  if (anc === abs) {
    if (!st.isDirectory()) throw new Error(`output folder ${out} exists and is a file, not a folder`);
    // a folder written in place needs to be writable itself; one replaced by a rename needs a writable parent
    if (mode === 'path' && !isWritable(abs)) throw new Error(`output folder ${out} is not writable`);
    if (mode !== 'path' && !isWritable(path.dirname(abs))) throw new Error(`output folder ${out}: its parent folder ${path.dirname(out)} is not writable`);
    // --force replaces a folder's content: never the working directory, one of its parents, or the home folder
    const cwd = process.cwd();
    if (mode === 'replace' && (abs === cwd || cwd.startsWith(abs + path.sep) || abs === os.homedir()))
      throw new Error(`output folder ${out} is ${abs === os.homedir() ? 'your home folder' : 'the working directory or one of its parents'}; Shrink will not replace it, even with --force: choose a new folder`);
    if (mode === 'empty') {
      let entries: string[];
      try {
        entries = fs.readdirSync(abs);
      } catch (e) {
        throw new Error(`output folder ${out}: cannot list it (${errnoOf(e) ?? (e as Error).message})`);
      }
      if (entries.length > 0) throw new Error(`output folder ${out} exists and is not empty (use --force to replace it)`);
    }
    return;
  }
  const ancShown = path.relative(process.cwd(), anc) || '.';
  if (!st.isDirectory()) throw new Error(`cannot create output folder ${out}: ${path.isAbsolute(out) ? anc : ancShown} is a file, not a folder`);
  if (!isWritable(anc)) throw new Error(`cannot create output folder ${out}: ${path.isAbsolute(out) ? anc : ancShown} is not writable`);
}

const TMP_RE = /^\.(.+)\.(tmp|old)-(\d+)-[0-9a-f]+$/;

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) === 'EPERM';
  }
}

/**
 * Remove temp siblings of `out` left by killed runs; an `.old` sibling (a run killed between its two renames)
 * is put back as `out` when `out` is missing.
 */
function cleanStale(out: string): void {
  const abs = path.resolve(out);
  const parent = path.dirname(abs);
  const base = path.basename(abs);
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return; // no parent yet: nothing stale
  }
  const stale = names
    .map((n) => ({ n, m: TMP_RE.exec(n) }))
    .filter((x): x is { n: string; m: RegExpExecArray } => x.m !== null && x.m[1] === base && !alive(Number(x.m[3])));
  for (const { n, m } of stale.filter((x) => x.m[2] === 'old'))
    if (!fs.existsSync(abs)) fs.renameSync(path.join(parent, n), abs);
    else fs.rmSync(path.join(parent, n), { recursive: true, force: true });
  for (const { n } of stale.filter((x) => x.m[2] === 'tmp')) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
}


/**
 * Write a whole folder atomically: `fill(tmp)` fills a fresh temporary sibling folder (.<name>.tmp-<pid>-<rand>);
 * when it returns, the temp folder replaces `out` (an existing `out` is kept until the new one is complete, then
 * removed); on error or interrupt the temp folder is removed and `out` is untouched. Stale temp siblings of the
 * same `out` from killed runs (pid no longer alive) are removed first. Returns fill's result.
 *
 * `fill` must be synchronous. Without `force` a non-empty existing `out` is refused (checkOutDir).
 */
export function writeDirAtomic<T>(out: string, fill: (tmp: string) => T, opts: OutDirOptions = {}): T {
  cleanStale(out);
  checkOutDir(out, opts);
  const abs = path.resolve(out);
  const parent = path.dirname(abs);
  const base = path.basename(abs);
  fs.mkdirSync(parent, { recursive: true });
  const rand = () => crypto.randomBytes(4).toString('hex');
  const tmp = path.join(parent, `.${base}.tmp-${process.pid}-${rand()}`);
  fs.mkdirSync(tmp);
  let result: T;
  try {
    result = fill(tmp);
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function')
      throw new Error('writeDirAtomic: fill must be synchronous (it returned a promise)');
    syncDir(tmp);
    if (fs.existsSync(abs)) {
      const old = path.join(parent, `.${base}.old-${process.pid}-${rand()}`);
      fs.renameSync(abs, old);
      try {
        fs.renameSync(tmp, abs);
      } catch (e) {
        fs.renameSync(old, abs);
        throw e;
      }
      syncDir(parent);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, abs);
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  syncDir(parent);
  return result;
}

/** The file that marks a folder as a Shrink training run: the settings of the command, and its result once done. */
export const RUN_FILE = 'shrink-run.json';

export interface RunRecord {
  /** The settings that define the run (same settings: the same run, resumable). */
  run: Record<string, unknown>;
  /** Set when the run finished. */
  result?: Record<string, unknown>;
}

export interface RunDirState {
  /** new: start from step 0; resume: continue from `step`; finished: the run is complete (`record.result`). */
  state: 'new' | 'resume' | 'finished';
  /** The checkpoint step a resumed run continues from (0 for a new run). */
  step: number;
  record: RunRecord;
}

export interface RunDirOptions extends OutDirOptions {
  /** Folder holding RUN_FILE and the checkpoints (`latest`); default `out` itself. */
  checkpointDir?: string;
  /** Whether the folder holds the run's finished output. */
  finished?: () => boolean;
}

function readRunRecord(file: string): RunRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as RunRecord;
    return r && typeof r === 'object' && r.run && typeof r.run === 'object' ? r : null;
  } catch {
    return null;
  }
}

/** Remove everything inside `dir` (not `dir` itself: it may be a mount point or the working directory). */
function emptyDir(dir: string): void {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
}

/** The settings that differ between two runs, as "key a there, b now" (a: the folder's run, b: this command). */
function settingsDiff(was: Record<string, unknown>, now: Record<string, unknown>): string {
  const keys = [...new Set([...Object.keys(was), ...Object.keys(now)])];
  const show = (v: unknown) => (v === undefined ? 'unset' : typeof v === 'string' ? v : JSON.stringify(v));
  return keys
    .filter((k) => JSON.stringify(was[k]) !== JSON.stringify(now[k]))
    .map((k) => `${k} ${show(was[k])} there, ${show(now[k])} now`)
    .join(', ');
}

/**
 * Open the folder of a resumable run (`shrink train -o`, `shrink pretrain`). A new or empty folder starts a new
 * run (RUN_FILE records `run`); a folder holding a run with the same settings resumes from its `latest`
 * checkpoint, or is reported finished; anything else — files that are not a Shrink run, or a run with other
 * settings — is refused unless `force`, which empties the folder and starts over (as it does for a finished run).
 * Path problems fail as in checkOutDir.
 */
export function openRunDir(out: string, run: Record<string, unknown>, opts: RunDirOptions = {}): RunDirState {
  checkOut(out, opts.force ? 'replace' : 'path');
  const abs = path.resolve(out);
  const ckpt = opts.checkpointDir ?? abs;
  const runFile = path.join(ckpt, RUN_FILE);
  const fresh = (): RunDirState => {
    if (fs.existsSync(abs)) emptyDir(abs);
    fs.mkdirSync(ckpt, { recursive: true });
    const record: RunRecord = { run };
    atomicWriteJson(runFile, record);
    return { state: 'new', step: 0, record };
  };
  if (!fs.existsSync(abs) || fs.readdirSync(abs).length === 0) return fresh();
  const record = readRunRecord(runFile);
  if (!record) {
    if (opts.force) return fresh();
    throw new Error(`output folder ${out} exists and is not empty, and is not a Shrink training run (no ${path.relative(abs, runFile)}) (use --force to replace it)`);
  }
  const diff = settingsDiff(record.run, run);
  if (diff) {
    if (opts.force) return fresh();
    throw new Error(`output folder ${out} holds a Shrink training run with other settings (${diff}) (use --force to replace it, or choose another folder)`);
  }
  if (opts.force) return fresh();
  if (record.result && (opts.finished?.() ?? true)) return { state: 'finished', step: Number(record.result.steps ?? 0), record };
  let step = 0;
  const latest = path.join(ckpt, 'latest');
  if (fs.existsSync(latest)) {
    const m = /^checkpoint-(\d+)$/.exec(fs.readFileSync(latest, 'utf8').trim());
    if (m && fs.existsSync(path.join(ckpt, m[0], 'state.json'))) step = Number(m[1]);
  }
  return { state: step > 0 ? 'resume' : 'new', step, record };
}

/** Record a finished run's result in its RUN_FILE (atomically). */
export function finishRunDir(checkpointDir: string, record: RunRecord, result: Record<string, unknown>): RunRecord {
  const done: RunRecord = { ...record, result };
  atomicWriteJson(path.join(checkpointDir, RUN_FILE), done);
  return done;
}
