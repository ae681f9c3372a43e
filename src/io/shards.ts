/**
 * Sharded safetensors output, written as it goes: tensors are queued as the caller finishes them and a shard file is
 * written whenever the queue reaches the size limit, so a streaming pass holds at most about one shard of output at a
 * time. At the end the shards get their Hugging Face names (`model-00001-of-00003.safetensors`) and the index
 * (`model.safetensors.index.json`: `metadata.total_size` and `weight_map`), as `save_pretrained(max_shard_size=…)`
 * writes them; a single shard is plain `model.safetensors` with no index.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../tensor/tensor.ts';
import { atomicWriteJson } from './atomic.ts';
import { saveSafetensors } from './safetensors.ts';

export const DEFAULT_MAX_SHARD_BYTES = 1 << 30;

/** Hugging Face's name of shard `k` (0-based) of `n`. */
export function shardName(k: number, n: number): string {
  return `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/** Write model.safetensors.index.json into `dir`. */
export function writeShardIndex(dir: string, totalSize: number, weightMap: Record<string, string>): void {
  atomicWriteJson(path.join(dir, 'model.safetensors.index.json'), { metadata: { total_size: totalSize }, weight_map: weightMap });
}

/**
 * Parse a size such as `2GB`, `500MB`, `1.5GiB` or a byte count (HF's max_shard_size spelling: GB/MB/KB are powers of
 * 10, GiB/MiB/KiB of 2). Throws naming `what` for anything else.
 */
export function parseByteSize(v: string, what = '--max-shard-size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i.exec(v);
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  const bytes = m ? Math.floor(Number(m[1]) * units[(m[2] ?? 'b').toLowerCase()]!) : NaN;
  if (!(bytes >= 1)) throw new Error(`${what}: expected a size such as 2GB, 500MB or a byte count, got '${v}'`);
  return bytes;
}

const tensorBytes = (t: Tensor) => t.numel * t.data.BYTES_PER_ELEMENT;

/** The shard files a writer has written (names in its folder) and the tensors' total bytes. */
export interface ShardsWritten {
  files: { file: string; keys: string[] }[];
  totalSize: number;
}

export class ShardWriter {
  private pending = new Map<string, Tensor>();
  private pendingBytes = 0;
  private files: { tmp: string; keys: string[] }[] = [];
  private totalSize = 0;
  private readonly seen = new Set<string>();
  private finished = false;

  /**
   * Shards are written into `dir` (an existing folder) and, at finish, named into `finalDir` (default `dir`; a
   * resumable run keeps its shards beside its checkpoint and moves them into the output at the end); each file
   * carries `metadata`.
   */
  constructor(
    private readonly dir: string,
    private readonly opts: { maxShardBytes?: number; metadata?: Record<string, string>; finalDir?: string } = {},
  ) {
    const max = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
    if (!(Number.isSafeInteger(max) && max >= 1)) throw new Error(`ShardWriter: maxShardBytes must be a positive integer, got ${max}`);
  }

  get maxShardBytes(): number {
    return this.opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  }

  /**
   * Queue tensors (the writer keeps references: their data must not change until written). Returns true when a
   * shard was written, i.e. everything queued before this call and with it is now on disk.
   */
  add(tensors: Iterable<[string, Tensor]>): boolean {
    if (this.finished) throw new Error('ShardWriter: add after finish');
    for (const [k, t] of tensors) {
      if (this.seen.has(k)) throw new Error(`ShardWriter: tensor '${k}' added twice`);
      this.seen.add(k);
      this.pending.set(k, t);
      this.pendingBytes += tensorBytes(t);
    }
    if (this.pendingBytes < this.maxShardBytes) return false;
    this.flush();
    return true;
  }

  /** Write what is queued as one shard (nothing when the queue is empty). */
  flush(): void {
    if (this.pending.size === 0) return;
    const tmp = path.join(this.dir, `.shard-${this.files.length}.safetensors`);
    saveSafetensors(tmp, this.pending, { format: 'pt', ...(this.opts.metadata ?? {}) });
    this.files.push({ tmp, keys: [...this.pending.keys()] });
    this.totalSize += this.pendingBytes;
    this.pending = new Map();
    this.pendingBytes = 0;
  }

  /** The shards written so far (after a flush, everything queued): what a checkpoint records to resume from. */
  written(): ShardsWritten {
    return { files: this.files.map((f) => ({ file: path.basename(f.tmp), keys: [...f.keys] })), totalSize: this.totalSize };
  }

  /** Take up the shards a checkpoint recorded (they must be in `dir`); the queue must be empty. */
  restore(w: ShardsWritten): void {
    if (this.files.length || this.pending.size) throw new Error('ShardWriter: restore into a writer already in use');
    for (const f of w.files) {
      const tmp = path.join(this.dir, f.file);
      if (!fs.existsSync(tmp)) throw new Error(`ShardWriter: the checkpoint's shard ${tmp} is missing`);
      this.files.push({ tmp, keys: [...f.keys] });
      for (const k of f.keys) this.seen.add(k);
    }
    this.totalSize = w.totalSize;
  }

  /** Write the rest, name the shards and write the index (several shards) — returns the file names. */
  finish(): string[] {
    this.flush();
    this.finished = true;
    const out = this.opts.finalDir ?? this.dir;
    const n = this.files.length;
    if (n === 0) throw new Error('ShardWriter: no tensors were written');
    if (n === 1) {
      fs.renameSync(this.files[0]!.tmp, path.join(out, 'model.safetensors'));
      return ['model.safetensors'];
    }
    const weightMap: Record<string, string> = {};
    const names = this.files.map((f, k) => {
      const name = shardName(k, n);
      fs.renameSync(f.tmp, path.join(out, name));
      for (const key of f.keys) weightMap[key] = name;
      return name;
    });
    writeShardIndex(out, this.totalSize, Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    return names;
  }
}
