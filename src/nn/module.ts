/**
 * Module: the base of every layer and model. Parameters and sub-modules are found by walking the instance's own
 * enumerable fields in declaration order, so a field's attribute path is its checkpoint key
 * (`encoder.layer.0.attention.self.query.weight`):
 *   - a Tensor field is a parameter (frozen ones have requiresGrad = false but are still parameters);
 *   - a Module field is a child;
 *   - an array of Modules, or a {@link ModuleList}, is a list: `layer.0`, `layer.1`, …;
 *   - a Map<string, Module> or a plain object whose values are all Modules is a dict: `experts.a`, `experts.b`.
 * Fields whose name starts with `_` are private and never walked. Anything else (numbers, configs, null) is ignored.
 * Buffers are registered explicitly with {@link Module.registerBuffer}; non-persistent ones (like HF
 * `position_ids`) stay out of the state dict.
 *
 * Subclasses define `forward(...)` with their own signature (it is not declared here, so that each model keeps
 * precise argument and return types).
 *
 * Memory: there is no manual free. Parameters, buffers and activations are tensors over typed arrays owned by the
 * JS garbage collector. `loadStateDict` copies into the existing storage (no second copy of the weights stays
 * alive), `backward()` drops each graph node it visits, so the activations of a step become garbage as soon as the
 * caller lets go of the loss, and optimizers allocate their state buffers once per parameter and update them in
 * place. A training loop therefore holds parameters + grads + optimizer state + one step's activations.
 */
import { Tensor } from '../tensor/tensor.ts';
import { fmtShape } from '../tensor/shape.ts';
import { noGrad } from '../tensor/autograd.ts';

export type StateDict = Map<string, Tensor>;

export interface LoadResult {
  /** Keys the module has but the dict lacks (tied keys whose twin was given are not missing). */
  missing: string[];
  /** Keys in the dict the module does not have. */
  unexpected: string[];
}

/** Containers of modules the field walk understands, as [key, module] pairs; null when v is not one. */
function moduleEntries(v: unknown): [string, Module][] | null {
  if (v instanceof Module) return null;
  if (Array.isArray(v)) return v.length > 0 && v.every((m) => m instanceof Module) ? v.map((m, i) => [String(i), m as Module]) : null;
  if (v instanceof Map) {
    if (v.size === 0) return null;
    const out: [string, Module][] = [];
    for (const [k, m] of v) {
      if (typeof k !== 'string' || !(m instanceof Module)) return null;
      out.push([k, m]);
    }
    return out;
  }
  if (v !== null && typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return null;
    const es = Object.entries(v);
    return es.length > 0 && es.every(([, m]) => m instanceof Module) ? (es as [string, Module][]) : null;
  }
  return null;
}

/** Child `key` of a container (module field, array index, Map key, record key). */
function childOf(cur: unknown, key: string): unknown {
  if (cur instanceof Map) return cur.get(key);
  if (Array.isArray(cur)) return /^\d+$/.test(key) ? cur[Number(key)] : undefined;
  if (cur !== null && typeof cur === 'object' && Object.prototype.hasOwnProperty.call(cur, key)) return (cur as Record<string, unknown>)[key];
  return undefined;
}

const join = (prefix: string, k: string) => (prefix ? `${prefix}.${k}` : k);

/**
 * A tensor not read yet: its shape (from a file header) and how to read it. loadStateDict checks the shape first and
 * reads the data only when it copies it in, so a checkpoint loads one tensor at a time (io/hf.ts openWeights).
 */
export class LazyTensor {
  constructor(
    readonly shape: readonly number[],
    readonly load: () => Tensor,
  ) {}
  get numel(): number {
    return this.shape.reduce((a, d) => a * d, 1);
  }
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

  // ---------------------------------------------------------------- buffers

  /**
   * Register (or replace) a named buffer: state that is not a parameter (running statistics, masks, position ids).
   * Persistent buffers are part of stateDict(); non-persistent ones are not (HF `position_ids`).
   */
  registerBuffer(name: string, tensor: Tensor, persistent = true): void {
    if (!name || name.includes('.')) throw new Error(`registerBuffer: invalid buffer name '${name}' (non-empty, no '.')`);
    if (Object.prototype.hasOwnProperty.call(this, name) && !this._buffers.has(name))
      throw new Error(`registerBuffer: '${name}' is already a field of ${this.constructor.name}`);
    this._buffers.set(name, { tensor, persistent });
  }
  getBuffer(name: string): Tensor | undefined {
    return this._buffers.get(name)?.tensor;
  }

  // ---------------------------------------------------------------- walking the tree

  /** Direct children: [name, module]; lists give `name.i`, dicts `name.key`. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) {
      if (k.startsWith('_')) continue;
      if (v instanceof Module) out.push([k, v]);
      else for (const [i, m] of moduleEntries(v) ?? []) out.push([`${k}.${i}`, m]);
    }
    return out;
  }
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** Every module in the tree (this one first, under `prefix`), depth-first in declaration order. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [k, m] of this.namedChildren()) out.push(...m.namedModules(join(prefix, k)));
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Parameters held directly by this module (its Tensor fields). */
  namedOwnParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, v] of Object.entries(this)) if (!k.startsWith('_') && v instanceof Tensor) out.push([k, v]);
    return out;
  }

  /**
   * All parameters with their paths. A tensor reachable by two paths (tied weights) is listed once, under the
   * first path, as torch's named_parameters does.
   */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [mp, m] of this.namedModules(prefix))
      for (const [k, t] of m.namedOwnParameters()) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([join(mp, k), t]);
      }
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(prefix = '', opts: { persistentOnly?: boolean } = {}): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [mp, m] of this.namedModules(prefix))
      for (const [k, b] of m._buffers) if (!opts.persistentOnly || b.persistent) out.push([join(mp, k), b.tensor]);
    return out;
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  // ---------------------------------------------------------------- state dicts

  /**
   * Parameters (under every path, tied ones included) and persistent buffers by checkpoint key, module by module
   * in declaration order (own parameters, own buffers, then children, as torch). The values are the live tensors,
   * not copies. With `forSave`, tied duplicates are left out, as Hugging Face saves them.
   */
  stateDict(opts: { forSave?: boolean } = {}): StateDict {
    const out: StateDict = new Map();
    for (const [mp, m] of this.namedModules()) {
      for (const [k, t] of m.namedOwnParameters()) out.set(join(mp, k), t);
      for (const [k, b] of m._buffers) if (b.persistent) out.set(join(mp, k), b.tensor);
    }
    if (opts.forSave) for (const k of Object.keys(this.tiedKeys())) out.delete(k);
    return out;
  }

  /** Keys of stateDict(opts), in order. */
  stateDictKeys(opts: { forSave?: boolean } = {}): string[] {
    return [...this.stateDict(opts).keys()];
  }

  /**
   * Copy tensors into this module's parameters and persistent buffers, in place (storage identity is kept, so
   * optimizers and ties stay valid), converting to each target's dtype. A tied key may be absent when its twin is
   * given. Strict mode (default) throws one error listing every missing, unexpected and wrong-shape key;
   * non-strict returns the missing and unexpected keys and still throws on wrong shapes. Nothing is copied when
   * it throws.
   */
  loadStateDict(dict: StateDict | Map<string, Tensor | LazyTensor> | Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const src: Map<string, Tensor | LazyTensor> = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = this.stateDict();
    // Ties both ways: either side of a tie may be the one the file holds.
    const twin = new Map<string, string>();
    for (const [a, b] of Object.entries(this.tiedKeys())) {
      twin.set(a, b);
      if (!twin.has(b)) twin.set(b, a);
    }
    const missing: string[] = [];
    const unexpected: string[] = [];
    const badShape: string[] = [];
    const plan: [Tensor, Tensor | LazyTensor][] = [];
    for (const [k, t] of own) {
      const tk = twin.get(k);
      const v = src.get(k) ?? (tk !== undefined ? src.get(tk) : undefined);
      if (!v) {
        missing.push(k);
        continue;
      }
      if (!(v instanceof Tensor) && !(v instanceof LazyTensor)) throw new Error(`loadStateDict(${this.constructor.name}): value for '${k}' is not a Tensor`);
      if (v.shape.length !== t.shape.length || v.shape.some((s, i) => s !== t.shape[i])) {
        if (src.has(k)) badShape.push(`${k}: checkpoint ${fmtShape(v.shape)}, model ${fmtShape(t.shape)}`);
        continue; // a wrong-shaped twin is reported under its own key
      }
      plan.push([t, v]);
    }
    for (const k of src.keys()) if (!own.has(k)) unexpected.push(k);
    if (badShape.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
      // The first few of each category and the total count: a checkpoint of the wrong size would otherwise list every key.
      const SHOWN = 5;
      const list = (xs: string[], sep: string) =>
        xs.length <= SHOWN ? xs.join(sep) : `${xs.slice(0, SHOWN).join(sep)}${sep}… and ${xs.length - SHOWN} more`;
      const parts: string[] = [];
      if (strict && missing.length) parts.push(`missing keys (${missing.length}): ${list(missing, ', ')}`);
      if (strict && unexpected.length) parts.push(`unexpected keys (${unexpected.length}): ${list(unexpected, ', ')}`);
      if (badShape.length) parts.push(`wrong shapes (${badShape.length}): ${list(badShape, '; ')}`);
      throw new Error(`loadStateDict(${this.constructor.name}): ${parts.join(' | ')}`);
    }
    noGrad(() => {
      // a lazy value is read here, copied and dropped: a checkpoint streams in one tensor at a time
      for (const [t, v] of plan) if (v !== t) t.copy_(v instanceof LazyTensor ? v.load() : v);
    });
    return { missing, unexpected };
  }

  // ---------------------------------------------------------------- modes, grads, counting

  /** Set training mode recursively. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Drop every parameter's gradient (torch zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Freeze (false) or unfreeze (true) every parameter. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  /** Number of parameter elements (tied tensors counted once). */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /** Apply fn to every module, children first and this module last (torch Module.apply). */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  // ---------------------------------------------------------------- swapping modules by path

  /** The module at a dotted path ('' is this module). */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    let cur: unknown = this;
    let walked = '';
    for (const part of path.split('.')) {
      const v = childOf(cur, part);
      if (!(v instanceof Module) && moduleEntries(v) === null)
        throw new Error(`getSubmodule: '${path}' has no module at '${part}' (in ${walked ? `'${walked}'` : this.constructor.name})`);
      cur = v;
      walked = join(walked, part);
    }
    if (!(cur instanceof Module)) throw new Error(`getSubmodule: '${path}' is a container of modules, not a module`);
    return cur;
  }

  /**
   * Replace the module at a dotted path (how compression methods swap layers: a QuantLinear for a Linear). The
   * path must name an existing module. Returns the old module. Optimizers built before the swap still hold the
   * old parameters.
   */
  setSubmodule(path: string, module: Module): Module {
    if (!(module instanceof Module)) throw new Error(`setSubmodule: the replacement for '${path}' is not a Module`);
    if (path === '') throw new Error('setSubmodule: the path must name a submodule');
    const old = this.getSubmodule(path);
    const parts = path.split('.');
    const last = parts.pop()!;
    const parent = parts.length ? (parts.reduce<unknown>((c, p) => childOf(c, p), this) as object) : this;
    if (parent instanceof Map) parent.set(last, module);
    else if (Array.isArray(parent)) parent[Number(last)] = module;
    else (parent as Record<string, unknown>)[last] = module;
    return old;
  }
}

/** A module wrapping a list of modules (torch nn.ModuleList); its keys are `0`, `1`, …. */
export class ModuleList<M extends Module = Module> extends Module {
  [index: number]: M;
  length = 0;
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }
  push(m: M): this {
    if (!(m instanceof Module)) throw new Error('ModuleList.push: expected a Module');
    (this as unknown as Record<string, unknown>)[String(this.length)] = m;
    this.length++;
    return this;
  }
  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.length; i++) yield this[i]!;
  }
}
