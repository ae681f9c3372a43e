/**
 * `moe.moefy` (one-shot): MoEfication (Zhang et al. 2022) of trained dense FFNs (BERT, GPT-2).
 *
 * Per targeted FFN act(x·W_uᵀ + b_u)·W_dᵀ + b_d with f neurons:
 * 1. the neurons are split into `experts` equal groups by balanced k-means on the (unit-normalised) rows of W_u
 *    (seeded; every cluster holds exactly f/E neurons: each assignment round places (neuron, centre) pairs in order
 *    of distance into centres with room left);
 * 2. expert e is the FFN restricted to its neurons (W_u rows, b_u entries, W_d columns); b_d stays a shared output
 *    bias. With every expert active and gates of one, the MoE layer is exactly the dense FFN;
 * 3. a linear router (no bias) is trained for `router_steps` full-batch Adam steps of binary cross-entropy to
 *    predict, per calibration token, the `top_k` experts with the largest activation norm ‖act(x·W_u[S_e]ᵀ + b_u)‖;
 * 4. at inference each token runs its router's `top_k` experts (gates of one, no capacity limit), so the active
 *    neuron fraction is top_k / experts.
 */
import type { Method, RecipeContext } from '../method.ts';
import { registerMethod } from '../method.ts';
import type { Module } from '../../nn/module.ts';
import { Linear, type LinearLike } from '../../nn/layers.ts';
import { AdamW } from '../../nn/optim.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad, enableGrad } from '../../tensor/autograd.ts';
import { Generator } from '../../tensor/random.ts';
import { activation } from '../../models/activations.ts';
import { replaceMlp } from '../../models/anatomy.ts';
import { calibrationOf, ffnUnits, type FfnUnits } from '../prune/importance.ts';
import { captureTokenRows } from '../capture.ts';
import { MoEExpert, MoELayer } from './layer.ts';

export interface MoefyConfig {
  /** Experts per FFN (the FFN width must be a multiple). */
  experts: number;
  /** Experts each token runs at inference. */
  top_k: number;
  /** Balanced k-means rounds. */
  kmeans_iters: number;
  /** Router training: full-batch Adam steps and learning rate. */
  router_steps: number;
  router_lr: number;
  seed: number;
  targets: string[] | null;
  ignore: string[] | null;
}

const defaults: MoefyConfig = { experts: 8, top_k: 2, kmeans_iters: 15, router_steps: 300, router_lr: 1e-2, seed: 0, targets: null, ignore: null };

/**
 * Balanced k-means of the n rows of `x` [n, d] into k clusters of n/k rows each (n divisible by k). Returns the
 * cluster of each row.
 */
export function balancedKMeans(x: Float64Array, n: number, d: number, k: number, iters: number, seed: number): Int32Array {
  if (n % k !== 0) throw new Error(`balancedKMeans: ${n} rows do not split into ${k} equal clusters`);
  const size = n / k;
  const gen = new Generator(seed);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = gen.randint(0, i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const c = new Float64Array(k * d);
  for (let e = 0; e < k; e++) c.set(x.subarray(perm[e]! * d, perm[e]! * d + d), e * d);
  const assign = new Int32Array(n);
  const dist = new Float64Array(n * k);
  for (let it = 0; it < iters; it++) {
    for (let i = 0; i < n; i++)
      for (let e = 0; e < k; e++) {
        let s = 0;
        for (let t = 0; t < d; t++) {
          const v = x[i * d + t]! - c[e * d + t]!;
          s += v * v;
        }
        dist[i * k + e] = s;
      }
    const pairs = Array.from({ length: n * k }, (_, p) => p).sort((a, b) => dist[a]! - dist[b]! || a - b);
    const room = new Int32Array(k).fill(size);
    const done = new Uint8Array(n);
    let left = n;
    for (const p of pairs) {
      if (left === 0) break;
      const i = Math.floor(p / k);
      const e = p % k;
      if (done[i] || room[e] === 0) continue;
      assign[i] = e;
      done[i] = 1;
      room[e]!--;
      left--;
    }
    c.fill(0);
    for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) c[assign[i]! * d + t] += x[i * d + t]! / size;
  }
  return assign;
}

interface DenseFfn {
  wu: Tensor; // [f, d]
  bu: Tensor | null;
  wd: Tensor; // [d, f]
  bd: Tensor | null;
  act: string;
}

function denseOf(model: Module, f: FfnUnits): DenseFfn {
  const up = model.getSubmodule(f.m.up!) as unknown as LinearLike;
  const down = model.getSubmodule(f.m.down!) as unknown as LinearLike;
  return noGrad(() => ({
    wu: up.weightOutIn().contiguous().to('float32'),
    bu: up.bias ? up.bias.to('float32') : null,
    wd: down.weightOutIn().contiguous().to('float32'),
    bd: down.bias ? down.bias.to('float32') : null,
    act: f.m.activation!,
  }));
}

/** The MoE layer of a dense FFN split by `clusters` (expert of each neuron); a router of zeros until trained. */
export function moeFromDense(ffn: DenseFfn, clusters: Int32Array, experts: number, topK: number): MoELayer {
  const d = ffn.wu.shape[1]!;
  const ex: MoEExpert[] = [];
  for (let e = 0; e < experts; e++) {
    const idx = Tensor.from(Int32Array.from([...clusters.keys()].filter((i) => clusters[i] === e)), { dtype: 'int32' });
    const up = noGrad(() => Linear.fromWeights(ffn.wu.indexSelect(0, idx), ffn.bu ? ffn.bu.indexSelect(0, idx) : null));
    const down = noGrad(() => Linear.fromWeights(ffn.wd.indexSelect(1, idx), null));
    ex.push(new MoEExpert(up, down, ffn.act));
  }
  const router = Linear.fromWeights(Tensor.zeros([experts, d]), null);
  const bias = ffn.bd ? noGrad(() => ffn.bd!.clone()).requiresGrad_() : null;
  return new MoELayer(router, ex, { topK, gate: 'one', capacityFactor: 0, evalCapacityFactor: 0, groups: 'row' }, bias);
}

/** Per token, the activation norm of each expert: [n, E]. */
function expertNorms(layer: MoELayer, x: Tensor): Tensor {
  return noGrad(() => {
    const cols = layer.experts.map((ex) => {
      const h = activation(ex.activation, 'moe.moefy')(ex.up.forward(x));
      return h.square().sum(-1, true).sqrt();
    });
    return catCols(cols);
  });
}

function catCols(cols: Tensor[]): Tensor {
  const n = cols[0]!.shape[0]!;
  const E = cols.length;
  const out = new Float32Array(n * E);
  cols.forEach((c, e) => {
    const v = c.toArray();
    for (let i = 0; i < n; i++) out[i * E + e] = v[i]!;
  });
  return Tensor.from(out, { shape: [n, E] });
}

/** Multi-hot [n, E] of each row's k largest entries. */
function topKTargets(v: Tensor, k: number): Tensor {
  const idx = v.topk(k, -1).indices.toArray();
  const [n, E] = v.shape as [number, number];
  const y = new Float32Array(n * E);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) y[i * E + idx[i * k + j]!] = 1;
  return Tensor.from(y, { shape: [n, E] });
}

/** Train the router's weight (BCE on multi-hot targets); returns the top-k recall on the training tokens. */
export function trainRouter(layer: MoELayer, x: Tensor, targets: Tensor, k: number, steps: number, lr: number, seed: number): number {
  const [n] = x.shape as [number];
  const E = layer.numExperts;
  const gen = new Generator(seed);
  noGrad(() => layer.router.weight.copy_(Tensor.randn(layer.router.weight.shape, { generator: gen }).mul(0.01)));
  const w = layer.router.weight;
  const opt = new AdamW([{ params: [w] }], { lr, weightDecay: 0 });
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    enableGrad(() => {
      const z = x.matmul(w.t());
      // BCE with logits: softplus(z) − y·z, stable form relu(z) + log(1 + e^−|z|) − y·z
      const loss = z.relu().add(z.abs().neg().exp().add(1).log()).sub(z.mul(targets)).sum().div(n * E);
      loss.backward();
    });
    opt.step();
  }
  return noGrad(() => {
    const pred = x.matmul(w.t()).topk(k, -1).indices.toArray();
    const t = targets.toArray();
    let hit = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) hit += t[i * E + pred[i * k + j]!]!;
    return hit / (n * k);
  });
}

/** Inputs of each targeted FFN on the calibration tokens (padding left out): [tokens, d] per FFN. */
function ffnInputs(model: Module, ffns: FfnUnits[], ctx: RecipeContext): Tensor[] {
  const rows = captureTokenRows(model, calibrationOf('moe.moefy', ctx), ffns.map((f) => f.m.up!), [], 'moe.moefy');
  return ffns.map((f) => rows.inputs.get(f.m.up!)!);
}

function plan(model: Module, cfg: MoefyConfig): FfnUnits[] {
  if (!(Number.isInteger(cfg.experts) && cfg.experts >= 2)) throw new Error(`moe.moefy: option 'experts' must be an integer >= 2, got ${cfg.experts}`);
  if (!(Number.isInteger(cfg.top_k) && cfg.top_k >= 1 && cfg.top_k <= cfg.experts)) throw new Error(`moe.moefy: option 'top_k' must be an integer in [1, experts], got ${cfg.top_k}`);
  const ffns = ffnUnits(model, cfg.targets, cfg.ignore);
  if (ffns.length === 0) throw new Error('moe.moefy: no dense FFN is targeted');
  for (const f of ffns) {
    if (f.m.kind !== 'dense') throw new Error(`moe.moefy: block ${f.index} has a ${f.m.kind} FFN (dense BERT / GPT-2 FFNs only)`);
    if (f.units % cfg.experts !== 0) throw new Error(`moe.moefy: block ${f.index}'s FFN has ${f.units} neurons, not a multiple of experts ${cfg.experts}`);
  }
  return ffns;
}

export const moefy: Method<MoefyConfig> = {
  name: 'moe.moefy',
  kind: 'one-shot',
  description: 'MoEfication: split dense FFNs into experts by balanced k-means, train a router on calibration data, run the top-k experts per token',
  defaults,
  types: { experts: 'integer', top_k: 'integer', kmeans_iters: 'integer', router_steps: 'integer', seed: 'integer', targets: 'string[]', ignore: 'string[]' },
  globs: ['targets', 'ignore'],
  check: (model, cfg, ctx) => {
    plan(model, cfg);
    if (!ctx.calibration) throw new Error('moe.moefy needs calibration data to train its routers: give the recipe a task (or --task)');
  },
  apply: (model, cfg, ctx) => {
    const ffns = plan(model, cfg);
    const inputs = ffnInputs(model, ffns, ctx);
    const recalls: number[] = [];
    let neurons = 0;
    for (const [li, f] of ffns.entries()) {
      const dense = denseOf(model, f);
      const [n, d] = dense.wu.shape as [number, number];
      const rows = Float64Array.from(dense.wu.toArray() as ArrayLike<number>);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += rows[i * d + t]! ** 2;
        const inv = 1 / (Math.sqrt(s) || 1);
        for (let t = 0; t < d; t++) rows[i * d + t]! *= inv;
      }
      const clusters = balancedKMeans(rows, n, d, cfg.experts, cfg.kmeans_iters, cfg.seed + f.index);
      const layer = moeFromDense(dense, clusters, cfg.experts, cfg.top_k);
      const x = inputs[li]!;
      const targets = topKTargets(expertNorms(layer, x), cfg.top_k);
      const recall = trainRouter(layer, x, targets, cfg.top_k, cfg.router_steps, cfg.router_lr, cfg.seed + 1000 + f.index);
      recalls.push(recall);
      neurons += n;
      replaceMlp(model, f.index, layer);
      ctx.log?.(`moe.moefy: block ${f.index}: ${cfg.experts} experts of ${n / cfg.experts} neurons, router top-${cfg.top_k} recall ${recall.toFixed(3)} on ${x.shape[0]} tokens`);
    }
    return {
      report: () => ({
        experts: cfg.experts,
        top_k: cfg.top_k,
        ffns: ffns.length,
        ffn_neurons: neurons,
        active_neuron_fraction: cfg.top_k / cfg.experts,
        router_recall: recalls.reduce((a, b) => a + b, 0) / recalls.length,
        calibration_tokens: inputs[0]!.shape[0]!,
      }),
    };
  },
};

registerMethod(moefy);
