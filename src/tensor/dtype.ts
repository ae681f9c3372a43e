/**
 * Data types. float32 is the compute dtype; float64 is a compute dtype too, on the `ref` backend only (gradient
 * checks). float16, bfloat16, int8, uint8 and int32 are storage dtypes: they can be created, viewed, moved, indexed
 * and converted with `.to()`, while math ops ask for a float tensor and name the dtype they got.
 */

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32';
export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int8', 'uint8', 'int32'];

export type FloatArray = Float32Array | Float64Array;
export type TypedArray = Float32Array | Float64Array | Uint16Array | Int8Array | Uint8Array | Int32Array;

export const ARRAY_CTOR = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int32: Int32Array,
} as const satisfies Record<DType, { new (n: number): TypedArray }>;

export const DTYPE_BYTES: Record<DType, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2, int8: 1, uint8: 1, int32: 4 };

export function isFloatCompute(d: DType): d is 'float32' | 'float64' {
  return d === 'float32' || d === 'float64';
}
export function isIntegral(d: DType): boolean {
  return d === 'int8' || d === 'uint8' || d === 'int32';
}

/** A zeroed array of n elements. */
export function allocArray(dtype: DType, n: number): TypedArray {
  return new ARRAY_CTOR[dtype](n);
}

// ---- float16 / bfloat16 conversion (bit-exact, round to nearest even). The native addon has F16C versions;
// these are the portable reference and are used for small arrays.

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float32 → IEEE half bits, round to nearest even; overflow → ±inf; NaN stays NaN. */
export function f32ToF16Bits(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // inf / NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflow to ±0
    mant |= 0x800000; // subnormal: shift in the implicit bit
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent: correct (rounds up to inf)
  return h;
}

let F16_TABLE: Float32Array | null = null;
/** IEEE half bits → float32 (table of all 65536 values, built once). */
export function f16BitsToF32(h: number): number {
  return (F16_TABLE ??= buildF16Table())[h & 0xffff]!;
}
function buildF16Table(): Float32Array {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 0x1f ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
}

/** float32 → bfloat16 bits, round to nearest even, NaN stays NaN. */
export function f32ToBf16Bits(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return ((b >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
export function bf16BitsToF32(h: number): number {
  u32buf[0] = (h & 0xffff) << 16;
  return f32buf[0]!;
}

/** Hooks the native addon installs for bulk conversion (set by src/backend/registry.ts when it loads). */
export const bulkConvert: {
  f32ToF16?: (src: Float32Array, dst: Uint16Array) => void;
  f16ToF32?: (src: Uint16Array, dst: Float32Array) => void;
  f32ToBf16?: (src: Float32Array, dst: Uint16Array) => void;
  bf16ToF32?: (src: Uint16Array, dst: Float32Array) => void;
} = {};

/** Convert a contiguous array from one dtype to another (float → int truncates toward zero as torch does, and saturates). */
export function convertArray(src: TypedArray, from: DType, to: DType): TypedArray {
  const n = src.length;
  if (from === to) return src.slice();
  // Decode to float (f32 or f64) first.
  let f: Float32Array | Float64Array;
  if (from === 'float16') {
    const s = src as Uint16Array;
    const out = new Float32Array(n);
    if (bulkConvert.f16ToF32 && n > 256) bulkConvert.f16ToF32(s, out);
    else {
      const t = (F16_TABLE ??= buildF16Table());
      for (let i = 0; i < n; i++) out[i] = t[s[i]!]!;
    }
    f = out;
  } else if (from === 'bfloat16') {
    const s = src as Uint16Array;
    const out = new Float32Array(n);
    if (bulkConvert.bf16ToF32 && n > 256) bulkConvert.bf16ToF32(s, out);
    else {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = s[i]! << 16;
    }
    f = out;
  } else if (from === 'float64') f = src as Float64Array;
  else {
    f = new Float32Array(n);
    if (from === 'int32') {
      const d = new Float64Array(n);
      for (let i = 0; i < n; i++) d[i] = src[i]!;
      f = d; // int32 → float64 keeps every integer exact before the final cast
    } else for (let i = 0; i < n; i++) f[i] = src[i]!;
  }
  switch (to) {
    case 'float32':
      return f instanceof Float32Array ? f : Float32Array.from(f);
    case 'float64':
      return f instanceof Float64Array ? f : Float64Array.from(f);
    case 'float16': {
      const out = new Uint16Array(n);
      if (bulkConvert.f32ToF16 && f instanceof Float32Array && n > 256) bulkConvert.f32ToF16(f, out);
      else for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(f[i]!);
      return out;
    }
    case 'bfloat16': {
      const out = new Uint16Array(n);
      if (bulkConvert.f32ToBf16 && f instanceof Float32Array && n > 256) bulkConvert.f32ToBf16(f, out);
      else for (let i = 0; i < n; i++) out[i] = f32ToBf16Bits(f[i]!);
      return out;
    }
    case 'int8':
    case 'uint8':
    case 'int32': {
      const out = allocArray(to, n);
      const [lo, hi] = to === 'int8' ? [-128, 127] : to === 'uint8' ? [0, 255] : [-2147483648, 2147483647];
      for (let i = 0; i < n; i++) {
        const v = f[i]!;
        if (Number.isNaN(v)) throw new Error(`to(${to}): NaN at index ${i} cannot be converted to an integer`);
        out[i] = Math.min(hi, Math.max(lo, Math.trunc(v)));
      }
      return out;
    }
  }
}

/** Round half to even, as torch.round. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
