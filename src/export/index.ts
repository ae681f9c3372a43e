/**
 * `exportFolder`: a Shrink / Hugging Face model folder → an ONNX folder that transformers.js and onnxruntime load,
 * or a GGUF file for llama.cpp. Outputs are written atomically (a temporary sibling renamed into place; an existing
 * output is replaced only with `force`), and everything is checked before the model is loaded.
 *
 * ONNX folder layout (transformers.js's): `config.json` (the model's config, with Shrink's compression sections
 * dropped since the graph is dense, and `shrink_export` describing the export), `onnx/model.onnx` (fp32),
 * `onnx/model_fp16.onnx` (fp16 weights) or `onnx/model_quantized.onnx` (int8; transformers.js dtype 'q8'), and
 * the tokenizer files the source folder has, plus a `tokenizer.json` (+ `tokenizer_config.json`) built from its
 * vocab.txt or llama2.c tokenizer when it has none (tokenizer-json.ts). `kvCache` adds past key/values to GPT-2 /
 * Llama graphs (onnx.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import '../compress/index.ts'; // registers the loaders of compressed checkpoints (quantization_config, compression_config)
import { fromPretrained, describeForSave } from '../models/registry.ts';
import type { Module } from '../nn/module.ts';
import { atomicWriteFile, atomicWriteJson } from '../io/atomic.ts';
import { checkOutDir, writeDirAtomic } from '../io/outdir.ts';
import { ShrinkError } from '../io/errors.ts';
import { copyTokenizerFiles } from '../io/tokenizer-files.ts';
import { exportOnnx, ONNX_OPSET, type Int8Mode, type OnnxDtype } from './onnx.ts';
import { exportGguf, GGUF_TYPES, type GgufType } from './gguf.ts';
import { tokenizerJsonFor } from './tokenizer-json.ts';
import { checkOutFile } from '../cli/augment.ts';

export { exportOnnx, type OnnxDtype, type Int8Mode } from './onnx.ts';
export { exportGguf, type GgufType } from './gguf.ts';

export type ExportFormat = 'onnx' | 'gguf';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['onnx', 'gguf'];
export const ONNX_DTYPES: readonly OnnxDtype[] = ['fp32', 'fp16', 'int8'];
export const INT8_MODES: readonly Int8Mode[] = ['matmulinteger', 'qdq'];

export interface ExportOptions {
  format: ExportFormat;
  /** onnx: fp32 | fp16 | int8; gguf: f32 | f16 | q8_0 (default fp32 / f32). */
  dtype?: string;
  int8Mode?: Int8Mode;
  /** onnx, GPT-2 / Llama: past key/values inputs and present outputs (Optimum's "with past" decoder). */
  kvCache?: boolean;
  force?: boolean;
}

export interface ExportResult {
  out: string;
  format: ExportFormat;
  dtype: string;
  architecture: string;
  /** The files written, relative to `out` (onnx), or `out` itself (gguf). */
  files: string[];
  bytes: number;
  /** What compressed layers became in the export. */
  conversions: string[];
  tokenizerFiles: string[];
  /** Tokenizer files written by the export (tokenizer.json from vocab.txt or a llama2.c tokenizer), and from what. */
  generatedTokenizer?: { files: string[]; source: string };
  warnings: string[];
  inputs?: string[];
  outputs?: string[];
  ms: number;
}

const require = createRequire(import.meta.url);
function version(): string {
  try {
    return (require('../../package.json') as { version: string }).version;
  } catch {
    return '';
  }
}

export const ONNX_FILE: Record<OnnxDtype, string> = { fp32: 'model.onnx', fp16: 'model_fp16.onnx', int8: 'model_quantized.onnx' };

/** Check the flags against the format (before any work); returns the dtype to use. */
export function checkExportOptions(o: ExportOptions): string {
  if (!EXPORT_FORMATS.includes(o.format)) throw new ShrinkError(`--format must be one of ${EXPORT_FORMATS.join(', ')}, got '${o.format}'`);
  if (o.format === 'onnx') {
    const d = o.dtype ?? 'fp32';
    if (!ONNX_DTYPES.includes(d as OnnxDtype)) throw new ShrinkError(`--dtype for --format onnx must be one of ${ONNX_DTYPES.join(', ')}, got '${d}'`);
    if (o.int8Mode !== undefined && d !== 'int8') throw new ShrinkError(`--int8-mode applies to --dtype int8, not ${d}`);
    if (o.int8Mode !== undefined && !INT8_MODES.includes(o.int8Mode)) throw new ShrinkError(`--int8-mode must be one of ${INT8_MODES.join(', ')}, got '${o.int8Mode}'`);
    return d;
  }
  const d = (o.dtype ?? 'f32').toLowerCase();
  if (!GGUF_TYPES.includes(d as GgufType)) throw new ShrinkError(`--dtype for --format gguf must be one of ${GGUF_TYPES.join(', ')}, got '${o.dtype}'`);
  if (o.int8Mode !== undefined) throw new ShrinkError('--int8-mode applies to --format onnx --dtype int8, not gguf');
  if (o.kvCache) throw new ShrinkError('--kv-cache applies to --format onnx, not gguf (llama.cpp keeps its own cache)');
  return d;
}

/** Export the model folder `dir` to `out` (an ONNX folder, or a .gguf file). */
export function exportFolder(dir: string, out: string, o: ExportOptions): ExportResult {
  const t0 = performance.now();
  const dtype = checkExportOptions(o);
  if (o.format === 'onnx') checkOutDir(out, { force: o.force });
  else checkOutFile(out, o.force);
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new ShrinkError(`${dir}: no config.json (expected a Hugging Face model folder)`, { file: dir });
  if (o.kvCache) {
    let type: unknown;
    try {
      type = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type;
    } catch {
      type = undefined; // fromPretrained reports a bad config.json
    }
    if (type !== undefined && type !== 'gpt2' && type !== 'llama')
      throw new ShrinkError(`--kv-cache applies to GPT-2 and Llama decoders (model_type gpt2, llama), not ${JSON.stringify(type)}`, { file: dir });
  }
  const model = fromPretrained(dir) as Module & { config: Record<string, unknown> };
  const warnings: string[] = [];
  if (o.format === 'gguf') {
    const r = exportGguf(model, { type: dtype as GgufType, tokenizerDir: dir, name: path.basename(path.resolve(dir)) });
    warnings.push(...r.warnings);
    atomicWriteFile(out, r.bytes);
    return { out, format: 'gguf', dtype, architecture: model.constructor.name, files: [out], bytes: r.bytes.byteLength, conversions: r.conversions, tokenizerFiles: [], warnings, ms: performance.now() - t0 };
  }
  const r = exportOnnx(model, { dtype: dtype as OnnxDtype, int8Mode: o.int8Mode, kvCache: o.kvCache, producerVersion: version() });
  if (dtype === 'int8' && !r.conversions.some((c) => c.includes('int8-dynamic')))
    warnings.push(`${dir} has no int8-dynamic layers (quantize it first: shrink quantize ${dir} -o <dir> --scheme int8-dynamic); the int8 file holds float weights only`);
  const { config } = describeForSave(model);
  delete config.quantization_config;
  delete config.compression_config;
  config.shrink_export = { format: 'onnx', opset: ONNX_OPSET, dtype, file: `onnx/${ONNX_FILE[dtype as OnnxDtype]}`, kv_cache: !!o.kvCache, conversions: r.conversions };
  if (o.kvCache) config.use_cache = true;
  const file = `onnx/${ONNX_FILE[dtype as OnnxDtype]}`;
  // a tokenizer.json (+ tokenizer_config.json) for folders with only vocab.txt / tok512.bin: transformers.js needs both
  const maxLen = Number(config.max_position_embeddings ?? config.n_positions);
  const gen = tokenizerJsonFor(dir, Number.isInteger(maxLen) && maxLen > 0 ? maxLen : undefined);
  let generatedTokenizer: ExportResult['generatedTokenizer'];
  let tokenizerFiles: string[] = [];
  writeDirAtomic(
    out,
    (tmp) => {
      fs.mkdirSync(path.join(tmp, 'onnx'));
      atomicWriteFile(path.join(tmp, file), r.bytes);
      atomicWriteJson(path.join(tmp, 'config.json'), config);
      tokenizerFiles = copyTokenizerFiles(dir, tmp);
      if (gen) {
        const files = ['tokenizer.json'];
        atomicWriteFile(path.join(tmp, 'tokenizer.json'), JSON.stringify(gen.tokenizer) + '\n');
        if (!tokenizerFiles.includes('tokenizer_config.json')) {
          atomicWriteJson(path.join(tmp, 'tokenizer_config.json'), gen.config);
          files.push('tokenizer_config.json');
        }
        generatedTokenizer = { files, source: gen.source };
        tokenizerFiles.push(...files);
      }
    },
    { force: o.force },
  );
  if (!tokenizerFiles.includes('tokenizer.json'))
    warnings.push(`${dir} has no tokenizer.json: onnxruntime runs the model, but transformers.js pipelines also need tokenizer.json${tokenizerFiles.length ? ` (copied: ${tokenizerFiles.join(', ')})` : ''}`);
  return { out, format: 'onnx', dtype, architecture: r.architecture, files: ['config.json', file, ...tokenizerFiles], bytes: r.bytes.byteLength, conversions: r.conversions, tokenizerFiles, generatedTokenizer, warnings, inputs: r.inputs, outputs: r.outputs, ms: performance.now() - t0 };
}
