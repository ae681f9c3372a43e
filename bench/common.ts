import os from 'node:os';
import { backend, getNumThreads, kernelLabel } from '../src/backend/registry.ts';
import { compareLatency, type CompareResult } from '../src/eval/latency.ts';
import type { ModelInputs } from '../src/models/outputs.ts';
import { noGrad } from '../src/tensor/autograd.ts';

/**
 * What the benchmarks share: command-line arguments, the machine line, interleaved batch-1 / batch-32 latency.
 *
 * Command-line arguments of the benchmarks (bench/*.ts): `--flag` switches and `--key value` pairs, every other
 * argument an error naming the script and listing what it takes.
 */
export interface BenchArgs {
  /** Whether a switch is present. */
  has(flag: string): boolean;
  /** The value after `key`, or undefined. */
  arg(key: string): string | undefined;
  /** An integer ≥ min after `key` (dflt when absent); anything else is an error naming the key. */
  intArg(key: string, dflt: number, min: number): number;
}

export function benchArgs(script: string, flags: readonly string[], valued: readonly string[], argv: readonly string[] = process.argv.slice(2)): BenchArgs {
  for (let i = 0; i < argv.length; i++) {
    if (flags.includes(argv[i]!)) continue;
    if (valued.includes(argv[i]!) && argv[i + 1] !== undefined) {
      i++;
      continue;
    }
    throw new Error(`${script}: unknown or incomplete argument '${argv[i]}' (options: ${[...valued.map((v) => `${v} <value>`), ...flags].join(', ')})`);
  }
  const arg = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    has: (f) => argv.includes(f),
    arg,
    intArg: (k, dflt, min) => {
      const v = arg(k);
      const n = v === undefined ? dflt : Number(v);
      if (!(Number.isInteger(n) && n >= min)) throw new Error(`${k} must be an integer ≥ ${min}, got ${v}`);
      return n;
    },
  };
}

/** The machine a table was measured on: CPU, cores, threads, backend and kernels, load average. */
export function machineLine(): string {
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${getNumThreads()} thread(s), backend ${backend().name} (${kernelLabel(['sgemm', 'elementwise', 'nn'])}), load average ${os.loadavg()[0]!.toFixed(1)}`;
}

type Forwardable = { forward(i: ModelInputs): unknown };
export type BatchLatency = Record<'b1' | 'b32', CompareResult>;

/**
 * Every model timed INTERLEAVED round by round at batch 1 and at batch 32 against `models.teacher` (compareLatency:
 * 1 untimed warm-up each, then `rounds` rounds, each turn repeating its forward for ≥ minMs).
 */
export function batchLatency(models: Record<string, Forwardable>, inputs: Record<'b1' | 'b32', ModelInputs>, rounds: number, minMs: number, log: (s: string) => void): BatchLatency {
  return Object.fromEntries(
    (['b1', 'b32'] as const).map((b) => {
      log(`latency ${b}: ${Object.keys(models).length} models interleaved, 1 warm-up + ${rounds} rounds of ≥ ${minMs} ms…`);
      const fns = Object.fromEntries(Object.entries(models).map(([k, m]) => [k, () => void noGrad(() => m.forward(inputs[b]))]));
      return [b, compareLatency(fns, { reference: 'teacher', rounds, warmup: 1, minMs })];
    }),
  ) as BatchLatency;
}

const r4 = (x: number) => +x.toFixed(4);
/** One model's latency fields of a --json row: best ms at b1 / b32 and the median (min, max) speed-up against the teacher. */
export function latencyFields(lat: BatchLatency, k: string): Record<string, number> {
  return {
    latency_ms_b1: r4(lat.b1.best[k]!),
    latency_ms_b32: r4(lat.b32.best[k]!),
    speedup_b1: r4(lat.b1.ratios[k]!.median),
    speedup_b1_min: r4(lat.b1.ratios[k]!.min),
    speedup_b1_max: r4(lat.b1.ratios[k]!.max),
    speedup_b32: r4(lat.b32.ratios[k]!.median),
    speedup_b32_min: r4(lat.b32.ratios[k]!.min),
    speedup_b32_max: r4(lat.b32.ratios[k]!.max),
  };
}
