/**
 * A random-weight Llama checkpoint of any configuration, written as sharded safetensors with an index, streaming:
 * what `shrink make-random` does, so billion-parameter code paths can be tested without downloads.
 *
 * - Tensors: LlamaForCausalLM's, under Hugging Face's names, in module order (embeddings, then each layer's
 *   input_layernorm, q/k/v/o projections, post_attention_layernorm, gate/up/down projections, then the final norm and
 *   — unless tie_word_embeddings — lm_head). Matrices are N(0, initializer_range²) from a seeded generator, norm weights
 *   are 1, as a freshly initialised transformers model.
 * - Shards: the tensors in that order, cut into `shards` files of about equal bytes
 *   (model-0000k-of-0000n.safetensors, each tensor whole in one file), and model.safetensors.index.json with
 *   `metadata.total_size` and the `weight_map`. One shard: model.safetensors and no index.
 * - Memory: each file's header is computed from the shapes first; the data is then generated and written in chunks of
 *   `CHUNK` values, so the resident memory stays at a few MiB whatever the model's size.
 * - The folder is written whole or not at all (a temporary sibling renamed into place), with config.json
 *   (`torch_dtype` set to the dtype written).
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeDirAtomic } from './outdir.ts';
import { atomicWriteJson, writeAll } from './atomic.ts';
import { encodeHeader } from './safetensors.ts';
import { shardName, writeShardIndex } from './shards.ts';
import { llamaConfig } from '../models/llama/config.ts';
import { Generator } from '../tensor/random.ts';
import { f32ToBf16Bits } from '../tensor/dtype.ts';

export interface MakeRandomOptions {
  /** Number of weight files (default 1). */
  shards?: number;
  /** Storage dtype (default bf16, as most released checkpoints). */
  dtype?: 'bf16' | 'fp32';
  seed?: number;
  force?: boolean;
  /** Called after each tensor: bytes written so far, total bytes. */
  onProgress?(written: number, total: number): void;
}

export interface MakeRandomResult {
  out: string;
  parameters: number;
  bytes: number;
  tensors: number;
  files: string[];
  seconds: number;
}

/** Values generated and written per chunk. */
const CHUNK = 1 << 20;

/** The tensors of LlamaForCausalLM for a config: [name, shape, kind], in module order. */
export function llamaTensors(raw: Record<string, unknown>): [string, number[], 'normal' | 'ones'][] {
  if (raw.model_type !== 'llama') throw new Error(`make-random: config.json model_type must be 'llama', got ${JSON.stringify(raw.model_type)}`);
  for (const k of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads'])
    if (!(Number.isSafeInteger(raw[k]) && (raw[k] as number) > 0)) throw new Error(`make-random: config.json ${k} must be a positive integer, got ${JSON.stringify(raw[k])}`);
  const c = llamaConfig(raw as never);
  const [V, H, I, L] = [c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers];
  const q = c.num_attention_heads * c.head_dim;
  const kv = c.num_key_value_heads * c.head_dim;
  const out: [string, number[], 'normal' | 'ones'][] = [['model.embed_tokens.weight', [V, H], 'normal']];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    out.push(
      [`${p}.input_layernorm.weight`, [H], 'ones'],
      [`${p}.self_attn.q_proj.weight`, [q, H], 'normal'],
      [`${p}.self_attn.k_proj.weight`, [kv, H], 'normal'],
      [`${p}.self_attn.v_proj.weight`, [kv, H], 'normal'],
      [`${p}.self_attn.o_proj.weight`, [H, q], 'normal'],
      [`${p}.post_attention_layernorm.weight`, [H], 'ones'],
      [`${p}.mlp.gate_proj.weight`, [I, H], 'normal'],
      [`${p}.mlp.up_proj.weight`, [I, H], 'normal'],
      [`${p}.mlp.down_proj.weight`, [H, I], 'normal'],
    );
  }
  out.push(['model.norm.weight', [H], 'ones']);
  if (!c.tie_word_embeddings) out.push(['lm_head.weight', [V, H], 'normal']);
  return out;
}

/** Write the random checkpoint of `config` (a config.json path, a folder holding one, or the object) into `out`. */
export function makeRandomCheckpoint(config: string | Record<string, unknown>, out: string, o: MakeRandomOptions = {}): MakeRandomResult {
  const t0 = performance.now();
  let raw: Record<string, unknown>;
  if (typeof config === 'string') {
    const file = fs.existsSync(config) && fs.statSync(config).isDirectory() ? path.join(config, 'config.json') : config;
    if (!fs.existsSync(file)) throw new Error(`make-random: ${file}: no such file (expected a config.json or a folder holding one)`);
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`make-random: ${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
  } else raw = { ...config };
  const dtype = o.dtype ?? 'bf16';
  if (dtype !== 'bf16' && dtype !== 'fp32') throw new Error(`make-random: --dtype must be bf16 or fp32, got ${String(dtype)}`);
  const shards = o.shards ?? 1;
  const tensors = llamaTensors(raw);
  if (!(Number.isInteger(shards) && shards >= 1 && shards <= tensors.length)) throw new Error(`make-random: --shards must be an integer from 1 to ${tensors.length} (the number of tensors), got ${shards}`);
  const width = dtype === 'bf16' ? 2 : 4;
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const total = tensors.reduce((a, [, s]) => a + numel(s) * width, 0);
  // cut into shards of about total / shards bytes, in order: the next shard starts once this one holds its share,
  // or when each shard still empty needs one of the tensors left
  const groups: (typeof tensors)[] = Array.from({ length: shards }, () => []);
  let acc = 0;
  let k = 0;
  tensors.forEach((t, i) => {
    if (k < shards - 1 && groups[k]!.length > 0 && (acc >= (total * (k + 1)) / shards || tensors.length - i <= shards - 1 - k)) k++;
    groups[k]!.push(t);
    acc += numel(t[1]) * width;
  });
  const names = shards === 1 ? ['model.safetensors'] : groups.map((_, k) => shardName(k, shards));
  const std = typeof raw.initializer_range === 'number' ? raw.initializer_range : 0.02;
  const g = new Generator(o.seed ?? 0);
  let written = 0;
  writeDirAtomic(
    out,
    (tmp) => {
      const weightMap: Record<string, string> = {};
      groups.forEach((group, k) => {
        const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
        let off = 0;
        for (const [name, shape] of group) {
          const n = numel(shape) * width;
          header[name] = { dtype: dtype === 'bf16' ? 'BF16' : 'F32', shape, data_offsets: [off, off + n] };
          off += n;
          weightMap[name] = names[k]!;
        }
        const fd = fs.openSync(path.join(tmp, names[k]!), 'w');
        try {
          for (const part of encodeHeader(header)) writeAll(fd, part);
          const f32 = new Float32Array(CHUNK);
          const bf = new Uint16Array(CHUNK);
          for (const [, shape, kind] of group) {
            for (let left = numel(shape); left > 0; ) {
              const m = Math.min(CHUNK, left);
              for (let i = 0; i < m; i++) f32[i] = kind === 'ones' ? 1 : std * g.normal();
              if (dtype === 'bf16') {
                for (let i = 0; i < m; i++) bf[i] = f32ToBf16Bits(f32[i]!);
                writeAll(fd, new Uint8Array(bf.buffer, 0, 2 * m));
              } else writeAll(fd, new Uint8Array(f32.buffer, 0, 4 * m));
              left -= m;
            }
            written += numel(shape) * width;
            o.onProgress?.(written, total);
          }
        } finally {
          fs.closeSync(fd);
        }
      });
      if (shards > 1) writeShardIndex(tmp, total, weightMap);
      atomicWriteJson(path.join(tmp, 'config.json'), { ...raw, torch_dtype: dtype === 'bf16' ? 'bfloat16' : 'float32', architectures: raw.architectures ?? ['LlamaForCausalLM'] });
    },
    { force: o.force },
  );
  return { out, parameters: total / width, bytes: total, tensors: tensors.length, files: names, seconds: +((performance.now() - t0) / 1000).toFixed(1) };
}
