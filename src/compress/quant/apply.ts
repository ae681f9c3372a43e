/**
 * Quantizing a whole model: every Linear (and GPT-2 Conv1D, transposed to [out, in]) chosen by the targets becomes
 * a QuantLinear, every Embedding a QuantEmbedding; a head tied to an embedding shares its integer weight. RTN
 * quantizes each weight on its own; GPTQ runs block by block (stage s sees blocks < s already quantized, as the
 * reference's sequential pass does) and accumulates each layer's Hessian from real calibration batches.
 *
 * The module plan is recorded in config.json's `quantization_config` (format.ts), so a saved model rebuilds the
 * same skeleton on load.
 */
import { anatomy } from '../../models/anatomy.ts';
import { Module } from '../../nn/module.ts';
import { Conv1D, Embedding, Linear, type LinearLike } from '../../nn/layers.ts';
import { callForward, registerForwardPreHook } from '../../nn/hooks.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { matchesAny } from '../select.ts';
import { QuantEmbedding, QuantLinear, isIntegerActivations, quantizedBytes, type QuantScheme, type QuantizedWeight } from './modules.ts';
import { checkFormula, quantizeWeight, type Granularity, type Int4Formula, type WeightQuantSpec } from './rtn.ts';
import { accumulateInputs, gptqQuantize } from './gptq-adapter.ts';
import { observeInputs, type ObserverKind } from './calibrate.ts';

export interface QuantizeOptions {
  scheme: QuantScheme;
  /** Bits for scheme int4: 4 (default), 3 or 2 (stored in 4-bit containers). */
  bits?: number;
  /** Default: int8 → channel, int8-dynamic → channel (the only choice), int4 → group with groupSize 64. */
  granularity?: Granularity;
  groupSize?: number;
  /** Default: true for 8-bit (torch's per-channel symmetric), false for int4 (asymmetric, as GPTQ/AWQ). */
  symmetric?: boolean;
  /** int4: scale / zero formula, 'gptq' (default), 'awq' (asymmetric) or 'absmax' (symmetric; implies symmetric). */
  formula?: Int4Formula;
  method?: 'rtn' | 'gptq';
  /** Globs over module names; default: every Linear / Conv1D / Embedding. */
  targets?: string[];
  ignore?: string[];
  /** Quantize embeddings too (default true; they dominate small models' size). */
  embeddings?: boolean;
  /** GPTQ: calibration batches (model inputs), dampening, act-order, block size. */
  calibration?: () => Iterable<Record<string, Tensor>>;
  percdamp?: number;
  actOrder?: boolean;
  log?: (line: string) => void;
  /** int8-static: how activation ranges are calibrated (default minmax) and the percentile for 'percentile'. */
  observer?: ObserverKind;
  percentile?: number;
  /** Called before a target's float weight is read (streaming passes copy it in from the file just then). */
  materialize?: (moduleName: string, weight: Tensor) => void;
  /**
   * GPTQ calibration pass. 'blockwise' (the default where the anatomy allows: GPT-2 and Llama decoders) captures
   * the first block's inputs once and carries the calibration activations from block to block, as the reference's
   * llama.py / opt.py do, so only one block needs float weights at a time; 'model' runs the whole partly
   * quantized model for every stage (any model). Both give the same Hessians.
   */
  gptqPass?: 'blockwise' | 'model';
  /**
   * Streaming passes: `start(path)` before a transformer block's layers are touched (read its other weights now),
   * `done(path)` once the block is final (write it out). RTN and blockwise GPTQ go block by block; the whole-model
   * GPTQ pass starts every block first and finishes them all at the end. Modules outside the blocks are never
   * announced: the caller has them from the start and writes them last.
   */
  blocks?: { start(path: string): void; done(path: string, state?: BlockwiseState): void };
  /**
   * Blockwise GPTQ, resumed from a checkpoint: blocks before `block` are done (already QuantLinear), `carried` holds
   * their output activations, and `report` what the interrupted run had reported so far (extended in place).
   */
  resumeFrom?: BlockwiseState;
}

/** One calibration batch's arguments to the next block (its hidden states first) and its token mask. */
export interface CarriedBatch {
  args: unknown[];
  mask: ArrayLike<number> | null;
}

/** Where the blockwise GPTQ pass stands after a block: what a checkpoint saves to resume from. */
export interface BlockwiseState {
  /** Blocks done (the next block's index). */
  block: number;
  carried: CarriedBatch[];
  report: QuantizeReport;
}

/** One entry of quantization_config.modules. */
export interface QuantModuleEntry {
  type: 'linear' | 'conv1d' | 'embedding';
  scheme: QuantScheme;
  bits: number;
  shape: [number, number];
  group_size: number;
  per_tensor: boolean;
  symmetric: boolean;
  bias: boolean;
  padding_idx?: number | null;
  /** Input features when the stored weight is zero-padded to a multiple of the group size. */
  in_features?: number;
  /** A head tied to this embedding's integer weight (module name). */
  shares?: string;
}

export interface QuantizeReport {
  modules: Record<string, QuantModuleEntry>;
  /** Float32 bytes of the quantized weights before, and integer bytes after (codes + scales + zeros). */
  floatBytes: number;
  quantBytes: number;
  /** Layers whose in_features the group size does not divide: [in_features, padded width]. */
  padded?: Record<string, [number, number]>;
  /** GPTQ: Σ (w − q)²/d² per layer (the reference's "error"). */
  gptqLoss?: Record<string, number>;
}

/** A module to quantize; `module` is cleared once it is replaced, so its float weight can be freed. */
type Target = { name: string; module: Linear | Conv1D | Embedding; kind: QuantModuleEntry['type'] };

/** Drop a quantized target's reference to its float module (streaming passes rely on the memory coming back). */
function release(t: Target): void {
  (t as { module: unknown }).module = null;
}

function resolved(o: QuantizeOptions): Required<Pick<QuantizeOptions, 'bits' | 'granularity' | 'groupSize' | 'symmetric' | 'method' | 'formula'>> {
  const int4 = o.scheme === 'int4';
  const bits = int4 ? (o.bits ?? 4) : 8;
  if (!int4 && o.bits !== undefined && o.bits !== 8) throw new Error(`scheme ${o.scheme} stores 8 bits, got bits ${o.bits}`);
  if (int4 && ![2, 3, 4].includes(bits)) throw new Error(`scheme int4: bits must be 2, 3 or 4, got ${bits}`);
  const granularity = o.granularity ?? (int4 ? 'group' : 'channel');
  if (isIntegerActivations(o.scheme) && granularity !== 'channel') throw new Error(`scheme ${o.scheme} needs per-channel weights, got granularity ${granularity}`);
  const formula = o.formula ?? 'gptq';
  if (formula !== 'gptq' && !int4) throw new Error(`--int4-formula ${formula} applies to scheme int4, not ${o.scheme}`);
  const symmetric = o.symmetric ?? (int4 ? formula === 'absmax' : true);
  checkFormula({ formula, symmetric });
  if (isIntegerActivations(o.scheme) && !symmetric) throw new Error(`scheme ${o.scheme} needs symmetric weights`);
  if (o.scheme === 'int8-static' && !o.calibration) throw new Error('scheme int8-static needs calibration data (--calib) to fix activation ranges');
  const method = o.method ?? 'rtn';
  if (method !== 'rtn' && method !== 'gptq') throw new Error(`--method must be rtn or gptq, got '${method as string}'`);
  return { bits, granularity, groupSize: o.groupSize ?? (granularity === 'group' ? 64 : 0), symmetric, method, formula };
}

/** Float weight of a target as [N, K] float32 (a Linear's weight; Conv1D's [in, out] transposed). */
function weightOf(t: Target, o: QuantizeOptions): { w: Float32Array; N: number; K: number } {
  const W = t.module.weight;
  o.materialize?.(t.name, W);
  const [N, K] = t.kind === 'embedding' ? (W.shape as [number, number]) : [(t.module as LinearLike).outFeatures, (t.module as LinearLike).inFeatures];
  const wOutIn = t.kind === 'embedding' ? W : (t.module as LinearLike).weightOutIn();
  return { w: wOutIn.contiguous().data as Float32Array, N, K };
}

const KEEP_FLOAT = new WeakSet<Module>();

/**
 * Modules quantization always leaves in float, whatever the targets say: a layer marks the parts whose precision
 * its design depends on (an MoE router: ST-MoE computes routing in float32, and an int8 router flips expert choices).
 */
export function keepFloat(m: Module): void {
  KEEP_FLOAT.add(m);
}

function collectTargets(model: Module, o: QuantizeOptions): Target[] {
  const out: Target[] = [];
  for (const [name, m] of model.namedModules()) {
    if (name === '' || KEEP_FLOAT.has(m)) continue;
    if (o.targets && !matchesAny(name, o.targets)) continue;
    if (o.ignore && matchesAny(name, o.ignore)) continue;
    if (m instanceof Linear) out.push({ name, module: m, kind: 'linear' });
    else if (m instanceof Conv1D) out.push({ name, module: m, kind: 'conv1d' });
    else if (m instanceof Embedding && o.embeddings !== false) out.push({ name, module: m, kind: 'embedding' });
  }
  return out;
}

/** A Hessian [K0, K0] embedded in [K, K] with zero rows/columns for padded inputs (GPTQ treats them as dead). */
function padHessian(H: Float64Array, K0: number, K: number): Float64Array {
  const out = new Float64Array(K * K);
  for (let i = 0; i < K0; i++) out.set(H.subarray(i * K0, (i + 1) * K0), i * K);
  return out;
}

/**
 * GPTQ's stages: the transformer block each module belongs to, read from the model anatomy (so pruned, replaced or
 * renamed blocks stage correctly); modules outside every block (embeddings, heads) form the last stage. A model
 * the anatomy does not know runs as one stage.
 */
function blockIndexer(model: Module): (name: string) => number {
  let blocks: { index: number; path: string }[];
  try {
    blocks = anatomy(model).blocks;
  } catch {
    return () => Infinity;
  }
  return (name) => blocks.find((b) => name.startsWith(`${b.path}.`))?.index ?? Infinity;
}

/** The transformer blocks' paths in forward order (none for a model the anatomy does not know). */
function blockPaths(model: Module): string[] {
  try {
    return anatomy(model).blocks.map((b) => b.path);
  } catch {
    return [];
  }
}

/** Quantize `model` in place; returns the module plan and sizes. */
export function quantizeModel(model: Module, o: QuantizeOptions): QuantizeReport {
  return quantizeModelImpl(model, o);
}
/** Names of the modules quantizeModel would quantize (without touching the model). */
quantizeModel.targetsOf = (model: Module, o: QuantizeOptions): string[] => collectTargets(model, o).map((t) => t.name);

function quantizeModelImpl(model: Module, o: QuantizeOptions): QuantizeReport {
  const r = resolved(o);
  const targets = collectTargets(model, o);
  const report: QuantizeReport = o.resumeFrom?.report ?? { modules: {}, floatBytes: 0, quantBytes: 0 };
  if (o.resumeFrom && (r.method !== 'gptq' || o.gptqPass === 'model')) throw new Error('resumeFrom: only the blockwise GPTQ pass resumes');
  // Embeddings first: heads tied to them reuse their integer weight.
  const byTensor = new Map<Tensor, { name: string; q: QuantizedWeight }>();
  const specFor = (K: number, embedding: boolean): WeightQuantSpec => {
    // int8-dynamic embeddings are plain int8 rows; group sizes that do not divide an embedding fall back to rows
    if (embedding && r.granularity === 'group' && K % r.groupSize !== 0) return { bits: 8, granularity: 'channel', symmetric: true };
    return { bits: r.bits, granularity: r.granularity, groupSize: r.groupSize, symmetric: r.symmetric, formula: r.formula };
  };
  const schemeFor = (spec: WeightQuantSpec): QuantScheme => (spec.bits < 8 ? 'int4' : isIntegerActivations(o.scheme) ? o.scheme : 'int8');
  const entry = (t: Target, q: QuantizedWeight, scheme: QuantScheme, spec: WeightQuantSpec, extra: Partial<QuantModuleEntry> = {}): QuantModuleEntry => ({
    type: t.kind,
    scheme,
    bits: q.bits,
    shape: q.shape,
    group_size: q.groupSize,
    per_tensor: q.perTensor,
    symmetric: spec.symmetric,
    bias: 'bias' in t.module && t.module.bias instanceof Tensor,
    ...extra,
  });

  for (const t of targets.filter((x) => x.kind === 'embedding')) {
    const emb = t.module as Embedding;
    const { w, N, K } = weightOf(t, o);
    const spec = specFor(K, true);
    const q = quantizeWeight(`${t.name}.weight`, w, N, K, spec);
    byTensor.set(emb.weight, { name: t.name, q });
    model.setSubmodule(t.name, new QuantEmbedding(q, emb.paddingIdx));
    report.modules[t.name] = entry(t, q, spec.bits < 8 ? 'int4' : 'int8', spec, { padding_idx: emb.paddingIdx });
    report.floatBytes += N * K * 4;
    report.quantBytes += quantizedBytes(q);
  }

  const linears = targets.filter((x) => x.kind !== 'embedding');
  // tied heads: share the embedding's integer weight (its rows are the head's output channels)
  const tied = linears.filter((t) => byTensor.has(t.module.weight));
  for (const t of tied) {
    const { name, q } = byTensor.get(t.module.weight)!;
    const bias = (t.module as Linear).bias;
    const scheme: QuantScheme = q.bits < 8 ? 'int4' : 'int8';
    model.setSubmodule(t.name, new QuantLinear(scheme, q, bias));
    report.modules[t.name] = { ...report.modules[name]!, type: t.kind, scheme, bias: bias instanceof Tensor, shares: name, padding_idx: undefined };
  }
  const todo = linears.filter((t) => !byTensor.has(t.module.weight));
  // the float embeddings and tied heads are replaced: let their float weights go
  byTensor.clear();
  for (const t of targets) if (!todo.includes(t)) release(t);
  // int8-static: observe every layer's input on the float model (before anything is swapped)
  const ranges = o.scheme === 'int8-static' ? observeInputs(model, todo.map((t) => t.name), o.calibration!(), o.observer ?? 'minmax', o.percentile) : null;
  const warned = new Set<string>();
  const factors = new WeakMap<Float64Array, { key: string; U: Float64Array }>();
  const quantizeOne = (t: Target, H: Float64Array | null) => {
    const { w: w0, N, K: K0 } = weightOf(t, o);
    const spec = specFor(K0, false);
    // a group size that does not divide in_features: zero columns up to the next multiple (stored, never computed on)
    const K = spec.granularity === 'group' && K0 % spec.groupSize! !== 0 ? Math.ceil(K0 / spec.groupSize!) * spec.groupSize! : K0;
    let w = w0;
    if (K !== K0) {
      (report.padded ??= {})[t.name] = [K0, K];
      if (!warned.has(`${K0}`)) {
        warned.add(`${K0}`);
        o.log?.(`${t.name}: group size ${spec.groupSize} does not divide in_features ${K0}; zero columns pad it to ${K} (stored, never multiplied: ${(((K - K0) / K0) * 100).toFixed(0)} % more codes, same outputs). Choose a divisor of ${K0} to avoid the padding.`);
      }
      w = new Float32Array(N * K);
      for (let n = 0; n < N; n++) w.set(w0.subarray(n * K0, (n + 1) * K0), n * K);
      if (H) H = padHessian(H, K0, K);
    }
    let q: QuantizedWeight;
    if (H) {
      const g = gptqQuantize(`${t.name}.weight`, w, N, K, H, spec, { percdamp: o.percdamp ?? 0.01, actOrder: o.actOrder ?? false, factors });
      q = g.q;
      (report.gptqLoss ??= {})[t.name] = g.loss;
    } else q = quantizeWeight(`${t.name}.weight`, w, N, K, spec);
    const b = (t.module as Linear | Conv1D).bias;
    const bias = b instanceof Tensor ? b : null;
    const scheme = schemeFor(spec);
    const ql = new QuantLinear(scheme, q, bias, K0);
    if (t.kind === 'conv1d') ql.origin = 'conv1d';
    if (ranges && scheme === 'int8-static') {
      const p = ranges.get(t.name)!.qparams();
      ql.setInputQuant(p.scale, p.zero);
    }
    model.setSubmodule(t.name, ql);
    report.modules[t.name] = entry(t, q, scheme, spec, K !== K0 ? { in_features: K0 } : {});
    report.floatBytes += N * K0 * 4;
    report.quantBytes += quantizedBytes(q);
    release(t);
  };

  if (r.method === 'rtn') {
    const blocks = o.blocks ? blockPaths(model) : [];
    for (const path of blocks) {
      o.blocks!.start(path);
      for (const t of todo) if (t.name.startsWith(`${path}.`)) quantizeOne(t, null);
      o.blocks!.done(path);
    }
    for (const t of todo) if (!blocks.some((p) => t.name.startsWith(`${p}.`))) quantizeOne(t, null);
    return report;
  }
  if (!o.calibration) throw new Error('GPTQ needs calibration data (--calib)');
  const blockwise = o.gptqPass !== 'model' ? blockwisePlan(model, todo) : null;
  if (o.gptqPass === 'blockwise' && !blockwise) throw new Error('GPTQ blockwise pass: the model has no final norm + lm_head anatomy (GPT-2 / Llama decoders only)');
  // calibration forwards run in eval mode (no dropout), as the reference's
  const wasTraining = model.training;
  model.eval();
  try {
    if (blockwise) gptqBlockwise(model, todo, blockwise, o, quantizeOne, report);
    else if (o.resumeFrom) throw new Error('resumeFrom: the model has no blockwise plan');
    else gptqWholeModel(model, todo, o, quantizeOne);
  } finally {
    if (wasTraining) model.train();
  }
  return report;
}

/** GPTQ with the whole-model pass: every stage runs the calibration set through the whole, partly quantized model. */
function gptqWholeModel(model: Module, todo: Target[], o: QuantizeOptions, quantizeOne: (t: Target, H: Float64Array) => void): void {
  const paths = o.blocks ? blockPaths(model) : [];
  for (const p of paths) o.blocks!.start(p);
  for (const t of todo) o.materialize?.(t.name, t.module.weight);
  const blockIndex = blockIndexer(model);
  const stages = [...new Set(todo.map((t) => blockIndex(t.name)))].sort((a, b) => a - b);
  for (const s of stages)
    gatherAndQuantize(todo.filter((t) => blockIndex(t.name) === s), o, quantizeOne, (hs) => {
      for (const batch of o.calibration!()) {
        // padding positions are not data: a layer that sees one row per token (B·T rows) skips the masked ones
        hs.next(batch.attentionMask ? (batch.attentionMask.contiguous().data as ArrayLike<number>) : null);
        callForward(model, batch);
      }
    });
  for (const p of paths) o.blocks!.done(p);
}

/** Hook a stage's layers, run the calibration forwards `run` makes, then GPTQ-quantize each layer with its Hessian. */
function gatherAndQuantize(stage: Target[], o: QuantizeOptions, quantizeOne: (t: Target, H: Float64Array) => void, run: (hs: StageHessians) => void): void {
  const hs = new StageHessians();
  const hooks = stage.map((t) => registerForwardPreHook(t.module, (_m, inputs) => hs.add(t, inputs[0] as Tensor)));
  try {
    noGrad(() => run(hs));
  } finally {
    for (const h of hooks) h.remove();
  }
  for (const t of stage) {
    o.log?.(`gptq ${t.name}`);
    quantizeOne(t, hs.take(t));
  }
}

/**
 * Running GPTQ Hessians of one stage's layers. Layers that read the very same input tensor in a forward (q/k/v,
 * gate/up) share one accumulator: identical sums, a third of the memory and of the xᵀx products.
 */
class StageHessians {
  private readonly acc = new Map<Target, { h: Float64Array; n: number; batch: number }>();
  private seen = new Map<Tensor, { h: Float64Array; n: number; batch: number }>();
  private batch = -1;
  private mask: ArrayLike<number> | null = null;
  /** Start the next calibration batch; `tokenMask` has one entry per token (0 = padding, left out). */
  next(tokenMask: ArrayLike<number> | null): void {
    this.batch++;
    this.mask = tokenMask;
    this.seen = new Map();
  }
  add(t: Target, x: Tensor): void {
    let a = this.acc.get(t);
    if (!a) {
      const K = (t.module as LinearLike).inFeatures;
      a = this.seen.get(x) ?? { h: new Float64Array(K * K), n: 0, batch: -1 };
      this.acc.set(t, a);
    }
    this.seen.set(x, a);
    if (a.batch === this.batch) return; // a layer sharing this input already added it
    a.batch = this.batch;
    a.n = accumulateInputs(a.h, x, (t.module as LinearLike).inFeatures, a.n, this.mask);
  }
  /** The layer's Hessian (shared with the layers that read the same input). */
  take(t: Target): Float64Array {
    const a = this.acc.get(t);
    if (!a) throw new Error(`GPTQ: ${t.name} saw no calibration input (is it on the forward path?)`);
    this.acc.delete(t);
    return a.h;
  }
}

/** What the blockwise GPTQ pass needs: the blocks in forward order, the final norm, and the head (if quantized). */
interface BlockwisePlan {
  blocks: string[];
  finalNorm: string;
  head: Target | null;
}

/**
 * The blockwise plan, or null when the model is not a decoder whose blocks feed `head(finalNorm(x))` (BERT's heads
 * have their own transforms; such models take the whole-model pass).
 */
function blockwisePlan(model: Module, todo: Target[]): BlockwisePlan | null {
  let a: ReturnType<typeof anatomy>;
  try {
    a = anatomy(model);
  } catch {
    return null;
  }
  if (!a.finalNorm || a.blocks.length === 0) return null;
  const outside = todo.filter((t) => !a.blocks.some((b) => t.name.startsWith(`${b.path}.`)));
  if (outside.some((t) => t.name !== a.head)) return null;
  return { blocks: a.blocks.map((b) => b.path), finalNorm: a.finalNorm, head: outside[0] ?? null };
}

/** Thrown by the capture hook to stop a forward at the first block. */
const CAPTURED = Symbol('gptq: first block inputs captured');

/**
 * GPTQ, block by block: the calibration batches run once up to the first block (its arguments captured, the rest
 * of the forward skipped); then for each block, the float block's layers gather their Hessians, are quantized, and
 * the quantized block's outputs replace its inputs as the next block's. The head's Hessian is gathered from
 * finalNorm(last block's output). Float weights are needed (materialized) one block at a time.
 */
function gptqBlockwise(model: Module, todo: Target[], plan: BlockwisePlan, o: QuantizeOptions, quantizeOne: (t: Target, H: Float64Array) => void, report: QuantizeReport): void {
  const start = o.resumeFrom?.block ?? 0;
  if (!(Number.isInteger(start) && start >= 0 && start <= plan.blocks.length)) throw new Error(`resumeFrom.block ${start}: the model has ${plan.blocks.length} blocks`);
  const carried: CarriedBatch[] = o.resumeFrom ? o.resumeFrom.carried : [];
  const first = model.getSubmodule(plan.blocks[0]!);
  noGrad(() => {
    if (o.resumeFrom) return;
    for (const batch of o.calibration!()) {
      const mask = batch.attentionMask ? (batch.attentionMask.contiguous().data as ArrayLike<number>) : null;
      const hook = registerForwardPreHook(first, (_m, inputs) => {
        carried.push({ args: [...inputs], mask });
        throw CAPTURED;
      });
      try {
        callForward(model, batch);
        throw new Error(`GPTQ: the forward never reached ${plan.blocks[0]}`);
      } catch (e) {
        if (e !== CAPTURED) throw e;
      } finally {
        hook.remove();
      }
    }
  });
  if (carried.length === 0) throw new Error('GPTQ: the calibration data has no batches');
  for (const [i, path] of plan.blocks.entries()) {
    if (i < start) continue;
    const block = model.getSubmodule(path);
    o.blocks?.start(path);
    const stage = todo.filter((t) => t.name.startsWith(`${path}.`));
    for (const t of stage) o.materialize?.(t.name, t.module.weight);
    if (stage.length)
      gatherAndQuantize(stage, o, quantizeOne, (hs) => {
        for (const c of carried) {
          hs.next(c.mask);
          callForward(block, ...c.args);
        }
      });
    // the quantized block's outputs are the next block's inputs
    noGrad(() => {
      for (const c of carried) {
        const r = callForward(block, ...c.args) as Tensor | { out: Tensor };
        c.args[0] = r instanceof Tensor ? r : r.out;
      }
    });
    o.blocks?.done(path, { block: i + 1, carried, report });
  }
  const head = plan.head;
  if (head) {
    // the head's forward never runs here: its float weight is read when it is quantized, after the activations go
    const norm = model.getSubmodule(plan.finalNorm);
    gatherAndQuantize([head], o, quantizeOne, (hs) => {
      for (const c of carried) {
        hs.next(c.mask);
        hs.add(head, callForward(norm, c.args[0]) as Tensor);
      }
      carried.length = 0; // the activations are done with: free them before the head (the largest layer) is quantized
    });
  }
}
