/** Model size as stored. */
import type { Module } from '../nn/module.ts';

/**
 * Weights and bytes as stored: every parameter and persistent buffer once (tied and shared storage counted once);
 * an integer weight counts its codes as weights (two per byte when packed) and its scales/zero points as bytes.
 */
export function modelSize(m: Module): { parameters: number; bytes: number } {
  let parameters = 0;
  let bytes = 0;
  const seen = new Set<unknown>();
  for (const [k, t] of m.stateDict()) {
    if (seen.has(t.data)) continue;
    seen.add(t.data);
    bytes += t.nbytes;
    if (k.endsWith('.weight_scale') || k.endsWith('.weight_zero_point')) continue;
    parameters += k.endsWith('.weight_packed') ? t.numel * 2 : t.numel;
  }
  return { parameters, bytes };
}
