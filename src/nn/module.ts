/**
 * Module: the base of every layer and model. Parameters and sub-modules are found by walking the instance's own
 * fields in declaration order, so a field's attribute path is its checkpoint key
 * (`encoder.layer.0.attention.self.query.weight`): a Tensor field is a parameter (frozen ones have
 * requiresGrad = false but are still parameters), a Module field is a child, an array of Modules is a ModuleList
 * (`layer.0`, `layer.1`, …). Buffers are registered explicitly; non-persistent ones (like HF `position_ids`) stay
 * out of the state dict.
 *
 * Memory: parameters are ordinary tensors owned by the garbage collector. `loadStateDict` copies into the existing
 * storage, optimizers keep one state buffer per parameter and update in place, and `backward()` frees each graph
 * as it goes, so a training loop allocates only its activations, which die with each step.
 */
import { Tensor } from '../tensor/tensor.ts';
import { fmtShape } from '../tensor/shape.ts';
import { noGrad } from '../tensor/autograd.ts';

export type StateDict = Map<string, Tensor>;

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

export abstract class Module {
  /** Training mode (dropout on). Set recursively by train()/eval(). */
  training = true;
  /** Tied weights, declared once: key → the key it shares storage with (dropped from saved state dicts). */
  static tied: Record<string, string> = {};
  private _buffers = new Map<string, { tensor: Tensor; persistent: boolean }>();

  /** Tied keys of this instance (defaults to the class's static `tied`; override when ties depend on config). */
  tiedKeys(): Record<string, string> {
    return (this.constructor as typeof Module).tied;
  }

  /** Register a named buffer (a tensor that is state but not a parameter). */
  registerBuffer(name: string, tensor: Tensor, persistent = true): void {
    this._buffers.set(name, { tensor, persistent });
  }
  getBuffer(name: string): Tensor | undefined {
    return this._buffers.get(name)?.tensor;
  }

  /** Direct children: [field name, module]; ModuleLists give `name.i`. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) {
      if (k.startsWith('_')) continue;
      if (v instanceof Module) out.push([k, v]);
      else if (Array.isArray(v) && v.length > 0 && v.every((m) => m instanceof Module)) v.forEach((m, i) => out.push([`${k}.${i}`, m as Module]));
    }
    return out;
  }
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** Every module in the tree (this one first, name ''), depth-first in declaration order. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [k, m] of this.namedChildren()) out.push(...m.namedModules(prefix ? `${prefix}.${k}` : k));
    return out;
  }

  /** Own parameters (Tensor fields) of this module only. */
  private ownParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, v] of Object.entries(this)) if (!k.startsWith('_') && v instanceof Tensor) out.push([k, v]);
    return out;
  }

  /**
   * All parameters with their paths. A tensor shared by two paths (tied weights) is listed once, under the first
   * path, as torch's named_parameters does.
   */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [mp, m] of this.namedModules(prefix))
      for (const [k, t] of m.ownParameters()) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([mp ? `${mp}.${k}` : k, t]);
      }
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(prefix = '', { persistentOnly = false } = {}): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [mp, m] of this.namedModules(prefix))
      for (const [k, b] of m._buffers) if (!persistentOnly || b.persistent) out.push([mp ? `${mp}.${k}` : k, b.tensor]);
    return out;
  }

  /**
   * Parameters (every path, tied ones included) and persistent buffers by checkpoint key. With `forSave`, tied
   * duplicates are left out, as Hugging Face saves them.
   */
  stateDict(opts: { forSave?: boolean } = {}): StateDict {
    const out: StateDict = new Map();
    for (const [mp, m] of this.namedModules()) for (const [k, t] of m.ownParameters()) out.set(mp ? `${mp}.${k}` : k, t);
    for (const [k, t] of this.namedBuffers('', { persistentOnly: true })) out.set(k, t);
    if (opts.forSave) for (const k of Object.keys(this.tiedKeys())) out.delete(k);
    return out;
  }

  /**
   * Copy tensors into this module's parameters and buffers (converting dtype). Tied keys may be absent. Strict
   * mode throws one error listing every missing, unexpected and wrong-shape key; non-strict returns the missing and
   * unexpected keys and still throws on shape mismatches.
   */
  loadStateDict(dict: StateDict | Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const src = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = this.stateDict();
    const tied = this.tiedKeys();
    const missing: string[] = [];
    const unexpected: string[] = [];
    const badShape: string[] = [];
    for (const [k, t] of own) {
      const v = src.get(k);
      if (!v) {
        if (!(k in tied)) missing.push(k); // a tied key absent from the file is filled by its twin
        continue;
      }
      if (v.shape.length !== t.shape.length || v.shape.some((s, i) => s !== t.shape[i])) badShape.push(`${k}: checkpoint ${fmtShape(v.shape)}, model ${fmtShape(t.shape)}`);
    }
    for (const k of src.keys()) if (!own.has(k)) unexpected.push(k);
    if (badShape.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing keys (${missing.length}): ${missing.join(', ')}`);
      if (unexpected.length && strict) parts.push(`unexpected keys (${unexpected.length}): ${unexpected.join(', ')}`);
      if (badShape.length) parts.push(`wrong shapes (${badShape.length}): ${badShape.join('; ')}`);
      throw new Error(`loadStateDict(${this.constructor.name}): ${parts.join(' | ')}`);
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const v = src.get(k) ?? (tied[k] !== undefined ? src.get(tied[k]!) : undefined);
        if (v && v !== t) t.copy_(v);
      }
    });
    return { missing, unexpected };
  }

  /** Set training mode recursively. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Freeze (false) or unfreeze (true) every parameter. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /** Apply fn to every module (children first, as torch). */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  /** The module at a dotted path ('' is this module). */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    let cur: unknown = this;
    let owner = this.constructor.name;
    for (const part of path.split('.')) {
      const v: unknown = Array.isArray(cur) ? cur[Number(part)] : (cur as Record<string, unknown>)[part];
      if (v instanceof Module) owner = v.constructor.name;
      else if (!(Array.isArray(v) && v.every((m) => m instanceof Module))) throw new Error(`getSubmodule: '${path}' has no module at '${part}' (in ${owner})`);
      cur = v;
    }
    if (!(cur instanceof Module)) throw new Error(`getSubmodule: '${path}' is a list of modules, not a module`);
    return cur;
  }

  /** Replace the module at a dotted path (how compression methods swap layers). Returns the old module. */
  setSubmodule(path: string, module: Module): Module {
    const old = this.getSubmodule(path);
    const parts = path.split('.');
    const last = parts.pop()!;
    let parent: unknown = this;
    for (const part of parts) parent = Array.isArray(parent) ? parent[Number(part)] : (parent as Record<string, unknown>)[part];
    if (Array.isArray(parent)) parent[Number(last)] = module;
    else (parent as Record<string, unknown>)[last] = module;
    return old;
  }
}

/** A module wrapping a list of modules (torch nn.ModuleList); keys are `0`, `1`, …. */
export class ModuleList<M extends Module = Module> extends Module {
  [index: number]: M;
  length: number;
  constructor(modules: M[] = []) {
    super();
    this.length = 0;
    for (const m of modules) this.push(m);
  }
  push(m: M): void {
    (this as unknown as Record<string, unknown>)[String(this.length)] = m;
    this.length++;
  }
  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.length; i++) yield this[i]!;
  }
}
