// Shared helpers of the CLI tests: run `shrink` as a child process (to completion, or started and signalled
// mid-run), or in-process for error paths (fast: no process start-up), and a tiny random BERT folder.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BertForMaskedLM, bertConfig, savePretrained } from '../../src/index.ts';
import { main } from '../../src/cli/main.ts';

export const root = path.resolve(import.meta.dirname, '../..');
export const bin = path.join(root, 'bin/shrink.js');

/** Run `shrink args…` to completion in a child process. */
export const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: root });

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Start `shrink args…` in a child process; `done` resolves when it has exited. */
export function start(args: string[], opts: { cwd?: string } = {}): { child: ReturnType<typeof spawn>; done: Promise<Finished>; stderr: () => string } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd ?? root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Finished>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, stderr: () => stderr };
}

/** Poll `cond` every 5 ms until it holds; fails if the process ends first or after `ms`. */
export async function waitFor(cond: () => boolean, done: Promise<Finished>, what: string, ms = 120_000): Promise<void> {
  let ended: Finished | null = null;
  void done.then((f) => (ended = f));
  const t0 = Date.now();
  while (!cond()) {
    if (ended) throw new Error(`the process ended before ${what}: ${JSON.stringify(ended)}`);
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Run the CLI in this process (for errors that come before any work); returns the exit code and stderr. */
export async function cli(...args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write;
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += typeof s === 'string' ? s : Buffer.from(s).toString('utf8');
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), stderr };
  } finally {
    process.stderr.write = write;
  }
}

export const tmpDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** A tiny random BERT MLM folder (hidden 16, 1 layer) with the bert-base-uncased vocabulary. */
export function tinyBert(dir: string): string {
  const vocab = fs.readFileSync(path.join(root, 'data/tokenizers/bert-base-uncased/vocab.txt'), 'utf8');
  const n = vocab.trimEnd().split('\n').length;
  const model = new BertForMaskedLM(bertConfig({ vocab_size: n, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, architectures: ['BertForMaskedLM'] }));
  savePretrained(model, dir);
  fs.writeFileSync(path.join(dir, 'vocab.txt'), vocab);
  return dir;
}
