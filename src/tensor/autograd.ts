/**
 * Reverse-mode automatic differentiation on a dynamic graph.
 *
 * Every differentiable op is declared once with {@link defineOp}: its forward computation and its gradient sit
 * together. When grad mode is on and an input requires grad, the output records a {@link GradNode} that points
 * at the inputs; `backward()` walks the graph in reverse topological order and accumulates gradients into each
 * leaf's `.grad`. Composite ops (gelu built from erf, logsumexp from max/exp/log…) need no gradient of their own.
 *
 * Memory: tensors are plain typed arrays owned by the JS garbage collector; there is no manual free. A graph
 * keeps its inputs alive through `GradNode.inputs`, so `backward()` drops the nodes of every non-leaf tensor it
 * visits (unless `retainGraph`) and the intermediate activations become garbage as soon as the caller lets go of
 * the loss. Code that runs without gradients should use `noGrad(() => …)` so no graph is recorded at all.
 */
import { Tensor } from './tensor.ts';

export interface GradNode {
  /** Name of the op that produced the tensor (for error messages and graph dumps). */
  op: string;
  inputs: Tensor[];
  /** Gradients with respect to `inputs`, in order (null where an input needs none). */
  backward: (g: Tensor) => (Tensor | null | undefined)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run fn with gradient recording on (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export interface OpContext<A extends unknown[], S> {
  /** The tensor inputs gradients are returned for, in order. */
  inputs: Tensor[];
  args: A;
  out: Tensor;
  saved: S;
}

export interface OpSpec<A extends unknown[], S> {
  name: string;
  /** Computes the output. Runs with grad mode off; may return values to keep for backward. */
  forward: (...args: A) => Tensor | { out: Tensor; saved: S };
  /** Gradient w.r.t. each of ctx.inputs given the output gradient g (same shape as out). */
  backward?: (g: Tensor, ctx: OpContext<NoInfer<A>, NoInfer<S>>) => (Tensor | null | undefined)[];
  /** Which arguments are differentiable inputs (default: every Tensor argument, in order). */
  inputs?: (args: NoInfer<A>) => Tensor[];
}

export type Op<A extends unknown[]> = ((...args: A) => Tensor) & { opName: string };

/** Registry of every op defined with defineOp (name → op), used by gradient checks and docs. */
export const OP_REGISTRY = new Map<string, Op<any>>();

/** Time per op while {@link profileOps} runs: calls, total ms and self ms (without the ops it called). */
export interface OpTime {
  op: string;
  calls: number;
  totalMs: number;
  selfMs: number;
}

let profiling: Map<string, OpTime> | null = null;
/** Child time of each op running under the profiler, innermost last. */
const profileStack: number[] = [];

/**
 * Run `fn` and time every op's forward it calls (what torch.profiler's op table gives): per op name, calls, total ms
 * and self ms; `outsideMs` is the time spent outside any op (module glue, allocation in JS, views). Backward passes
 * run through the ops' backward functions and are timed as part of whatever op they call. Not reentrant.
 */
export function profileOps<T>(fn: () => T): { result: T; ops: OpTime[]; totalMs: number; outsideMs: number } {
  if (profiling) throw new Error('profileOps: already profiling');
  const table = new Map<string, OpTime>();
  profiling = table;
  const t0 = performance.now();
  let result: T;
  try {
    result = fn();
  } finally {
    profiling = null;
    profileStack.length = 0;
  }
  const totalMs = performance.now() - t0;
  const ops = [...table.values()].sort((a, b) => b.selfMs - a.selfMs);
  return { result, ops, totalMs, outsideMs: totalMs - ops.reduce((a, o) => a + o.selfMs, 0) };
}

export function defineOp<A extends unknown[], S = undefined>(spec: OpSpec<A, S>): Op<A> {
  const { name, forward, backward } = spec;
  const fn = ((...args: A): Tensor => {
    const prev = gradEnabled;
    gradEnabled = false;
    let res: Tensor | { out: Tensor; saved: S };
    const prof = profiling;
    const t0 = prof ? performance.now() : 0;
    if (prof) profileStack.push(0);
    try {
      res = forward(...args);
    } finally {
      gradEnabled = prev;
      if (prof) {
        const dt = performance.now() - t0;
        const child = profileStack.pop()!;
        if (profileStack.length) profileStack[profileStack.length - 1]! += dt;
        let e = prof.get(name);
        if (!e) prof.set(name, (e = { op: name, calls: 0, totalMs: 0, selfMs: 0 }));
        e.calls++;
        e.totalMs += dt;
        e.selfMs += dt - child;
      }
    }
    const out = res instanceof Tensor ? res : res.out;
    if (prev && backward) {
      const inputs = spec.inputs ? spec.inputs(args) : (args.filter((a) => a instanceof Tensor) as Tensor[]);
      let needs = false;
      for (const t of inputs) if (t.requiresGrad) needs = true;
      if (needs) {
        const saved = res instanceof Tensor ? (undefined as S) : res.saved;
        out.requiresGrad = true;
        out._node = { op: name, inputs, backward: (g) => backward(g, { inputs, args, out, saved }) };
      }
    }
    return out;
  }) as Op<A>;
  fn.opName = name;
  if (OP_REGISTRY.has(name)) throw new Error(`defineOp: op '${name}' is defined twice`);
  OP_REGISTRY.set(name, fn);
  return fn;
}

export interface BackwardOptions {
  /** Keep the graph so backward can run again through it. */
  retainGraph?: boolean;
}

/** Reverse-mode sweep from `root` (see Tensor.backward). */
export function runBackward(root: Tensor, grad: Tensor | undefined, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error('backward: the tensor does not require grad (no input has requiresGrad, or it was computed under noGrad)');
  if (!grad) {
    if (root.numel !== 1) throw new Error(`backward: grad can be implicitly created only for scalar outputs, got shape [${root.shape.join(',')}]`);
    grad = Tensor.full(root.shape, 1, { dtype: root.dtype });
  } else if (grad.shape.join(',') !== root.shape.join(','))
    throw new Error(`backward: gradient shape [${grad.shape.join(',')}] does not match tensor shape [${root.shape.join(',')}]`);

  // Topological order (iterative DFS: deep graphs must not overflow the JS stack).
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const ins = t._node ? t._node.inputs : [];
    if (i < ins.length) {
      top[1]++;
      const c = ins[i]!;
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }

  const grads = new Map<Tensor, Tensor>();
  grads.set(root, grad);
  noGrad(() => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const g = grads.get(t);
      grads.delete(t);
      if (!g) continue;
      const node = t._node;
      if (!node || t._retainGrad) accumulateGrad(t, g);
      if (!node) continue;
      const gs = node.backward(g);
      for (let j = 0; j < node.inputs.length; j++) {
        const inp = node.inputs[j]!;
        const gi = gs[j];
        if (!gi || !inp.requiresGrad) continue;
        if (gi.shape.join(',') !== inp.shape.join(','))
          throw new Error(`backward of ${node.op}: gradient for input ${j} has shape [${gi.shape.join(',')}], expected [${inp.shape.join(',')}]`);
        const prev = grads.get(inp);
        grads.set(inp, prev ? prev.add(gi) : gi);
      }
      if (!opts.retainGraph) t._node = null; // free the graph as we go
    }
  });
}

function accumulateGrad(t: Tensor, g: Tensor): void {
  const gc = g.dtype === t.dtype ? g : g.to(t.dtype);
  // Every leaf gets a gradient tensor of its own (a copy on first accumulation): gradients returned by backward
  // functions may be shared between inputs (add passes g to both), and optimizers/clipping update .grad in place.
  if (t.grad) t.grad = t.grad.add(gc);
  else t.grad = gc.isContiguous() ? gc.clone() : gc.contiguous();
}
