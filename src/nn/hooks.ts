/**
 * Forward hooks, activation capture, auxiliary losses and a typed forward call: what compression methods use to
 * watch or steer a model without patching its classes.
 *
 * Hooks. Modules call `child.forward(...)` directly, so a hook is installed by giving the instance an own,
 * non-enumerable `forward` that runs the pre-hooks, the original forward and the hooks; it is deleted again (any
 * own `forward` the instance had before is put back) when the last hook is removed. The class's forward is never
 * touched, and since the module tree is walked over enumerable fields, the wrapper is neither a parameter nor a
 * child. Hooks run in registration order, on every call (training or not, with or without gradients).
 *
 * Auxiliary losses. A layer that adds its own training loss (MoE router load balancing or z-loss, FFF hardening)
 * calls `addAuxLoss(this, 'z_loss', value)` inside its forward; the training loop reads them all with
 * `collectAuxLosses(model)`, named `<module path>.<name>` and summed over the calls since the last collection.
 */
import { Module } from './module.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';

// ---------------------------------------------------------------- typed forward

/** The argument list of M's forward (unknown[] when M declares none). */
export type ForwardArgs<M> = M extends { forward(...args: infer A): unknown } ? A : unknown[];
/** The return type of M's forward (unknown when M declares none). */
export type ForwardResult<M> = M extends { forward(...args: never[]): infer R } ? R : unknown;
/** A module known to have a forward. */
export type WithForward = Module & { forward(...args: never[]): unknown };

/** Whether the module has a forward method. */
export function hasForward(m: Module): m is WithForward {
  return typeof (m as { forward?: unknown }).forward === 'function';
}

/**
 * m.forward(...args), typed by M's own forward when M is a concrete class, unknown for a plain Module; throws a
 * clear error when the module has no forward (a container such as ModuleList). Replaces `as unknown as {forward}`
 * casts on models held as `Module`.
 */
export function callForward<M extends Module>(m: M, ...args: ForwardArgs<M>): ForwardResult<M> {
  const f = (m as { forward?: unknown }).forward;
  if (typeof f !== 'function') throw new Error(`${m.constructor.name} has no forward() to call`);
  return (f as (...a: unknown[]) => unknown).apply(m, args) as ForwardResult<M>;
}

// ---------------------------------------------------------------- hooks

/** Called after forward with the (possibly pre-hook-replaced) inputs and the output; a value other than undefined replaces the output. */
export type ForwardHook<M extends Module = Module> = (module: M, inputs: unknown[], output: unknown) => unknown;
/** Called before forward; returning an array replaces the whole argument list, undefined keeps it. */
export type ForwardPreHook<M extends Module = Module> = (module: M, inputs: unknown[]) => unknown[] | void;
export interface HookHandle {
  /** Unregister (idempotent). */
  remove(): void;
}

interface HookState {
  pre: { fn: ForwardPreHook<never> }[];
  post: { fn: ForwardHook<never> }[];
  /** The own `forward` property the instance had before the wrapper, if any. */
  prior: PropertyDescriptor | undefined;
}
const hookStates = new WeakMap<Module, HookState>();

function install(m: Module, op: string): HookState {
  const had = hookStates.get(m);
  if (had) return had;
  if (!(m instanceof Module)) throw new Error(`${op}: expected a Module`);
  const base = (m as { forward?: unknown }).forward;
  if (typeof base !== 'function') throw new Error(`${op}: ${m.constructor.name} has no forward() to hook`);
  const state: HookState = { pre: [], post: [], prior: Object.getOwnPropertyDescriptor(m, 'forward') };
  const call = base as (...a: unknown[]) => unknown;
  function hookedForward(...args: unknown[]): unknown {
    let inputs = args;
    for (const h of [...state.pre]) {
      const r = (h.fn as ForwardPreHook)(m, inputs);
      if (r !== undefined) {
        if (!Array.isArray(r)) throw new Error(`forward pre-hook on ${m.constructor.name}: return an array of arguments (or nothing), got ${typeof r}`);
        inputs = r;
      }
    }
    let out = call.apply(m, inputs);
    for (const h of [...state.post]) {
      const r = (h.fn as ForwardHook)(m, inputs, out);
      if (r !== undefined) out = r;
    }
    return out;
  }
  Object.defineProperty(m, 'forward', { value: hookedForward, enumerable: false, configurable: true, writable: true });
  hookStates.set(m, state);
  return state;
}

function handle(m: Module, state: HookState, list: { fn: unknown }[], entry: { fn: unknown }): HookHandle {
  return {
    remove() {
      const i = list.indexOf(entry);
      if (i < 0) return;
      list.splice(i, 1);
      if (state.pre.length > 0 || state.post.length > 0 || hookStates.get(m) !== state) return;
      hookStates.delete(m);
      if (state.prior) Object.defineProperty(m, 'forward', state.prior);
      else delete (m as { forward?: unknown }).forward;
    },
  };
}

/**
 * Run `hook(module, inputs, output)` after every forward of this module instance (torch register_forward_hook);
 * returning a value other than undefined replaces the output.
 */
export function registerForwardHook<M extends Module>(module: M, hook: ForwardHook<M>): HookHandle {
  const state = install(module, 'registerForwardHook');
  const entry = { fn: hook as ForwardHook<never> };
  state.post.push(entry);
  return handle(module, state, state.post, entry);
}

/**
 * Run `hook(module, inputs)` before every forward of this module instance (torch register_forward_pre_hook);
 * returning an array replaces the argument list.
 */
export function registerForwardPreHook<M extends Module>(module: M, hook: ForwardPreHook<M>): HookHandle {
  const state = install(module, 'registerForwardPreHook');
  const entry = { fn: hook as ForwardPreHook<never> };
  state.pre.push(entry);
  return handle(module, state, state.pre, entry);
}

/** Whether any forward hook or pre-hook is registered on this instance. */
export function hasForwardHooks(module: Module): boolean {
  return hookStates.has(module);
}

/**
 * Run `run()` with the named submodules watched and return, per name (in the order given), the tensor each call
 * saw: its first argument ('input') or its output ('output'), one entry per call. The tensors are detached
 * copies. The hooks are removed afterwards, also when run throws. Throws when a watched input or output is not a
 * tensor. `run` is called as is (wrap it in noGrad when no gradients are needed).
 */
export function captureActivations(model: Module, names: readonly string[], which: 'input' | 'output', run: () => void): Map<string, Tensor[]> {
  if (which !== 'input' && which !== 'output') throw new Error(`captureActivations: which must be 'input' or 'output', got '${which as string}'`);
  const out = new Map<string, Tensor[]>();
  for (const n of names) out.set(n, []);
  const handles: HookHandle[] = [];
  try {
    for (const n of out.keys()) {
      const m = model.getSubmodule(n);
      const keep = (v: unknown) => {
        if (!(v instanceof Tensor)) throw new Error(`captureActivations: the ${which} of '${n}' (${m.constructor.name}) is not a Tensor (${v === null ? 'null' : typeof v})`);
        out.get(n)!.push(noGrad(() => v.clone()));
      };
      handles.push(which === 'input' ? registerForwardPreHook(m, (_m, inputs) => keep(inputs[0])) : registerForwardHook(m, (_m, _inputs, y) => keep(y)));
    }
    run();
  } finally {
    for (const h of handles) h.remove();
  }
  return out;
}

// ---------------------------------------------------------------- auxiliary losses

const auxStores = new WeakMap<Module, Map<string, Tensor>>();

/**
 * Record an auxiliary loss from inside `module`'s forward (graph kept: it is a Tensor like any loss). Repeated
 * calls with the same name (one per micro-batch or per step of a loop) are summed until the next collection.
 */
export function addAuxLoss(module: Module, name: string, value: Tensor): void {
  if (!(module instanceof Module)) throw new Error('addAuxLoss: expected a Module');
  if (typeof name !== 'string' || name === '') throw new Error('addAuxLoss: the loss needs a non-empty name');
  if (!(value instanceof Tensor)) throw new Error(`addAuxLoss: '${name}' on ${module.constructor.name} is not a Tensor`);
  let store = auxStores.get(module);
  if (!store) auxStores.set(module, (store = new Map()));
  const prev = store.get(name);
  if (prev && (prev.ndim !== value.ndim || prev.shape.some((s, i) => s !== value.shape[i])))
    throw new Error(`addAuxLoss: '${name}' on ${module.constructor.name} has shape [${value.shape}], earlier calls [${prev.shape}]`);
  store.set(name, prev ? prev.add(value) : value);
}

/** Every module of the tree once (first path wins when a module is reachable twice). */
function uniqueModules(model: Module): [string, Module][] {
  const seen = new Set<Module>();
  return model.namedModules().filter(([, m]) => (seen.has(m) ? false : (seen.add(m), true)));
}

/**
 * The auxiliary losses recorded in the model's tree since the last collection, named `<module path>.<name>`
 * (just `<name>` on the root), in module order; collecting clears them.
 */
export function collectAuxLosses(model: Module): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [path, m] of uniqueModules(model)) {
    const store = auxStores.get(m);
    if (!store) continue;
    for (const [k, v] of store) out.set(path ? `${path}.${k}` : k, v);
    auxStores.delete(m);
  }
  return out;
}

/** Drop the auxiliary losses recorded in the model's tree (e.g. after an evaluation pass). */
export function clearAuxLosses(model: Module): void {
  for (const [, m] of uniqueModules(model)) auxStores.delete(m);
}

/** Clear, run, and collect: the result of `run` and the auxiliary losses its forwards recorded. */
export function withAuxLosses<T>(model: Module, run: () => T): { result: T; auxLosses: Map<string, Tensor> } {
  clearAuxLosses(model);
  const result = run();
  return { result, auxLosses: collectAuxLosses(model) };
}
