/**
 * `shrink inspect <model>`: config summary, parameters and bytes per top-level module, counted as stored: from the
 * safetensors headers (dtype, shape) of the folder's weights, so a quantized or fp16 folder reports what it holds.
 *
 * Counting rules per tensor:
 * - float tensors (F32, F64, F16, BF16) and integer weight codes (I8, U8) are parameters, one per element;
 * - `<name>.weight_packed` (U8) holds two 2–4-bit codes per byte: two parameters per element, less the zero
 *   columns that pad in_features up to a whole group (`quantization_config.modules[name].in_features`);
 * - quantization parameters (`*.weight_scale`, `*.weight_zero_point`, `*.input_scale`, `*.input_zero_point`) and
 *   other integer tensors (I32, I64, BOOL: ids, masks) count as bytes only;
 * - bytes are the tensors' stored bytes (the file less its header). Tied weights are stored once, so counted once.
 */
import { findWeights, readConfig } from '../io/hf.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { fromPretrained } from '../models/registry.ts';
import type { Module } from '../nn/module.ts';
import { quantKernelTable } from '../compress/quant/modules.ts';
import type { KernelChoice, ShapeClass } from '../compress/quant/kernels.ts';

export interface InspectReport {
  dir: string;
  modelType: string;
  architecture: string;
  parameters: number;
  bytes: number;
  modules: { name: string; parameters: number; bytes: number }[];
  /** Stored bytes per safetensors dtype (F32, F16, I8, U8, …). */
  dtypes: Record<string, number>;
  config: Record<string, unknown>;
  /**
   * Quantized linear layers and the kernel each runs per batch-shape class (decode M ≤ 4, small M ≤ 64, large),
   * with why (src/compress/quant/kernels.ts chooseKernel: measured on this CPU for tiny weight-only layers).
   */
  kernels: { name: string; scheme: string; shape: [number, number]; kernels: Partial<Record<ShapeClass, KernelChoice>> }[];
}

const QUANT_PARAM_RE = /\.(weight_scale|weight_zero_point|input_scale|input_zero_point)$/;
const WEIGHT_DTYPES = new Set(['F32', 'F64', 'F16', 'BF16', 'I8', 'U8']);

/** quantization_config.modules entry fields inspect needs (see compress/quant/format.ts). */
interface QuantEntry {
  shape?: unknown;
  in_features?: unknown;
}

/** Parameters stored in tensor `key` (see the counting rules above). */
function storedParameters(key: string, dtype: string, shape: number[], quantModules: Record<string, QuantEntry>): number {
  if (QUANT_PARAM_RE.test(key) || !WEIGHT_DTYPES.has(dtype)) return 0;
  const numel = shape.reduce((a, b) => a * b, 1);
  const packed = key.endsWith('.weight_packed');
  const codes = packed ? 2 * numel : numel;
  // zero columns padding in_features to a whole group are stored, never multiplied: not parameters
  const e = quantModules[key.replace(/\.weight(_packed)?$/, '')];
  if ((packed || key.endsWith('.weight')) && e && Array.isArray(e.shape) && typeof e.in_features === 'number') {
    const [n, k] = e.shape as number[];
    if (typeof n === 'number' && typeof k === 'number' && e.in_features < k) return codes - n * (k - e.in_features);
  }
  return codes;
}

/** Checkpoint key → its top-level module (`model.layers`, `bert.encoder`, `lm_head`, …). */
function moduleOf(key: string): string {
  const parts = key.split('.');
  const depth = parts[0] === 'bert' || parts[0] === 'model' || parts[0] === 'transformer' ? 2 : 1;
  return parts.slice(0, Math.min(parts.length - 1, depth)).join('.') || key;
}

export function inspectModel(dir: string): InspectReport {
  const config = readConfig(dir);
  const model: Module = fromPretrained(dir); // validates the folder and names the class
  const qc = config.quantization_config as { modules?: Record<string, QuantEntry> } | undefined;
  const quantModules = qc && typeof qc.modules === 'object' && qc.modules !== null ? qc.modules : {};
  const groups = new Map<string, { parameters: number; bytes: number }>();
  const dtypes: Record<string, number> = {};
  for (const file of findWeights(dir)) {
    const f = SafetensorsFile.open(file);
    try {
      for (const k of f.keys()) {
        const { dtype, shape, byteLength } = f.info(k);
        const key = moduleOf(k);
        const g = groups.get(key) ?? { parameters: 0, bytes: 0 };
        g.parameters += storedParameters(k, dtype, shape, quantModules);
        g.bytes += byteLength;
        groups.set(key, g);
        dtypes[dtype] = (dtypes[dtype] ?? 0) + byteLength;
      }
    } finally {
      f.close();
    }
  }
  // in the model's declaration order (embeddings, layers, head), not the file's alphabetical one
  const order = new Map<string, number>();
  for (const k of model.stateDictKeys()) if (!order.has(moduleOf(k))) order.set(moduleOf(k), order.size);
  const rank = (name: string) => order.get(name) ?? order.size;
  const modules = [...groups.entries()].map(([name, g]) => ({ name, ...g })).sort((a, b) => rank(a.name) - rank(b.name));
  return {
    dir,
    modelType: String(config.model_type),
    architecture: model.constructor.name,
    parameters: modules.reduce((a, m) => a + m.parameters, 0),
    bytes: modules.reduce((a, m) => a + m.bytes, 0),
    modules,
    dtypes,
    config,
    kernels: quantKernelTable(model, true),
  };
}

export function formatBytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

export function formatInspect(r: InspectReport): string {
  const stored = Object.entries(r.dtypes)
    .sort((a, b) => b[1] - a[1])
    .map(([d, n]) => `${d} ${formatBytes(n)}`)
    .join(', ');
  const lines = [
    `${r.dir}: ${r.architecture} (${r.modelType}), ${r.parameters.toLocaleString('en-US')} parameters, ${formatBytes(r.bytes)}`,
    `stored as ${stored || 'nothing'}`,
    '',
    '| module | parameters | bytes |',
    '| --- | --- | --- |',
  ];
  for (const m of r.modules) lines.push(`| ${m.name} | ${m.parameters.toLocaleString('en-US')} | ${formatBytes(m.bytes)} |`);
  if (r.kernels.length) {
    lines.push('', '| quantized layer | scheme | shape | kernel: decode / small / large | why |', '| --- | --- | --- | --- | --- |');
    for (const l of r.kernels) {
      const k = l.kernels;
      const why = [...new Set(Object.values(k).map((c) => c!.reason))].join('; ');
      lines.push(`| ${l.name} | ${l.scheme} | ${l.shape.join('×')} | ${[k.decode, k.small, k.large].map((c) => c?.kernel ?? '–').join(' / ')} | ${why} |`);
    }
  }
  const keys = ['hidden_size', 'n_embd', 'num_hidden_layers', 'n_layer', 'num_attention_heads', 'n_head', 'num_key_value_heads', 'intermediate_size', 'vocab_size'];
  lines.push('', keys.filter((k) => k in r.config).map((k) => `${k}=${r.config[k]}`).join(' '));
  return lines.join('\n') + '\n';
}
