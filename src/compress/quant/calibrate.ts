/**
 * Calibration of static activation ranges: observers watch the inputs of every quantized layer over N batches of
 * real data, and give the range its fixed (scale, zero point) covers.
 *
 * - `minmax`: the running min and max (torch.ao MinMaxObserver).
 * - `percentile`: clip to the p-th / (100 − p)-th percentiles (default 99.99) of the values seen, estimated from a
 *   2,048-bin histogram over the running range (rebinned when the range grows), so memory stays bounded.
 * - `mse`: the clipping range whose quantize-dequantize error over the histogram is smallest, each end searched
 *   over 50 shrinkages of the min-max range (torch.ao's HistogramObserver and TensorRT search similarly).
 *
 * Ranges always include 0. Codes are 7-bit unsigned with a zero point (what the integer kernel takes, see
 * kernels.ts): scale = (max − min)/127, zero = round(−min/scale).
 */
import type { Module } from '../../nn/module.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { callForward, registerForwardPreHook, type HookHandle } from '../../nn/hooks.ts';
import { roundHalfEven } from './kernels.ts';

export type ObserverKind = 'minmax' | 'percentile' | 'mse';
export const OBSERVERS: readonly ObserverKind[] = ['minmax', 'percentile', 'mse'];
const BINS = 2048;
const LEVELS = 127;

/** Running min/max plus a histogram over [min, max]. */
export class RangeObserver {
  min = 0;
  max = 0;
  count = 0;
  private hist = new Float64Array(BINS);
  constructor(
    readonly kind: ObserverKind = 'minmax',
    readonly percentile = 99.99,
  ) {
    if (!OBSERVERS.includes(kind)) throw new Error(`observer must be one of ${OBSERVERS.join(', ')}, got '${kind}'`);
    if (!(percentile > 50 && percentile <= 100)) throw new Error(`percentile must be in (50, 100], got ${percentile}`);
  }

  private binOf(v: number): number {
    const w = (this.max - this.min) / BINS;
    return w > 0 ? Math.min(BINS - 1, Math.max(0, Math.floor((v - this.min) / w))) : 0;
  }

  /** Re-spread the histogram over a wider range (counts move to the bin holding their old bin's centre). */
  private widen(lo: number, hi: number): void {
    const old = this.hist;
    const [oMin, oMax] = [this.min, this.max];
    this.min = lo;
    this.max = hi;
    this.hist = new Float64Array(BINS);
    const w = (oMax - oMin) / BINS;
    for (let i = 0; i < BINS; i++) if (old[i]) this.hist[this.binOf(oMin + (i + 0.5) * w)] += old[i]!;
  }

  observe(x: Float32Array): void {
    let lo = this.min;
    let hi = this.max;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (!Number.isFinite(v)) throw new Error(`calibration: non-finite activation ${v} at index ${i}`);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo < this.min || hi > this.max) this.widen(lo, hi);
    for (let i = 0; i < x.length; i++) this.hist[this.binOf(x[i]!)]! += 1;
    this.count += x.length;
  }

  /** Quantize-dequantize squared error of the histogram under range [lo, hi]. */
  private mseOf(lo: number, hi: number): number {
    const s = (hi - lo) / LEVELS;
    if (!(s > 0)) return Infinity;
    const z = roundHalfEven(-lo / s);
    const w = (this.max - this.min) / BINS;
    let e = 0;
    for (let i = 0; i < BINS; i++) {
      const c = this.hist[i]!;
      if (!c) continue;
      const v = this.min + (i + 0.5) * w;
      const q = Math.min(LEVELS, Math.max(0, roundHalfEven(v / s) + z));
      e += c * ((q - z) * s - v) ** 2;
    }
    return e;
  }

  /** The calibrated range [lo, hi] (always containing 0). */
  range(): [number, number] {
    if (this.count === 0) throw new Error('calibration: the observer saw no data');
    if (this.kind === 'minmax') return [this.min, this.max];
    if (this.kind === 'percentile') {
      const tail = (this.count * (100 - this.percentile)) / 100;
      const w = (this.max - this.min) / BINS;
      let acc = 0;
      let lo = this.min;
      for (let i = 0; i < BINS; i++) {
        acc += this.hist[i]!;
        if (acc > tail) {
          lo = this.min + i * w;
          break;
        }
      }
      acc = 0;
      let hi = this.max;
      for (let i = BINS - 1; i >= 0; i--) {
        acc += this.hist[i]!;
        if (acc > tail) {
          hi = this.min + (i + 1) * w;
          break;
        }
      }
      return [Math.min(lo, 0), Math.max(hi, 0)];
    }
    // each end shrunk on its own (a skewed range, e.g. one large positive outlier, must not drag the other end in)
    let best: [number, number] = [this.min, this.max];
    let bestErr = this.mseOf(this.min, this.max);
    for (let i = 0; i < 50; i++)
      for (let j = 0; j < 50; j++) {
        const r: [number, number] = [this.min * (1 - i / 50), this.max * (1 - j / 50)];
        const e = this.mseOf(...r);
        if (e < bestErr) [best, bestErr] = [r, e];
      }
    return best;
  }

  /** Scale and zero point of the 7-bit unsigned codes for the calibrated range. */
  qparams(): { scale: number; zero: number } {
    const [lo, hi] = this.range();
    const scale = Math.max(Math.fround((hi - lo) / LEVELS), 1.1920928955078125e-7);
    return { scale, zero: Math.min(LEVELS, Math.max(0, roundHalfEven(-lo / scale))) };
  }
}

/**
 * Run the batches through the model and observe the input of every named layer. Returns one observer per layer.
 */
export function observeInputs(model: Module, layers: string[], batches: Iterable<Record<string, Tensor>>, kind: ObserverKind, percentile?: number): Map<string, RangeObserver> {
  const obs = new Map<string, RangeObserver>();
  const hooks: HookHandle[] = [];
  try {
    for (const name of layers) {
      const o = new RangeObserver(kind, percentile);
      obs.set(name, o);
      hooks.push(registerForwardPreHook(model.getSubmodule(name), (_m, inputs) => o.observe((inputs[0] as Tensor).contiguous().data as Float32Array)));
    }
    noGrad(() => {
      for (const b of batches) callForward(model, b);
    });
  } finally {
    for (const h of hooks) h.remove();
  }
  return obs;
}
