/**
 * Hugging Face model folders: config.json + model.safetensors (or sharded model-0000x-of-0000y.safetensors with
 * model.safetensors.index.json). pytorch_model.bin folders get an error that says how to convert.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../tensor/tensor.ts';
import { atomicWriteJson } from './atomic.ts';
import { SafetensorsFile, saveSafetensors } from './safetensors.ts';

export function readConfig(dir: string): Record<string, unknown> {
  const p = path.join(dir, 'config.json');
  if (!fs.existsSync(dir)) throw new Error(`model folder ${dir} does not exist`);
  if (!fs.existsSync(p)) throw new Error(`${p}: missing (a Hugging Face model folder needs config.json)`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    throw new Error(`${p}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${p}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/** The safetensors files holding the weights (one, or the shards named by the index). */
export function findWeights(dir: string): string[] {
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return [single];
  const index = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    let map: Record<string, string>;
    try {
      map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
    } catch (e) {
      throw new Error(`${index}: invalid index (${(e as Error).message})`);
    }
    if (!map || typeof map !== 'object') throw new Error(`${index}: missing "weight_map"`);
    return [...new Set(Object.values(map))].sort().map((f) => path.join(dir, f));
  }
  const torch = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /\.(bin|pt|pth)$/.test(f)) : [];
  if (torch.length)
    throw new Error(
      `${dir}: found ${torch.join(', ')} but no model.safetensors. Shrink reads safetensors only (pickled PyTorch files can run code). ` +
        `Convert with: python -c "from transformers import AutoModel; m = AutoModel.from_pretrained('${dir}'); m.save_pretrained('${dir}', safe_serialization=True)"`,
    );
  throw new Error(`${dir}: no model.safetensors (or model.safetensors.index.json) found`);
}

/** Every tensor of the folder's weights, by checkpoint key. */
export function loadWeights(dir: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const file of findWeights(dir)) {
    const f = SafetensorsFile.open(file);
    try {
      for (const k of f.keys()) {
        if (out.has(k)) throw new Error(`${file}: tensor '${k}' appears in more than one shard`);
        out.set(k, f.get(k));
      }
    } finally {
      f.close();
    }
  }
  return out;
}

/** Write config.json and model.safetensors into dir (created if needed), each atomically. */
export function writePretrained(dir: string, opts: { config: Record<string, unknown>; tensors: Map<string, Tensor>; metadata?: Record<string, string> }): void {
  fs.mkdirSync(dir, { recursive: true });
  saveSafetensors(path.join(dir, 'model.safetensors'), opts.tensors, { format: 'pt', ...(opts.metadata ?? {}) });
  atomicWriteJson(path.join(dir, 'config.json'), opts.config);
}
