/**
 * safetensors read/write (https://github.com/huggingface/safetensors format): an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
 * the raw little-endian tensor bytes (offsets relative to the end of the header).
 *
 * Reading is lazy: `SafetensorsFile.open` reads only the header; `get(name)` reads that tensor's byte range, so a
 * file larger than memory can be listed and loaded tensor by tensor. Every structural problem is one error that
 * names the file and the tensor or field. Writing is sorted, 8-byte aligned, streamed tensor by tensor and atomic.
 */
import fs from 'node:fs';
import { Tensor } from '../tensor/tensor.ts';
import type { DType, TypedArray } from '../tensor/dtype.ts';
import { atomicWrite, writeAll } from './atomic.ts';

/** safetensors dtype → [bytes per element, Shrink dtype it loads as]. */
const ST_DTYPES: Record<string, [number, DType]> = {
  F32: [4, 'float32'],
  F64: [8, 'float64'],
  F16: [2, 'float16'],
  BF16: [2, 'bfloat16'],
  I8: [1, 'int8'],
  U8: [1, 'uint8'],
  BOOL: [1, 'uint8'],
  I32: [4, 'int32'],
  I64: [8, 'int32'], // range-checked narrowing
};
const TO_ST: Record<DType, string> = { float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int8: 'I8', uint8: 'U8', int32: 'I32' };
const MAX_HEADER = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

function fail(file: string, msg: string): never {
  throw new Error(`safetensors ${file}: ${msg}`);
}

/** Top-level keys that appear more than once in a JSON object text (JSON.parse silently keeps the last one). */
function duplicateTopLevelKeys(text: string): string[] {
  const seen = new Set<string>();
  const dups: string[] = [];
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k]!)) k++;
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (seen.has(key)) dups.push(key);
          seen.add(key);
        }
      }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    i++;
  }
  return dups;
}

/** Parse and validate a header; `dataStart` is 8 + N, `fileSize` the total length. */
export function parseHeader(file: string, headerText: string, dataStart: number, fileSize: number): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let raw: unknown;
  try {
    raw = JSON.parse(headerText);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, 'header must be a JSON object');
  const dups = duplicateTopLevelKeys(headerText);
  if (dups.length) fail(file, `duplicate tensor names in header: ${dups.join(', ')}`);
  const infos = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(file, '__metadata__ must be an object of strings');
      for (const [k, s] of Object.entries(v as Record<string, unknown>))
        if (typeof s !== 'string') fail(file, `__metadata__.${k} must be a string, got ${typeof s}`);
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(file, `tensor '${name}': entry must be an object`);
    if (typeof e.dtype !== 'string') fail(file, `tensor '${name}': missing dtype`);
    const dt = ST_DTYPES[e.dtype];
    if (!dt) fail(file, `tensor '${name}': unknown dtype '${e.dtype}' (supported: ${Object.keys(ST_DTYPES).join(', ')})`);
    if (!Array.isArray(e.shape) || e.shape.some((s) => !Number.isInteger(s) || s < 0))
      fail(file, `tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((x) => !Number.isInteger(x) || x < 0) || off[1] < off[0])
      fail(file, `tensor '${name}': data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    const count = (e.shape as number[]).reduce((a, b) => a * b, 1);
    const bytes = count * dt[0];
    if (off[1] - off[0] !== bytes)
      fail(file, `tensor '${name}': shape [${e.shape}] × ${e.dtype} needs ${bytes} bytes but data_offsets [${off[0]}, ${off[1]}] span ${off[1] - off[0]}`);
    const begin = dataStart + off[0];
    const end = dataStart + off[1];
    if (end > fileSize) fail(file, `tensor '${name}': data_offsets [${off[0]}, ${off[1]}] run past the end of the file (data section is ${fileSize - dataStart} bytes)`);
    infos.set(name, { dtype: e.dtype, shape: e.shape as number[], begin, end });
  }
  const sorted = [...infos.entries()].filter(([, i]) => i.end > i.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let k = 1; k < sorted.length; k++)
    if (sorted[k]![1].begin < sorted[k - 1]![1].end) fail(file, `tensors '${sorted[k - 1]![0]}' and '${sorted[k]![0]}' have overlapping data_offsets`);
  return { infos, metadata };
}

/** Decode raw little-endian bytes into a tensor (copying into an aligned array). */
function decode(file: string, name: string, info: TensorInfo, bytes: Uint8Array, want?: DType): Tensor {
  const [size, dtype] = ST_DTYPES[info.dtype]!;
  const n = bytes.length / size;
  const aligned = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes); // copy (Buffer.slice would be a view)
  let data: TypedArray;
  switch (info.dtype) {
    case 'F32': data = new Float32Array(aligned.buffer, aligned.byteOffset, n).slice(); break;
    case 'F64': data = new Float64Array(aligned.buffer, aligned.byteOffset, n).slice(); break;
    case 'F16': case 'BF16': data = new Uint16Array(aligned.buffer, aligned.byteOffset, n).slice(); break;
    case 'I8': data = new Int8Array(aligned.buffer, aligned.byteOffset, n).slice(); break;
    case 'U8': case 'BOOL': data = new Uint8Array(aligned.buffer, aligned.byteOffset, n).slice(); break;
    case 'I32': data = new Int32Array(aligned.buffer, aligned.byteOffset, n).slice(); break;
    case 'I64': {
      const src = new BigInt64Array(aligned.buffer, aligned.byteOffset, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        if (v > 2147483647n || v < -2147483648n) fail(file, `tensor '${name}': I64 value ${v} at index ${i} does not fit in int32`);
        out[i] = Number(v);
      }
      data = out;
      break;
    }
    default: fail(file, `tensor '${name}': unknown dtype '${info.dtype}'`);
  }
  const t = new Tensor(data, [...info.shape], dtype);
  return want && want !== dtype ? t.to(want) : t;
}

/** A safetensors file opened lazily: header parsed, tensors read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number | null,
    readonly infos: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new Error(`safetensors ${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) fail(path, `file is truncated: ${size} bytes, shorter than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const n = Number(lenBuf.readBigUInt64LE(0));
      if (n > MAX_HEADER) fail(path, `header length ${n} is larger than the 100 MB limit (corrupt file?)`);
      if (8 + n > size) fail(path, `header length ${n} runs past the end of the file (${size} bytes): the file is truncated`);
      const hdr = Buffer.alloc(n);
      fs.readSync(fd, hdr, 0, n, 8);
      const { infos, metadata } = parseHeader(path, hdr.toString('utf8'), 8 + n, size);
      return new SafetensorsFile(path, fd, infos, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  keys(): string[] {
    return [...this.infos.keys()];
  }
  info(name: string): TensorInfo & { byteLength: number } {
    const i = this.infos.get(name);
    if (!i) throw new Error(`safetensors ${this.path}: no tensor named '${name}'`);
    return { ...i, byteLength: i.end - i.begin };
  }
  /** Read one tensor (optionally converting to a dtype). */
  get(name: string, opts: { dtype?: DType } = {}): Tensor {
    const i = this.info(name);
    if (this.fd === null) throw new Error(`safetensors ${this.path}: file is closed`);
    const buf = Buffer.alloc(i.byteLength);
    let got = 0;
    while (got < buf.length) {
      const r = fs.readSync(this.fd, buf, got, buf.length - got, i.begin + got);
      if (r === 0) fail(this.path, `tensor '${name}': unexpected end of file`);
      got += r;
    }
    return decode(this.path, name, i, new Uint8Array(buf.buffer, buf.byteOffset, buf.length), opts.dtype);
  }
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** All tensors of a file (and its metadata). */
export function loadSafetensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, Tensor>();
    for (const k of f.keys()) tensors.set(k, f.get(k));
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}

/** Parse an in-memory safetensors buffer. */
export function readSafetensorsBuffer(buf: Uint8Array, name = '<buffer>'): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  if (buf.length < 8) fail(name, `file is truncated: ${buf.length} bytes, shorter than the 8-byte header length`);
  const n = Number(new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER) fail(name, `header length ${n} is larger than the 100 MB limit (corrupt file?)`);
  if (8 + n > buf.length) fail(name, `header length ${n} runs past the end of the file (${buf.length} bytes): the file is truncated`);
  const { infos, metadata } = parseHeader(name, Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'), 8 + n, buf.length);
  const tensors = new Map<string, Tensor>();
  for (const [k, i] of infos) tensors.set(k, decode(name, k, i, buf.subarray(i.begin, i.end)));
  return { tensors, metadata };
}

export interface SaveOptions {
  /** int32 tensors to store as I64 (e.g. HF input_ids). */
  int64Names?: Set<string>;
}

/** Write tensors (sorted by name, contiguous, 8-byte-aligned header) atomically, streaming tensor by tensor. */
export function saveSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}, opts: SaveOptions = {}): void {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new Error(`saveSafetensors ${path}: metadata '${k}' must be a string`);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const plan: { name: string; t: Tensor; i64: boolean }[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error(`saveSafetensors ${path}: '__metadata__' is not a valid tensor name`);
    const i64 = opts.int64Names?.has(name) ?? false;
    if (i64 && t.dtype !== 'int32') throw new Error(`saveSafetensors ${path}: '${name}' must be int32 to be written as I64, got ${t.dtype}`);
    const bytes = t.numel * (i64 ? 8 : t.data.BYTES_PER_ELEMENT);
    header[name] = { dtype: i64 ? 'I64' : TO_ST[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
    plan.push({ name, t, i64 });
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((8 + Buffer.byteLength(text)) % 8)) % 8);
  const hbuf = Buffer.from(text, 'utf8');
  atomicWrite(path, (fd) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hbuf.length));
    writeAll(fd, len);
    writeAll(fd, hbuf);
    for (const { t, i64 } of plan) {
      const arr = t.toArray();
      if (i64) writeAll(fd, new Uint8Array(BigInt64Array.from(arr as Int32Array, (v) => BigInt(v)).buffer));
      else writeAll(fd, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    }
  });
}
