/**
 * `shrink export <model> --format onnx|gguf -o <out>`: an ONNX folder for onnxruntime / transformers.js, or a GGUF
 * file for llama.cpp (src/export). Flags are checked against the format and the output before the model loads.
 */
import type { Command } from 'commander';
import { exportFolder, type ExportFormat, type Int8Mode } from '../export/index.ts';
import { formatBytes } from './inspect.ts';

export function registerExport(program: Command, out: (s: string) => void): void {
  program
    .command('export')
    .description('Export a model folder to ONNX (onnxruntime, transformers.js) or GGUF (llama.cpp); compressed models export as their dense equivalents')
    .argument('<model>', 'model folder (config.json + model.safetensors), plain or compressed by Shrink')
    .requiredOption('-o, --out <path>', 'onnx: output folder (onnx/model*.onnx, config.json, tokenizer files); gguf: output file')
    .option('--format <format>', 'onnx | gguf', 'onnx')
    .option('--dtype <dtype>', 'onnx: fp32 | fp16 | int8 (int8-dynamic layers as integer ops); gguf: f32 | f16 | q8_0')
    .option('--int8-mode <mode>', 'with --dtype int8: matmulinteger (DynamicQuantizeLinear + MatMulInteger) | qdq')
    .option('--kv-cache', 'onnx, GPT-2/Llama: past key/values inputs (past_key_values.N.key/value) and present outputs (present.N.key/value), as transformers.js generate() feeds')
    .option('--force', 'replace an existing output')
    .option('--json', 'print JSON')
    .action((dir: string, o: { out: string; format: string; dtype?: string; int8Mode?: string; kvCache?: boolean; force?: boolean; json?: boolean }) => {
      const r = exportFolder(dir, o.out, { format: o.format as ExportFormat, dtype: o.dtype, int8Mode: o.int8Mode as Int8Mode | undefined, kvCache: o.kvCache, force: o.force });
      for (const w of r.warnings) process.stderr.write(`shrink: warning: ${w}\n`);
      if (o.json) {
        out(JSON.stringify({ ...r, ms: Math.round(r.ms) }) + '\n');
        return;
      }
      out(
        [
          `| export: ${dir} | value |`,
          '| --- | --- |',
          `| architecture | ${r.architecture} |`,
          `| format | ${r.format} (${r.dtype}) |`,
          ...(r.inputs ? [`| inputs → outputs | ${abbrev(r.inputs).join(', ')} → ${abbrev(r.outputs!).join(', ')} |`] : []),
          `| compressed layers | ${r.conversions.length ? r.conversions.join('; ') : 'none (plain model)'} |`,
          `| size | ${formatBytes(r.bytes)} |`,
          `| files | ${r.files.join(', ')} |`,
          ...(r.generatedTokenizer ? [`| tokenizer | ${r.generatedTokenizer.files.join(' + ')} written from ${r.generatedTokenizer.source} |`] : []),
          `| output | ${r.out} |`,
        ].join('\n') + '\n',
      );
    });
}

/** past_key_values.0.key … past_key_values.11.value → one `past_key_values.{0..11}.key/value` entry (the table stays short). */
function abbrev(names: string[]): string[] {
  const out: string[] = [];
  for (const prefix of ['past_key_values', 'present']) {
    const layers = names.map((n) => new RegExp(`^${prefix}\\.(\\d+)\\.(key|value)$`).exec(n)).filter((m) => m !== null);
    if (layers.length) {
      const idx = [...new Set(layers.map((m) => Number(m![1])))];
      const contiguous = idx.length > 2 && idx[idx.length - 1]! - idx[0]! === idx.length - 1;
      out.push(`${prefix}.{${contiguous ? `${idx[0]}..${idx[idx.length - 1]}` : idx.join(',')}}.key/value`);
    }
  }
  return [...names.filter((n) => !/^(past_key_values|present)\./.test(n)), ...out];
}
