// placeholder until the native backend lands
import type { Backend } from '../backend.ts';
export interface NativeAddon { info(): { avx2: boolean; threads: number }; setThreads(n: number): number; f32ToF16(s: Float32Array, d: Uint16Array): void; f16ToF32(s: Uint16Array, d: Float32Array): void; f32ToBf16(s: Float32Array, d: Uint16Array): void; bf16ToF32(s: Uint16Array, d: Float32Array): void }
export function loadNative(): NativeAddon | null { return null; }
export function createNativeBackend(_a: NativeAddon, ref: Backend): Backend { return ref; }
