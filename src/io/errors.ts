/**
 * Shrink's own error for files it reads (safetensors, config.json, index files, compressed checkpoints, recipes):
 * `ShrinkError` (extends Error, `name` 'ShrinkError'). Its message names the file and the field or tensor at fault,
 * and `file` holds the path. Readers throw nothing else for bad input: unexpected exceptions at a reader boundary
 * are wrapped (`asShrinkError`) with the file and what was being read, the original kept as `cause`.
 *
 * Resource limits: `maxTensorBytes()` is the most bytes one tensor (or one module a config asks to build) may
 * claim, `SHRINK_MAX_TENSOR_BYTES` in the environment (default 16 GiB); claims are also checked against the file
 * size before anything is allocated. `MAX_JSON_FILE_BYTES` caps config/index/recipe files (64 MiB).
 */
export class ShrinkError extends Error {
  /** The file (or folder) being read. */
  readonly file: string | undefined;
  constructor(message: string, opts: { file?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ShrinkError';
    this.file = opts.file;
  }
}

/** `e` itself when it is a ShrinkError, else a ShrinkError `<prefix>: <what>: <e's message>` (e as cause). */
export function asShrinkError(e: unknown, file: string, prefix: string, what: string): ShrinkError {
  if (e instanceof ShrinkError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new ShrinkError(`${prefix}: ${what}: ${msg}`, { file, cause: e });
}

const DEFAULT_MAX_TENSOR_BYTES = 16 * 2 ** 30;

/** The per-tensor byte limit (SHRINK_MAX_TENSOR_BYTES, default 16 GiB; a bad value is an error naming it). */
export function maxTensorBytes(): number {
  const v = process.env.SHRINK_MAX_TENSOR_BYTES;
  if (v === undefined || v === '') return DEFAULT_MAX_TENSOR_BYTES;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new ShrinkError(`SHRINK_MAX_TENSOR_BYTES must be a non-negative integer number of bytes, got '${v}'`);
  return n;
}

/** Largest JSON file (config.json, index, recipe) read whole. */
export const MAX_JSON_FILE_BYTES = 64 * 2 ** 20;

/** JSON.stringify that never throws (cycles, BigInt) and stays short, for error messages about untrusted values. */
export function show(v: unknown, max = 200): string {
  let s: string;
  try {
    s = JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[…]' : typeof v === 'object' && v !== null ? '{…}' : String(v);
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
