/**
 * `shrink quantize`: a model folder in, a quantized model folder out.
 *
 * Streaming (stream.ts): the model skeleton is built without initialising its weights (untouched pages cost no
 * memory) and only the tensors outside the transformer blocks are loaded up front. The quantizer then goes block by
 * block: a block's float tensors are read from the file when it starts (each weight to quantize only when the
 * quantizer reaches it), and once the block is final its integer tensors join the output shard being filled and the
 * block's memory is given back. RTN therefore holds about one block's fp32 weights plus the output shard queue;
 * GPTQ on a decoder (blockwise pass, apply.ts) adds the block's Hessians and the calibration activations.
 * int8-static observes activations on the whole float model and loads it normally.
 */
import fs from 'node:fs';
import path from 'node:path';
import { copyTokenizerFiles } from '../../io/tokenizer-files.ts';
import type { Module } from '../../nn/module.ts';
import { asLinearLike, type LinearLike } from '../../nn/layers.ts';
import { anatomy } from '../../models/anatomy.ts';
import { withoutInit } from '../../nn/init.ts';
import { fromPretrained, modelFromConfig } from '../../models/registry.ts';
import { findWeights, openWeights, readConfig, writePretrained } from '../../io/hf.ts';
import { checkOutDir, openRunDir, writeDirAtomic, type OutDirOptions } from '../../io/outdir.ts';
import { DEFAULT_MAX_SHARD_BYTES } from '../../io/shards.ts';
import { noGrad } from '../../tensor/autograd.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { StreamingCheckpoint, inside, peakRssMb, streamBound, streamParts, weightReader, weightsBytes } from '../stream.ts';
import { quantizeModel, type BlockwiseState, type QuantizeOptions, type QuantizeReport } from './apply.ts';
import { installQuantModules, saveQuantized } from './format.ts';
import { calibrationDigest, loadGptqCheckpoint, quantizeRunDir, saveGptqCheckpoint } from './checkpoint.ts';
import { quantizedBytes, type QuantLinear } from './modules.ts';

export { peakRssMb } from '../stream.ts';

export interface QuantizeFolderResult extends QuantizeReport {
  out: string;
  /** Bytes of the weight files before and after. */
  fileBytesBefore: number;
  fileBytesAfter: number;
  /** The output's weight files (one, or shards of at most maxShardBytes with an index). */
  files: string[];
  ms: number;
  /** The process's peak resident memory so far (MiB), as the OS counts it (getrusage maxrss). */
  peakRssMb: number;
  /** What stream.ts' formula expects the peak to stay under for this model (streamed schemes only). */
  boundMb?: number;
}

export interface QuantizeFolderOptions extends OutDirOptions {
  recipe?: unknown;
  /** Output shard size limit (default 1 GiB); the streamed schemes write each shard as it fills. */
  maxShardBytes?: number;
  /**
   * Blockwise GPTQ: checkpoint after a block once this many seconds passed since the last checkpoint (default 300;
   * 0: after every block), in `.<out>.quantize-run` (checkpoint.ts). The same command resumes from it.
   */
  checkpointEverySeconds?: number;
  /** Called when a checkpoint is written or resumed from (block index). */
  onCheckpoint?: (event: 'saved' | 'resumed', block: number) => void;
}

/**
 * Quantize the model in `src` and write it to `out` with its tokenizer files. `out` is written atomically (a temp
 * sibling renamed into place when complete); an existing `out` is replaced unless `io.force` is false (default
 * true here; the CLI passes its --force), in which case a non-empty one is refused before any work.
 */
export function quantizeFolder(src: string, out: string, o: QuantizeOptions, io: QuantizeFolderOptions = { force: true }): QuantizeFolderResult {
  const t0 = performance.now();
  const raw = readConfig(src);
  if (raw.quantization_config) throw new Error(`${src}: already quantized (config.json has quantization_config); quantize the float model`);
  checkOutDir(out, io);
  const r = { bits: o.scheme === 'int4' ? (o.bits ?? 4) : 8, method: o.method ?? 'rtn' };
  const qc = { scheme: o.scheme, bits: r.bits, method: r.method, granularity: o.granularity === 'group' || (o.scheme === 'int4' && !o.granularity) ? `group:${o.groupSize ?? 64}` : (o.granularity ?? 'channel') };
  const recipe = JSON.stringify(io.recipe ?? [{ method: `quant.${r.method}`, scheme: o.scheme, bits: r.bits, granularity: o.granularity ?? null, group_size: o.groupSize ?? null, symmetric: o.symmetric ?? null, formula: o.formula ?? null }]);
  let report: QuantizeReport;
  let files: string[];
  let boundMb: number | undefined;
  if (o.scheme === 'int8-static') {
    // activation ranges are observed on the whole float model: load it whole
    const model = fromPretrained(src) as Module & { config: Record<string, unknown> };
    report = quantizeModel(model, o);
    files = writeDirAtomic(
      out,
      (tmp) => {
        saveQuantized(model, tmp, qc, { recipe });
        copyTokenizerFiles(src, tmp);
        return findWeights(tmp).map((f) => path.basename(f));
      },
      io,
    );
  } else {
    const model = withoutInit(() => modelFromConfig(raw)) as Module & { config: Record<string, unknown> };
    const file = openWeights(src);
    let runDir: string | null = null;
    try {
      const { read } = weightReader(src, model, file.weights);
      // the quantizer reads <module>.weight of its Linear / Conv1D / Embedding targets itself, when it needs them;
      // a block's other tensors are read when the block starts, everything outside the blocks now
      const deferred = new Set(quantizeModel.targetsOf(model, o).map((name) => `${name}.weight`));
      const blocks = streamParts(model, src, false);
      for (const [k, t] of model.stateDict()) if (!deferred.has(k) && !blocks.some((b) => inside(k, b))) read(k, t);
      const maxShardBytes = io.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
      boundMb = streamBound(model, blocks, maxShardBytes, o.method === 'gptq' ? gptqExtraMb(model, blocks, o) : 0);
      const materialized = new WeakSet<Tensor>();
      // GPTQ runs long: checkpoints in a run folder beside the output, resumed by the same command
      const run = o.method === 'gptq' && blocks.length ? openGptqRun(src, out, o, maxShardBytes, io) : null;
      runDir = run?.dir ?? null;
      const resume = run?.resume ? resumeState(model, blocks, run.resume) : undefined;
      if (resume) io.onCheckpoint?.('resumed', resume.block);
      const everyMs = 1000 * (io.checkpointEverySeconds ?? 300);
      let lastCheckpoint = performance.now();
      ({ report, files } = writeDirAtomic(
        out,
        (tmp) => {
          const sink = new StreamingCheckpoint(model, tmp, { maxShardBytes, metadata: { recipe }, shardDir: run?.shardDir });
          if (run?.resume) sink.restore(blocks.slice(0, run.resume.state.block), run.resume.shards);
          const rep = quantizeModel(model, {
            ...o,
            resumeFrom: resume,
            materialize: (name, weight) => {
              if (materialized.has(weight)) return;
              read(`${name}.weight`, weight);
              materialized.add(weight);
            },
            blocks: {
              start: (b) => {
                for (const [k, t] of model.getSubmodule(b).stateDict()) if (!deferred.has(`${b}.${k}`)) read(`${b}.${k}`, t);
              },
              done: (b, state) => {
                sink.partDone(b);
                if (run && state && performance.now() - lastCheckpoint >= everyMs) {
                  saveGptqCheckpoint(run.dir, state, sink.flush());
                  lastCheckpoint = performance.now();
                  io.onCheckpoint?.('saved', state.block);
                }
              },
            },
          });
          const files = sink.finish((c) => ({ ...c, quantization_config: { ...(c.quantization_config as object), ...qc } }));
          copyTokenizerFiles(src, tmp);
          return { report: rep, files };
        },
        io,
      ));
    } finally {
      file.close();
    }
    if (runDir) fs.rmSync(runDir, { recursive: true, force: true }); // done: nothing to resume
  }
  return { ...report, out, files, fileBytesBefore: weightsBytes(src), fileBytesAfter: weightsBytes(out), ms: performance.now() - t0, peakRssMb: peakRssMb(), ...(boundMb !== undefined ? { boundMb } : {}) };
}

/**
 * The run folder of a GPTQ quantization: a new one, or the checkpoint to resume when the folder holds a run of the
 * same settings. A run with other settings is refused, or replaced with `force`.
 */
function openGptqRun(src: string, out: string, o: QuantizeOptions, maxShardBytes: number, io: QuantizeFolderOptions): { dir: string; shardDir: string; resume: ReturnType<typeof loadGptqCheckpoint> | null } {
  const dir = quantizeRunDir(out);
  const { calibration, log: _log, materialize: _m, blocks: _b, resumeFrom: _r, ...options } = o;
  const settings = { model: path.resolve(src), options, calibration: calibrationDigest(calibration?.() ?? []), max_shard_bytes: maxShardBytes };
  let st;
  try {
    st = openRunDir(dir, settings, { force: false });
  } catch (e) {
    if (!io.force) throw new Error(`${(e as Error).message.replace('output folder', 'checkpoint folder')}`, { cause: e });
    st = openRunDir(dir, settings, { force: true });
  }
  const shardDir = path.join(dir, 'shards');
  fs.mkdirSync(shardDir, { recursive: true });
  return { dir, shardDir, resume: st.state === 'resume' ? loadGptqCheckpoint(dir, st.step) : null };
}

/**
 * The state to resume from: the done blocks' quantized modules stand in the model again (zero-filled, as after
 * hollowing: their tensors are in the checkpoint's shards), and the report keeps what those blocks reported.
 */
function resumeState(model: Module, blocks: string[], ck: { state: BlockwiseState }): BlockwiseState {
  const done = blocks.slice(0, ck.state.block);
  const inDone = (name: string) => done.some((b) => inside(name, b));
  const saved = ck.state.report;
  const modules = Object.fromEntries(Object.entries(saved.modules).filter(([k]) => inDone(k)));
  installQuantModules(model, modules, 'GPTQ checkpoint');
  const report: QuantizeReport = { modules, floatBytes: 0, quantBytes: 0 };
  for (const [name, e] of Object.entries(modules)) {
    if (e.shares) continue;
    report.floatBytes += e.shape[0] * (e.in_features ?? e.shape[1]) * 4;
    report.quantBytes += quantizedBytes((model.getSubmodule(name) as QuantLinear).qweight);
  }
  const keep = <T>(r: Record<string, T> | undefined) => (r ? Object.fromEntries(Object.entries(r).filter(([k]) => inDone(k))) : undefined);
  if (saved.gptqLoss) report.gptqLoss = keep(saved.gptqLoss);
  const padded = keep(saved.padded);
  if (padded && Object.keys(padded).length) report.padded = padded;
  return { block: ck.state.block, carried: ck.state.carried, report };
}

/**
 * GPTQ's memory beyond the weights, the larger of its two phases (MiB). A block: the carried calibration activations
 * (block input and output, float32), the block's Hessians (K² float64 per layer, counted as if none were shared),
 * the dampened copy and factor of the widest one (2·K² float64) and the float64 copy of the largest weight. The head,
 * after the activations are freed: its float64 copy and its Hessian's copy and factor. Read from the model's layers,
 * so it holds for GPT-2's names as for Llama's.
 */
function gptqExtraMb(model: Module, blocks: string[], o: QuantizeOptions): number {
  if (!blocks.length) return 0;
  let tokens = 0;
  for (const b of o.calibration?.() ?? []) tokens += b.inputIds?.numel ?? 0;
  const layers = model.getSubmodule(blocks[0]!).modules().map(asLinearLike).filter((m): m is LinearLike => m !== null);
  if (!layers.length) return 0;
  const hidden = layers[0]!.inFeatures;
  const kMax = Math.max(...layers.map((m) => m.inFeatures));
  const block = 2 * tokens * hidden * 4 + layers.reduce((a, m) => a + m.inFeatures ** 2 * 8, 0) + 2 * kMax ** 2 * 8 + Math.max(...layers.map((m) => m.inFeatures * m.outFeatures)) * 8;
  const headName = (() => {
    try {
      return anatomy(model).head;
    } catch {
      return null;
    }
  })();
  const head = headName ? asLinearLike(model.getSubmodule(headName)) : null;
  const headPhase = head ? head.inFeatures * head.outFeatures * 8 + 2 * head.inFeatures ** 2 * 8 : 0;
  return Math.max(block, headPhase) / 2 ** 20;
}

export interface CastFolderResult {
  out: string;
  dtype: 'float16' | 'bfloat16';
  tensors: number;
  fileBytesBefore: number;
  fileBytesAfter: number;
  ms: number;
}

/**
 * fp16 / bf16 checkpoints: every float tensor of `src` cast (round to nearest even; fp16 overflow becomes ±Inf and
 * is an error naming the tensor and index), integer tensors kept, `torch_dtype` set in config.json as
 * transformers writes it. Streams tensor by tensor; fromPretrained reads the result back into float32 modules.
 */
export function castFolder(src: string, out: string, dtype: 'float16' | 'bfloat16', io: OutDirOptions = { force: true }): CastFolderResult {
  const t0 = performance.now();
  const raw = readConfig(src);
  if (raw.quantization_config) throw new Error(`${src}: already quantized (config.json has quantization_config); cast the float model`);
  checkOutDir(out, io);
  const file = openWeights(src);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [k, lazy] of file.weights) {
      const t = lazy.load();
      if (t.dtype !== 'float32' && t.dtype !== 'float16' && t.dtype !== 'bfloat16') {
        tensors.set(k, t);
        continue;
      }
      const c = noGrad(() => t.to(dtype));
      if (dtype === 'float16') {
        const h = c.data as Uint16Array;
        const x = t.data as ArrayLike<number>;
        for (let i = 0; i < h.length; i++)
          if ((h[i]! & 0x7c00) === 0x7c00 && Number.isFinite(x[i]!))
            throw new Error(`${src}: '${k}' value ${x[i]} at index ${i} overflows float16 (max 65504); use --scheme bf16`);
      }
      tensors.set(k, c);
    }
  } finally {
    file.close();
  }
  writeDirAtomic(
    out,
    (tmp) => {
      writePretrained(tmp, { config: { ...raw, torch_dtype: dtype }, tensors, metadata: { recipe: JSON.stringify([{ method: 'quant.cast', dtype }]) } });
      copyTokenizerFiles(src, tmp);
    },
    io,
  );
  return { out, dtype, tensors: tensors.size, fileBytesBefore: weightsBytes(src), fileBytesAfter: weightsBytes(out), ms: performance.now() - t0 };
}
