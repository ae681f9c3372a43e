/**
 * Streaming compression of a model folder, one transformer block at a time, for checkpoints larger than memory
 * (`shrink compress --stream`, `shrink quantize`).
 *
 * The model skeleton is built without initialising its weights (the untouched pages cost no memory). Each block in
 * turn is read from the file, compressed, and handed to a {@link StreamingCheckpoint}: its tensors join the output
 * shard being filled, and once that shard is on disk the block is *hollowed* — every large array in it is swapped
 * for a zero-filled one of the same length viewing a shared buffer the OS never backs with memory, so the block
 * keeps its structure (for config.json's description at the end) while its memory comes back. The parts
 * outside the blocks (embeddings, final norm, head) come last.
 *
 * Peak memory is therefore about: the largest block as float32 and its compressed output, plus the output shard
 * being filled (≤ max shard size + one block), plus the runtime — independent of the number of blocks.
 * {@link streamBound} computes that figure for a model; the commands report it beside the measured peak RSS.
 *
 * Methods take part by declaring `stream` (method.ts): which modules a config rewrites, each from its own weights
 * alone, so a block can be compressed without the others.
 */
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Module, type LazyTensor } from '../nn/module.ts';
import { Tensor } from '../tensor/tensor.ts';
import type { TypedArray } from '../tensor/dtype.ts';
import { noGrad } from '../tensor/autograd.ts';
import { withoutInit } from '../nn/init.ts';
import { anatomy } from '../models/anatomy.ts';
import { describeForSave, modelFromConfig } from '../models/registry.ts';
import { findWeights, openWeights, readConfig } from '../io/hf.ts';
import { atomicWriteJson } from '../io/atomic.ts';
import { DEFAULT_MAX_SHARD_BYTES, ShardWriter, type ShardsWritten } from '../io/shards.ts';
import { checkOutDir, writeDirAtomic, type OutDirOptions } from '../io/outdir.ts';
import { copyTokenizerFiles } from '../io/tokenizer-files.ts';
import type { Method, RecipeContext } from './method.ts';

/** The process's peak resident set size so far, in MiB (getrusage maxrss). */
export function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** Total bytes of a folder's weight files. */
export function weightsBytes(dir: string): number {
  return findWeights(dir).reduce((s, f) => s + fs.statSync(f).size, 0);
}

const HOLLOW_MIN = 1024;

let zeros = new ArrayBuffer(0);
/**
 * The buffer every hollowed array views: allocated zero-filled, never written, so the OS backs none of it with
 * memory however many arrays view it (fresh zero arrays of their own would not do: an allocation that reuses freed
 * heap memory is zeroed by writing it, which measured ~90 MiB more resident memory per 1.1 B block).
 */
function zeroBuffer(bytes: number): ArrayBuffer {
  if (zeros.byteLength < bytes) zeros = new ArrayBuffer(Math.max(bytes, 2 * zeros.byteLength));
  return zeros;
}

let gcFn: (() => void) | null | undefined;
/**
 * A full garbage collection now, so the arrays of a block just written and hollowed go back to the OS before the
 * next block's are allocated. V8 collects array buffers lazily: pruning a 92 M-parameter model block by block ended
 * at 444 MiB resident without it and 228 MiB with it (measured). Uses the runtime's gc() (node started with
 * --expose-gc) or turns it on through the V8 flag; a no-op where neither works.
 */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else
      try {
        v8.setFlagsFromString('--expose-gc');
        gcFn = vm.runInNewContext('gc') as () => void;
      } catch {
        gcFn = null;
      }
  }
  gcFn?.();
}

/**
 * Give a finished part of a model its memory back while keeping its structure: every typed array of at least 1,024
 * elements reachable from its modules' fields (tensor storage, integer codes, caches) is replaced by a zero-filled
 * array of the same type and length that views one shared, never-written buffer ({@link zeroBuffer}). Arrays shared
 * between fields stay shared (one replacement each), so identity-based bookkeeping (tied weights, shared codes) still
 * sees what it saw. The part must not be run or saved afterwards: its values are gone.
 */
export function hollowOut(part: Module): void {
  const fresh = new Map<TypedArray, TypedArray>();
  const swap = (a: TypedArray): TypedArray => {
    if (a.length < HOLLOW_MIN) return a;
    let b = fresh.get(a);
    if (!b) {
      b = new (a.constructor as new (buf: ArrayBuffer, offset: number, n: number) => TypedArray)(zeroBuffer(a.byteLength), 0, a.length);
      fresh.set(a, b);
    }
    return b;
  };
  const seen = new Set<object>();
  const visit = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (ArrayBuffer.isView(v)) return v instanceof DataView ? v : swap(v as TypedArray);
    if (v instanceof Module || seen.has(v) || depth > 4) return v;
    seen.add(v);
    if (v instanceof Tensor) {
      v.data = swap(v.data);
      if (v.grad) v.grad = null;
      return v;
    }
    if (v instanceof Map) {
      for (const [k, x] of v) {
        const y = visit(x, depth + 1);
        if (y !== x) v.set(k, y);
      }
      return v;
    }
    const proto = Object.getPrototypeOf(v);
    if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) return v;
    for (const k of Object.keys(v)) {
      const x = (v as Record<string, unknown>)[k];
      const y = visit(x, depth + 1);
      if (y !== x) (v as Record<string, unknown>)[k] = y;
    }
    return v;
  };
  for (const m of part.modules()) {
    for (const k of Object.keys(m)) {
      const x = (m as unknown as Record<string, unknown>)[k];
      if (x instanceof Module) continue;
      const y = visit(x, 0);
      if (y !== x) (m as unknown as Record<string, unknown>)[k] = y;
    }
  }
}

/** Whether checkpoint key or module name `name` lies inside the part at `prefix`. */
export const inside = (name: string, prefix: string) => name.startsWith(`${prefix}.`);

/**
 * The output folder of a streaming pass: parts (blocks) are finished one at a time with {@link partDone}; the rest
 * of the model and config.json with {@link finish}. Shards are written as the queue fills (ShardWriter).
 */
export class StreamingCheckpoint {
  private readonly writer: ShardWriter;
  private readonly done: string[] = [];
  /** Parts queued in the shard not yet written (hollowed once it is). */
  private queued: Module[] = [];

  /** `dir` gets config.json and the named shards; `shardDir` (default `dir`) holds the shards until then. */
  constructor(
    private readonly model: Module & { config: Record<string, unknown> },
    private readonly dir: string,
    opts: { maxShardBytes?: number; metadata?: Record<string, string>; shardDir?: string } = {},
  ) {
    this.writer = new ShardWriter(opts.shardDir ?? dir, { ...opts, finalDir: dir });
  }

  /** Write what is queued now (a checkpoint needs it on disk) and hollow the parts it held; returns the shards so far. */
  flush(): ShardsWritten {
    this.writer.flush();
    this.hollowWritten();
    return this.writer.written();
  }

  /** The queued parts are on disk: hollow them, and let the memory go. */
  private hollowWritten(): void {
    for (const p of this.queued) hollowOut(p);
    this.queued = [];
    collectGarbage();
  }

  /** A resumed pass: these parts and shards were written by the interrupted run (the parts stand hollow in the model). */
  restore(parts: string[], shards: ShardsWritten): void {
    this.writer.restore(shards);
    this.done.push(...parts);
  }

  /** The part at `prefix` is final: queue its tensors; once they are on disk, hollow it. */
  partDone(prefix: string): void {
    const part = this.model.getSubmodule(prefix);
    this.done.push(prefix);
    this.queued.push(part);
    const tensors = [...part.stateDict({ forSave: true })].map(([k, t]): [string, Tensor] => [`${prefix}.${k}`, t]);
    if (this.writer.add(tensors)) this.hollowWritten();
    else collectGarbage(); // the block's float weights (the modules it replaced)
  }

  /**
   * Write everything outside the finished parts, name the shards, and write config.json (the model's description,
   * as savePretrained makes it, passed through `patch`). Returns the weight files' names.
   */
  finish(patch: (config: Record<string, unknown>) => Record<string, unknown> = (c) => c): string[] {
    const { config, dropKeys } = describeForSave(this.model);
    const rest = [...this.model.stateDict({ forSave: true })].filter(([k]) => !dropKeys.has(k) && !this.done.some((p) => inside(k, p)));
    this.writer.add(rest);
    const files = this.writer.finish();
    atomicWriteJson(path.join(this.dir, 'config.json'), patch(config));
    return files;
  }
}

/**
 * Checkpoint tensors by key, a tied key falling back on its twin: `load` reads one as the file stores it, `read`
 * copies one into a skeleton's tensor, checking the shape.
 */
export function weightReader(src: string, model: Module, weights: Map<string, LazyTensor>): { load(key: string): Tensor; read(key: string, into: Tensor): void } {
  const twins = new Map<string, string>();
  for (const [a, b] of Object.entries(model.tiedKeys())) {
    twins.set(a, b);
    twins.set(b, a);
  }
  const load = (key: string): Tensor => {
    const v = (weights.get(key) ?? (twins.has(key) ? weights.get(twins.get(key)!) : undefined))?.load();
    if (!v) throw new Error(`${src}: weights have no tensor '${key}' (${(model as object).constructor.name} needs it)`);
    return v;
  };
  return {
    load,
    read: (key, into) => {
      const v = load(key);
      if (v.shape.join() !== into.shape.join()) throw new Error(`${src}: '${key}' has shape [${v.shape}] in the checkpoint, the model expects [${into.shape}]`);
      noGrad(() => into.copy_(v));
    },
  };
}

/**
 * The transformer blocks' module paths, in order (the streaming unit); a clear error for a model without them, or
 * (with `required` false) none.
 */
export function streamParts(model: Module, src: string, required = true): string[] {
  let blocks: string[] = [];
  try {
    blocks = anatomy(model).blocks.map((b) => b.path);
  } catch (e) {
    if (!required) return [];
    throw new Error(`${src}: cannot stream ${(model as object).constructor.name}: ${(e as Error).message}`);
  }
  if (!required) return blocks;
  if (!blocks.length) throw new Error(`${src}: cannot stream ${(model as object).constructor.name}: it has no transformer blocks`);
  return blocks;
}

/** What the JS heap, compiled code and the addon's scratch add to the resident set during a pass (measured: ~100 MiB). */
const HEAP_GROWTH_MB = 128;

/**
 * The memory a streaming pass needs, in MiB, by the formula in the file comment: twice the largest part (a block,
 * or everything outside the blocks) as float32 — the weights and at most as much output — plus the output shard
 * queue (max shard size + one block of output), plus `extraMb` (calibration activations, Hessians) and the runtime
 * (`runtimeMb`, measured at the start, and 128 MiB for the heap's growth during the pass).
 */
export function streamBound(model: Module, parts: string[], maxShardBytes: number, extraMb = 0, runtimeMb = peakRssMb()): number {
  const mb = (b: number) => b / 2 ** 20;
  const sizes = new Map<string, number>();
  let rest = 0;
  for (const [k, t] of model.stateDict({ forSave: true })) {
    const p = parts.find((q) => inside(k, q));
    if (p) sizes.set(p, (sizes.get(p) ?? 0) + 4 * t.numel);
    else rest += 4 * t.numel;
  }
  const block = Math.max(0, ...sizes.values());
  return Math.round(runtimeMb + HEAP_GROWTH_MB + mb(2 * Math.max(block, rest)) + mb(maxShardBytes + block) + extraMb);
}

export interface StreamStep {
  method: Method<object>;
  cfg: Record<string, unknown>;
}

export interface StreamOptions extends OutDirOptions {
  maxShardBytes?: number;
  /** The recipe, stored in each shard's metadata. */
  recipe?: unknown;
  log?: (line: string) => void;
  /** After each part: its index (0-based; the last is everything outside the blocks) and the count. */
  onPart?: (done: number, total: number, name: string) => void;
  /** Last, inside the output's temp folder (e.g. a report.json): `result` lacks only the output's byte count. */
  extraFiles?: (tmp: string, result: Omit<StreamResult, 'fileBytesAfter'>) => void;
}

export interface StreamResult {
  out: string;
  /** Each step's report, merged over the parts. */
  steps: { method: string; report: Record<string, number | string> }[];
  files: string[];
  fileBytesBefore: number;
  fileBytesAfter: number;
  peakRssMb: number;
  /** The formula's figure for this model (streamBound). */
  boundMb: number;
  seconds: number;
}

/** The methods that can stream, for error messages. */
function streamable(all: Method<object>[]): string {
  return all.filter((m) => m.stream).map((m) => m.name).join(', ');
}

/**
 * Run one-shot, local methods (those declaring `stream`) on the model folder `src` block by block and write the
 * result to `out` (atomically; sharded at `maxShardBytes`). Bad input — a method that cannot stream, an option that
 * makes it non-local, a compressed or unknown model — is refused before the first block is read.
 */
export function streamFolder(src: string, out: string, steps: StreamStep[], o: StreamOptions & { methods?: Method<object>[] } = { force: true }): StreamResult {
  const t0 = performance.now();
  const raw = readConfig(src);
  for (const k of ['quantization_config', 'compression_config'])
    if (raw[k]) throw new Error(`${src}: already compressed (config.json has ${k}); streaming reads a float model`);
  if (!steps.length) throw new Error('streaming: the recipe has no steps');
  for (const s of steps)
    if (!s.method.stream) throw new Error(`${s.method.name} cannot stream (it is not a one-shot method that rewrites each layer from its own weights)${o.methods ? `; methods that can: ${streamable(o.methods)}` : ''}`);
  checkOutDir(out, o);
  const model = withoutInit(() => modelFromConfig(raw)) as Module & { config: Record<string, unknown> };
  model.eval();
  const parts = streamParts(model, src);
  // every step's options are checked on the skeleton before any weight is read (targets are names, not values)
  for (const s of steps)
    if (!s.method.stream!.targets(model, s.cfg).length) throw new Error(`${s.method.name}: options 'targets' / 'ignore' select no module of ${(model as object).constructor.name}`);
  steps.forEach((s, i) => {
    if (i > 0 && s.method.stream!.prepare) throw new Error(`${s.method.name} (step ${i + 1}) needs a pass over the checkpoint's weights first and streams only as the recipe's first step`);
  });
  const maxShardBytes = o.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const boundMb = streamBound(model, parts, maxShardBytes);
  const reports: Record<string, number | string>[][] = steps.map(() => []);
  const ctx: RecipeContext = { log: o.log };
  const file = openWeights(src);
  const prepared: Record<string, unknown>[] = steps.map(() => ({}));
  let files: string[] = [];
  const summary = () => ({
    out,
    steps: steps.map((s, i) => ({ method: s.method.name, report: reports[i]!.length ? s.method.stream!.merge(reports[i]!) : {} })),
    files,
    fileBytesBefore: weightsBytes(src),
    peakRssMb: peakRssMb(),
    boundMb,
    seconds: +((performance.now() - t0) / 1000).toFixed(1),
  });
  try {
    const { load, read } = weightReader(src, model, file.weights);
    // the first step's pass over the checkpoint (a global threshold), before any block
    const first = steps[0]!;
    if (first.method.stream!.prepare) {
      const names = first.method.stream!.targets(model, first.cfg);
      const weights = function* (): Iterable<[string, Float32Array]> {
        for (const n of names) yield [n, load(`${n}.weight`).contiguous().toFloat32Array()];
      };
      prepared[0] = first.method.stream!.prepare(model, first.cfg, weights);
    }
    const runPart = (within: (name: string) => boolean) => {
      for (const [k, t] of model.stateDict()) if (within(k)) read(k, t);
      steps.forEach((s, i) => {
        const names = s.method.stream!.targets(model, s.cfg).filter(within);
        if (!names.length) return;
        const run = s.method.apply(model, { ...s.cfg, ...prepared[i], targets: names, ignore: null }, ctx);
        if (run) {
          run.finalize?.();
          const r = run.report?.();
          if (r) reports[i]!.push(r);
        }
      });
    };
    writeDirAtomic(
      out,
      (tmp) => {
        const sink = new StreamingCheckpoint(model, tmp, { maxShardBytes, metadata: { recipe: JSON.stringify(o.recipe ?? steps.map((s) => ({ method: s.method.name, ...s.cfg }))) } });
        parts.forEach((p, i) => {
          runPart((name) => inside(name, p));
          sink.partDone(p);
          o.onPart?.(i, parts.length + 1, p);
        });
        runPart((name) => !parts.some((p) => inside(name, p)));
        files = sink.finish();
        o.onPart?.(parts.length, parts.length + 1, '(embeddings, final norm, head)');
        copyTokenizerFiles(src, tmp);
        o.extraFiles?.(tmp, summary());
      },
      o,
    );
  } finally {
    file.close();
  }
  return { ...summary(), fileBytesAfter: weightsBytes(out) };
}
