/**
 * safetensors read/write (https://github.com/huggingface/safetensors format): an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
 * the raw little-endian tensor bytes (offsets relative to the end of the header).
 *
 * Reading is lazy: `SafetensorsFile.open` reads only the header; `get(name)` reads that tensor's byte range straight
 * into a fresh (aligned) typed array, so a file larger than memory can be listed and loaded tensor by tensor. Every
 * structural problem is one error that names the file and the tensor or field. Writing is sorted, 8-byte aligned,
 * streamed tensor by tensor and atomic (temp file + fsync + rename).
 *
 * Loaded dtypes: F32, F64, F16, BF16, I8, U8, I32 as themselves; BOOL as uint8; I64 as int32 (range-checked).
 */
import fs from 'node:fs';
import os from 'node:os';
import { Tensor } from '../tensor/tensor.ts';
import { DTYPES, type DType, type TypedArray } from '../tensor/dtype.ts';
import { atomicWrite, writeAll } from './atomic.ts';
import { ShrinkError, asShrinkError, maxTensorBytes } from './errors.ts';

/** safetensors dtype → [bytes per element, Shrink dtype it loads as]. */
const ST_DTYPES = new Map<string, readonly [number, DType]>([
  ['F32', [4, 'float32']],
  ['F64', [8, 'float64']],
  ['F16', [2, 'float16']],
  ['BF16', [2, 'bfloat16']],
  ['I8', [1, 'int8']],
  ['U8', [1, 'uint8']],
  ['BOOL', [1, 'uint8']],
  ['I32', [4, 'int32']],
  ['I64', [8, 'int32']], // range-checked narrowing
]);
const TO_ST: Record<DType, string> = { float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int8: 'I8', uint8: 'U8', int32: 'I32' };
/** Headers longer than this are treated as corruption (the reference implementation uses the same limit). */
const MAX_HEADER = 100_000_000;
/** Largest single read/write; node's fs calls refuse lengths over 2 GiB. */
const IO_CHUNK = 1 << 30;

/** What the header says about one tensor. */
export interface TensorInfo {
  /** safetensors dtype as written in the file: 'F32', 'BF16', 'I64', ... */
  dtype: string;
  /** The Shrink dtype `get` returns by default (I64 → int32, BOOL → uint8). */
  tensorDtype: DType;
  shape: number[];
  /** Bytes of this tensor's data in the file. */
  byteLength: number;
  /** Absolute byte range [begin, end) in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsContents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function fail(file: string, msg: string): never {
  throw new ShrinkError(`safetensors ${file}: ${msg}`, { file });
}

function checkLittleEndian(file: string): void {
  if (os.endianness() !== 'LE') fail(file, 'safetensors data is little-endian and this machine is big-endian (not supported)');
}

/** Top-level keys that appear more than once in a JSON object text (JSON.parse silently keeps the last one). */
function duplicateTopLevelKeys(text: string): string[] {
  const seen = new Set<string>();
  const dups: string[] = [];
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < text.length && (text[k] === ' ' || text[k] === '\n' || text[k] === '\r' || text[k] === '\t')) k++;
        if (text[k] === ':') {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (seen.has(key) && !dups.includes(key)) dups.push(key);
          seen.add(key);
        }
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
    i++;
  }
  return dups;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parse and validate a header. `dataStart` is 8 + N (the absolute offset of the data section) and `fileSize` the
 * total length. Throws one error naming the file and the tensor/field for any structural problem.
 */
export function parseHeader(file: string, headerText: string, dataStart: number, fileSize: number): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let raw: unknown;
  try {
    raw = JSON.parse(headerText);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) fail(file, `header must be a JSON object {name: {dtype, shape, data_offsets}}, got ${Array.isArray(raw) ? 'an array' : raw === null ? 'null' : typeof raw}`);
  const dups = duplicateTopLevelKeys(headerText);
  if (dups.length) fail(file, `duplicate tensor names in header: ${dups.map((d) => `'${d}'`).join(', ')}`);
  const dataSize = fileSize - dataStart;
  const limit = maxTensorBytes();
  const infos = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw)) {
    if (name === '__metadata__') {
      if (v === null) continue; // the reference implementation accepts null (no metadata)
      if (!isObject(v)) fail(file, `__metadata__ must be an object of strings, got ${JSON.stringify(v)}`);
      for (const [k, s] of Object.entries(v)) if (typeof s !== 'string') fail(file, `__metadata__ '${k}' must be a string, got ${JSON.stringify(s)}`);
      metadata = { ...(v as Record<string, string>) };
      continue;
    }
    if (!isObject(v)) fail(file, `tensor '${name}': entry must be an object {dtype, shape, data_offsets}, got ${JSON.stringify(v)}`);
    for (const field of ['dtype', 'shape', 'data_offsets']) if (!(field in v)) fail(file, `tensor '${name}': missing "${field}"`);
    if (typeof v.dtype !== 'string') fail(file, `tensor '${name}': dtype must be a string, got ${JSON.stringify(v.dtype)}`);
    const dt = ST_DTYPES.get(v.dtype);
    if (!dt) fail(file, `tensor '${name}': unknown dtype '${v.dtype}' (supported: ${[...ST_DTYPES.keys()].join(', ')})`);
    const shape = v.shape;
    if (!Array.isArray(shape) || shape.some((s) => !Number.isSafeInteger(s) || (s as number) < 0))
      fail(file, `tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    const off = v.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((x) => !Number.isSafeInteger(x) || (x as number) < 0) || off[1] < off[0])
      fail(file, `tensor '${name}': data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    const [b, e] = off as [number, number];
    const bytes = (shape as number[]).reduce((a, s) => a * s, 1) * dt[0];
    // claims are checked against the file and the limit before anything is allocated
    if (bytes > limit || e - b > limit)
      fail(file, `tensor '${name}': shape ${JSON.stringify(shape)} × ${v.dtype} needs ${bytes} bytes, over the ${limit}-byte limit per tensor (SHRINK_MAX_TENSOR_BYTES)`);
    if (bytes !== e - b)
      fail(file, `tensor '${name}': shape ${JSON.stringify(shape)} × ${v.dtype} needs ${bytes} bytes but data_offsets [${b}, ${e}] span ${e - b}`);
    if (e > dataSize) fail(file, `tensor '${name}': data_offsets [${b}, ${e}] run past the end of the data (${dataSize} bytes after the header)`);
    infos.set(name, { dtype: v.dtype, tensorDtype: dt[1], shape: shape as number[], byteLength: e - b, begin: dataStart + b, end: dataStart + e });
  }
  const sorted = [...infos.entries()].filter(([, i]) => i.end > i.begin).sort((x, y) => x[1].begin - y[1].begin);
  for (let k = 1; k < sorted.length; k++) {
    const [pn, p] = sorted[k - 1]!;
    const [cn, c] = sorted[k]!;
    if (c.begin < p.end)
      fail(file, `tensors '${pn}' [${p.begin - dataStart}, ${p.end - dataStart}] and '${cn}' [${c.begin - dataStart}, ${c.end - dataStart}] have overlapping data_offsets`);
  }
  return { infos, metadata };
}

/** The 8-byte header length, checked against the file size. */
function headerLength(file: string, lenBytes: Uint8Array, size: number): number {
  if (size < 8) fail(file, `file is truncated: ${size} bytes, shorter than the 8-byte header length`);
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) fail(file, `header length ${n} is larger than the 100 MB limit (corrupt or not a safetensors file)`);
  const len = Number(n);
  if (8 + len > size) fail(file, `header length ${len} runs past the end of the file (${size} bytes): the file is truncated`);
  return len;
}

/** A typed array of `info`'s stored dtype over an 8-byte-aligned buffer of exactly `byteLength` bytes. */
function viewStored(info: TensorInfo, buf: ArrayBuffer, byteOffset: number): TypedArray | BigInt64Array {
  const n = info.byteLength / ST_DTYPES.get(info.dtype)![0];
  switch (info.dtype) {
    case 'F32': return new Float32Array(buf, byteOffset, n);
    case 'F64': return new Float64Array(buf, byteOffset, n);
    case 'F16': case 'BF16': return new Uint16Array(buf, byteOffset, n);
    case 'I8': return new Int8Array(buf, byteOffset, n);
    case 'U8': case 'BOOL': return new Uint8Array(buf, byteOffset, n);
    case 'I32': return new Int32Array(buf, byteOffset, n);
    case 'I64': return new BigInt64Array(buf, byteOffset, n);
    default: throw new Error(`unreachable dtype ${info.dtype}`);
  }
}

/** Wrap decoded storage in a tensor: I64 narrowed to int32 with a range check; optional dtype conversion. */
function toTensor(file: string, name: string, info: TensorInfo, stored: TypedArray | BigInt64Array, want?: DType): Tensor {
  if (want !== undefined && !DTYPES.includes(want)) fail(file, `tensor '${name}': cannot load as unknown dtype '${want}' (one of ${DTYPES.join(', ')})`);
  let data: TypedArray;
  if (stored instanceof BigInt64Array) {
    const out = new Int32Array(stored.length);
    for (let i = 0; i < stored.length; i++) {
      const v = stored[i]!;
      if (v > 2147483647n || v < -2147483648n) fail(file, `tensor '${name}': I64 value ${v} at index ${i} does not fit in int32`);
      out[i] = Number(v);
    }
    data = out;
  } else data = stored;
  const t = new Tensor(data, [...info.shape], info.tensorDtype);
  return want && want !== t.dtype ? t.to(want) : t;
}

/** A safetensors file opened lazily: header parsed, tensors read on demand. Call `close()` (or `using`). */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number | null,
    private readonly infos: Map<string, TensorInfo>,
    /** The `__metadata__` map ({} when absent). */
    readonly metadata: Record<string, string>,
    /** Total file size in bytes. */
    readonly size: number,
  ) {}

  /** Open a file and read only its header (8 + N bytes), validating it. */
  static open(path: string): SafetensorsFile {
    checkLittleEndian(path);
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ShrinkError(`safetensors ${path}: cannot open (${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message})`, { file: path, cause: e });
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) fail(path, 'not a regular file');
      const size = st.size;
      const lenBuf = new Uint8Array(8);
      if (size >= 8) readFully(fd, lenBuf, 0, path, 'header length');
      const n = headerLength(path, lenBuf, size);
      const hdr = Buffer.alloc(n);
      readFully(fd, hdr, 8, path, 'header');
      const { infos, metadata } = parseHeader(path, hdr.toString('utf8'), 8 + n, size);
      return new SafetensorsFile(path, fd, infos, metadata, size);
    } catch (e) {
      fs.closeSync(fd);
      throw asShrinkError(e, path, `safetensors ${path}`, 'reading the header');
    }
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.infos.keys()];
  }
  has(name: string): boolean {
    return this.infos.has(name);
  }
  /** dtype (as stored), the dtype it loads as, shape and byte range of one tensor, without reading its data. */
  info(name: string): TensorInfo {
    const i = this.infos.get(name);
    if (!i) throw new ShrinkError(`safetensors ${this.path}: no tensor named '${name}' (${this.infos.size} tensors in the file)`, { file: this.path });
    return { ...i, shape: [...i.shape] };
  }
  /** Read one tensor's bytes from disk (optionally converting to a dtype). */
  get(name: string, opts: { dtype?: DType } = {}): Tensor {
    const i = this.info(name);
    if (this.fd === null) throw new ShrinkError(`safetensors ${this.path}: file is closed (reading '${name}')`, { file: this.path });
    try {
      const buf = new ArrayBuffer(i.byteLength); // fresh, so aligned for every element size (size checked in parseHeader)
      readFully(this.fd, new Uint8Array(buf), i.begin, this.path, `tensor '${name}'`);
      return toTensor(this.path, name, i, viewStored(i, buf, 0), opts.dtype);
    } catch (e) {
      throw asShrinkError(e, this.path, `safetensors ${this.path}`, `tensor '${name}'`);
    }
  }
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Fill `dst` from `fd` at `pos`, in chunks; a short read is a truncated file. */
function readFully(fd: number, dst: Uint8Array, pos: number, file: string, what: string): void {
  let got = 0;
  while (got < dst.length) {
    const r = fs.readSync(fd, dst, got, Math.min(IO_CHUNK, dst.length - got), pos + got);
    if (r === 0) fail(file, `${what}: unexpected end of file at byte ${pos + got} (the file changed or is truncated)`);
    got += r;
  }
}

/** All tensors of a file (read one at a time) and its metadata. */
export function loadSafetensors(path: string, opts: { dtype?: DType } = {}): SafetensorsContents {
  const f = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, Tensor>();
    for (const k of f.keys()) tensors.set(k, f.get(k, opts));
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}

/** Parse an in-memory safetensors file. `name` is used in error messages. Tensors are copies (not views of `buf`). */
export function readSafetensorsBuffer(buf: Uint8Array, name = '<buffer>'): SafetensorsContents {
  checkLittleEndian(name);
  let what = 'header';
  try {
    const n = headerLength(name, buf.subarray(0, 8), buf.length);
    const { infos, metadata } = parseHeader(name, Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'), 8 + n, buf.length);
    const tensors = new Map<string, Tensor>();
    for (const [k, i] of infos) {
      what = `tensor '${k}'`;
      const copy = new ArrayBuffer(i.byteLength);
      new Uint8Array(copy).set(buf.subarray(i.begin, i.end));
      tensors.set(k, toTensor(name, k, i, viewStored(i, copy, 0)));
    }
    return { tensors, metadata };
  } catch (e) {
    throw asShrinkError(e, name, `safetensors ${name}`, what);
  }
}

/**
 * What precedes a safetensors file's data: the JSON header's byte length as a little-endian u64, then the header,
 * padded with spaces so the data starts at a multiple of 8. `header` maps names to {dtype, shape, data_offsets}
 * (plus `__metadata__`); streamed writers (saveSafetensors, make-random) write this, then the data in offset order.
 */
export function encodeHeader(header: Record<string, unknown>): [length: Buffer, json: Buffer] {
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((8 + Buffer.byteLength(text)) % 8)) % 8);
  const json = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return [length, json];
}

export interface SaveOptions {
  /** int32 tensors to store as I64 (HF-style input_ids, labels, ...). */
  int64Names?: ReadonlySet<string>;
}

/**
 * Write tensors to `path` atomically: sorted by name, contiguous with no gaps, header padded with spaces so the data
 * starts at a multiple of 8, `__metadata__` (string values) included when non-empty. The file is streamed tensor by
 * tensor (the whole file is never built in memory) into `<path>.tmp-<pid>-<random>`, fsynced, then renamed over
 * `path`; on error the temp file is removed and any existing `path` is untouched.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
  opts: SaveOptions = {},
): void {
  checkLittleEndian(path);
  const where = `saveSafetensors ${path}`;
  if (!isObject(metadata)) throw new ShrinkError(`${where}: metadata must be an object of strings`);
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new ShrinkError(`${where}: metadata '${k}' must be a string, got ${typeof v}`);
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of opts.int64Names ?? []) if (!entries.some(([n]) => n === name)) throw new ShrinkError(`${where}: int64Names names '${name}', which is not among the tensors`);
  // Null-prototype object so a tensor named "__proto__" is an ordinary key.
  const header: Record<string, unknown> = Object.create(null);
  let offset = 0;
  const plan: { t: Tensor; i64: boolean }[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new ShrinkError(`${where}: '__metadata__' is reserved and cannot be a tensor name`);
    if (!(t instanceof Tensor)) throw new ShrinkError(`${where}: '${name}' is not a Tensor`);
    const i64 = opts.int64Names?.has(name) ?? false;
    if (i64 && t.dtype !== 'int32') throw new ShrinkError(`${where}: '${name}' must be int32 to be written as I64, got ${t.dtype}`);
    const st = TO_ST[t.dtype];
    if (!st) throw new ShrinkError(`${where}: '${name}' has unsupported dtype ${t.dtype}`);
    const bytes = t.numel * (i64 ? 8 : t.data.BYTES_PER_ELEMENT);
    header[name] = { dtype: i64 ? 'I64' : st, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
    plan.push({ t, i64 });
  }
  if (Object.keys(metadata).length) header.__metadata__ = { ...metadata }; // last, as the fixtures' writer does
  const head = encodeHeader(header);
  atomicWrite(path, (fd) => {
    for (const part of head) writeAll(fd, part);
    for (const { t, i64 } of plan) {
      const c = t.contiguous();
      const arr = c.data.subarray(c.offset, c.offset + c.numel); // a view: no copy for contiguous tensors
      if (i64) {
        // Widen in bounded chunks so a huge int tensor never needs 8 bytes × numel at once.
        const CH = 1 << 20;
        for (let s = 0; s < arr.length; s += CH) {
          const part = arr.subarray(s, Math.min(arr.length, s + CH));
          writeAll(fd, new Uint8Array(BigInt64Array.from(part as Int32Array, (v) => BigInt(v)).buffer));
        }
      } else writeAll(fd, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    }
  });
}
