/**
 * Backend selection. `native` (the Node-API addon) is the default when it loads; `SHRINK_BACKEND=ref|native`
 * forces one. Without the addon Shrink runs on `ref` and says so once on stderr. float64 tensors always run on
 * `ref` (the native backend delegates any Float64Array call to it).
 *
 * Read by the addon once, when it loads (native/simd.h; checked here first so a typo is a clear error):
 * SHRINK_ISA=avx512|avx2|portable caps the native kernels' instruction set (never above what the CPU has), so one
 * machine can test every path it supports; SHRINK_DENORMALS=keep keeps IEEE subnormals inside the kernels (by
 * default they run with flush-to-zero + denormals-are-zero; JavaScript's own arithmetic is never affected).
 */
import type { Backend } from './backend.ts';
import { refBackend } from './ref/index.ts';
import { bulkConvert } from '../tensor/dtype.ts';
import { checkNativeEnv, createNativeBackend, loadNative, nativeLoadError, nativeRequired, type NativeAddon } from './native/index.ts';

/** The largest pool size setNumThreads / SHRINK_THREADS accept (native/pool.h kMaxThreads). */
export const MAX_THREADS = 256;

function checkThreads(what: string, n: number, raw: unknown = n): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) throw new Error(`${what} must be an integer in [1, ${MAX_THREADS}], got ${typeof raw === 'string' ? `'${raw}'` : raw}`);
}

export type BackendName = 'ref' | 'native';

let active: Backend | null = null;
let addon: NativeAddon | null | undefined;
let warned = false;

/** The loaded addon, or null when it did not build/load. */
export function nativeAddon(): NativeAddon | null {
  if (addon === undefined) {
    checkNativeEnv(); // SHRINK_ISA / SHRINK_DENORMALS: a typo is an error, not a silent fallback to `ref`
    addon = loadNative();
    if (!addon && nativeRequired()) {
      addon = undefined; // stay unresolved: every call reports it
      throw new Error(`SHRINK_REQUIRE_NATIVE=1 but the native addon did not load: ${nativeLoadError()}; run 'npm run build:native'`);
    }
    if (addon) {
      bulkConvert.f32ToF16 = (s, d) => addon!.f32ToF16(s, d);
      bulkConvert.f16ToF32 = (s, d) => addon!.f16ToF32(s, d);
      bulkConvert.f32ToBf16 = (s, d) => addon!.f32ToBf16(s, d);
      bulkConvert.bf16ToF32 = (s, d) => addon!.bf16ToF32(s, d);
      const t = process.env.SHRINK_THREADS;
      if (t !== undefined) {
        const n = Number(t);
        checkThreads('SHRINK_THREADS', n, t);
        addon.setThreads(n);
      }
    }
  }
  return addon;
}

function choose(): Backend {
  const want = process.env.SHRINK_BACKEND;
  if (want !== undefined && want !== '' && want !== 'ref' && want !== 'native')
    throw new Error(`SHRINK_BACKEND must be 'ref' or 'native', got '${want}'`);
  if (want === 'ref') return refBackend;
  const a = nativeAddon();
  if (a) return createNativeBackend(a, refBackend);
  if (want === 'native')
    throw new Error("SHRINK_BACKEND=native but the native addon is not built (build/Release/shrink_native.node); run 'npm run build:native'");
  if (!warned) {
    warned = true;
    process.stderr.write('shrink: native addon not available, using the TypeScript reference backend (slow). Run `npm run build:native` (in a project that installed the package: `npm rebuild shrink-lm`).\n');
  }
  return refBackend;
}

/** The backend float32 ops run on. */
export function backend(): Backend {
  return (active ??= choose());
}

/** Force a backend for this process ('ref' or 'native'). Returns the previous one's name. */
export function setBackend(name: BackendName): BackendName {
  const prev = backend().name as BackendName;
  if (name === 'ref') active = refBackend;
  else {
    const a = nativeAddon();
    if (!a) throw new Error("setBackend('native'): the native addon is not built; run 'npm run build:native'");
    active = createNativeBackend(a, refBackend);
  }
  return prev;
}

/**
 * Number of threads the native pool uses (1 on ref): an integer in [1, MAX_THREADS]. The pool may run on fewer
 * when the system refuses to start more threads (getNumThreads() then reports what it has).
 */
export function setNumThreads(n: number): void {
  checkThreads('setNumThreads: the thread count', n);
  nativeAddon()?.setThreads(n);
}
export function getNumThreads(): number {
  return nativeAddon()?.info().threads ?? 1;
}

/**
 * The kernel path each native family dispatches to ({sgemm: 'avx2 6x16', elementwise: 'avx2', …}; `shrink info`
 * and the benchmarks print it), or {} on `ref`.
 */
export function kernelNames(): Record<string, string> {
  return nativeAddon()?.kernels() ?? {};
}

/** One short label of the kernels behind a benchmark row: 'ref', or e.g. 'sgemm avx2 6x16, elementwise avx2'. */
export function kernelLabel(families: string[] = ['sgemm', 'elementwise']): string {
  if (backend().name !== 'native') return 'ref';
  const k = kernelNames();
  return families.filter((f) => k[f] !== undefined).map((f) => `${f} ${k[f]}`).join(', ');
}

export { refBackend };
