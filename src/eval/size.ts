/**
 * Model size as stored, asked of the modules: a module that knows how it is stored (quantized codes, codebooks,
 * factorized or hashed weights) implements `storedSize()`; every other module counts its own parameters and
 * persistent buffers. Tensors shared by storage (tied heads, shared codes, cross-layer sharing) count once.
 */
import type { Module } from '../nn/module.ts';

/** What a module reports about its stored form: the storages it holds, each with its bytes and the weights it represents. */
export interface StoredPart {
  /** The typed array (or any object) the bytes live in, so a storage shared by two modules counts once. */
  storage: unknown;
  bytes: number;
  /** Weights it represents (a 4-bit code counts as one weight; scales and zero points represent none). */
  parameters: number;
}

/** A module that reports its own size (its own tensors are then not counted again). */
export interface SizedModule {
  storedSize(): StoredPart[];
}

function isSized(m: Module): m is Module & SizedModule {
  return typeof (m as Partial<SizedModule>).storedSize === 'function';
}

/** Weights and bytes as stored (see the file comment). */
export function modelSize(model: Module): { parameters: number; bytes: number } {
  let parameters = 0;
  let bytes = 0;
  const seen = new Set<unknown>();
  const add = (p: StoredPart) => {
    if (seen.has(p.storage)) return;
    seen.add(p.storage);
    parameters += p.parameters;
    bytes += p.bytes;
  };
  for (const m of model.modules()) {
    if (isSized(m)) {
      m.storedSize().forEach(add);
      continue;
    }
    for (const [, t] of m.namedOwnParameters()) add({ storage: t.data, bytes: t.nbytes, parameters: t.numel });
    for (const [k, t] of m.namedBuffers('', { persistentOnly: true })) if (!k.includes('.')) add({ storage: t.data, bytes: t.nbytes, parameters: t.numel });
  }
  return { parameters, bytes };
}
