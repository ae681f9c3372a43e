/**
 * `shrink quantize`: a model folder in, a quantized model folder out.
 *
 * Streaming: the model skeleton is built without initialising its weights (untouched pages cost no memory), the
 * tensors that stay float (norms, biases) are loaded, and each weight to quantize is read from the file only when
 * the quantizer reaches it and is dropped once its integer replacement is in place. RTN therefore holds about one
 * fp32 tensor plus the integer output; GPTQ on a decoder (blockwise pass, apply.ts) one block's fp32 weights, its
 * Hessians, the calibration activations and the integer output. int8-static observes activations on the whole
 * float model and loads it normally.
 */
import { copyTokenizerFiles } from '../../io/tokenizer-files.ts';
import fs from 'node:fs';
import path from 'node:path';
import type { Module } from '../../nn/module.ts';
import { withoutInit } from '../../nn/init.ts';
import { fromPretrained, modelFromConfig } from '../../models/registry.ts';
import { findWeights, openWeights, readConfig, writePretrained } from '../../io/hf.ts';
import { checkOutDir, writeDirAtomic, type OutDirOptions } from '../../io/outdir.ts';
import { noGrad } from '../../tensor/autograd.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { quantizeModel, type QuantizeOptions, type QuantizeReport } from './apply.ts';
import { saveQuantized } from './format.ts';
import type { QuantScheme } from './modules.ts';


export interface QuantizeFolderResult extends QuantizeReport {
  out: string;
  /** Bytes of model.safetensors before and after. */
  fileBytesBefore: number;
  fileBytesAfter: number;
  ms: number;
  /** The process's peak resident memory so far (MiB), as the OS counts it (getrusage maxrss). */
  peakRssMb: number;
}

/** The process's peak resident set size so far, in MiB. */
export function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** Whether a model folder has tokenizer files (eval and predict need them; fromPretrained does not). */
function weightsBytes(dir: string): number {
  return findWeights(dir).reduce((s, f) => s + fs.statSync(f).size, 0);
}

/**
 * Quantize the model in `src` and write it to `out` with its tokenizer files. `out` is written atomically (a temp
 * sibling renamed into place when complete); an existing `out` is replaced unless `io.force` is false (default
 * true here; the CLI passes its --force), in which case a non-empty one is refused before any work.
 */
export function quantizeFolder(src: string, out: string, o: QuantizeOptions, io: OutDirOptions & { recipe?: unknown } = { force: true }): QuantizeFolderResult {
  const t0 = performance.now();
  const raw = readConfig(src);
  if (raw.quantization_config) throw new Error(`${src}: already quantized (config.json has quantization_config); quantize the float model`);
  checkOutDir(out, io);
  let model: Module & { config: Record<string, unknown> };
  let report: QuantizeReport;
  if (o.scheme === 'int8-static') {
    // activation ranges are observed on the whole float model: load it whole
    model = fromPretrained(src) as typeof model;
    report = quantizeModel(model, o);
  } else {
    model = withoutInit(() => modelFromConfig(raw)) as typeof model;
    const file = openWeights(src);
    try {
      const twins = new Map<string, string>();
      for (const [a, b] of Object.entries(model.tiedKeys())) {
        twins.set(a, b);
        twins.set(b, a);
      }
      const read = (key: string, into: Tensor): void => {
        const v = (file.weights.get(key) ?? (twins.has(key) ? file.weights.get(twins.get(key)!) : undefined))?.load();
        if (!v) throw new Error(`${src}: weights have no tensor '${key}' (${(model as object).constructor.name} needs it)`);
        if (v.shape.join() !== into.shape.join()) throw new Error(`${src}: '${key}' has shape [${v.shape}] in the checkpoint, the model expects [${into.shape}]`);
        noGrad(() => into.copy_(v));
      };
      // the quantizer reads <module>.weight of its Linear / Conv1D / Embedding targets itself, when it needs them
      const deferred = new Set(quantizeModel.targetsOf(model, o).map((name) => `${name}.weight`));
      for (const [k, t] of model.stateDict()) if (!deferred.has(k)) read(k, t);
      const materialized = new WeakSet<Tensor>();
      report = quantizeModel(model, {
        ...o,
        materialize: (name, weight) => {
          if (materialized.has(weight)) return;
          read(`${name}.weight`, weight);
          materialized.add(weight);
        },
      });
    } finally {
      file.close();
    }
  }
  const r = { bits: o.scheme === 'int4' ? (o.bits ?? 4) : 8, method: o.method ?? 'rtn' };
  writeDirAtomic(
    out,
    (tmp) => {
      saveQuantized(
        model,
        tmp,
        { scheme: o.scheme, bits: r.bits, method: r.method, granularity: o.granularity === 'group' || (o.scheme === 'int4' && !o.granularity) ? `group:${o.groupSize ?? 64}` : (o.granularity ?? 'channel') },
        { recipe: JSON.stringify(io.recipe ?? [{ method: `quant.${r.method}`, scheme: o.scheme, bits: r.bits, granularity: o.granularity ?? null, group_size: o.groupSize ?? null, symmetric: o.symmetric ?? null, formula: o.formula ?? null }]) },
      );
      copyTokenizerFiles(src, tmp);
    },
    io,
  );
  return { ...report, out, fileBytesBefore: weightsBytes(src), fileBytesAfter: weightsBytes(out), ms: performance.now() - t0, peakRssMb: peakRssMb() };
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
