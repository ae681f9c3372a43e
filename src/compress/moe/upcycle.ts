/**
 * `moe.upcycle` (trained): sparse upcycling (Komatsuzaki et al. 2022). Each targeted dense FFN (BERT, GPT-2)
 * becomes an MoE layer of `experts` copies of itself (each with the FFN's biases) and a new router (seeded
 * N(0, router_init²), no bias); with top-k ≥ 2 the renormalised gates sum to one, so before training the layer
 * is the dense FFN for every token that is not dropped. The stage then trains the model with the task loss plus
 * the routers' auxiliary losses, read with collectAuxLosses after each forward: `z_loss` (weight `z_loss_weight`,
 * ST-MoE 1e-3) and `balance_loss` (`balance_loss_weight`, 1e-2), each summed over the layers. Routing options as in
 * layer.ts (capacity factor 1.25 in training, 2.0 in evaluation, jitter, expert dropout).
 */
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import { Linear, type LinearLike } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { noGrad } from '../../tensor/autograd.ts';
import { Generator } from '../../tensor/random.ts';
import { replaceMlp } from '../../models/anatomy.ts';
import { collectAuxLosses } from '../../nn/hooks.ts';
import { ffnUnits } from '../prune/importance.ts';
import { MoEExpert, MoELayer, type SecondPolicy } from './layer.ts';

export interface UpcycleConfig {
  experts: number;
  top_k: number;
  capacity_factor: number;
  eval_capacity_factor: number;
  min_capacity: number;
  jitter: number;
  expert_dropout: number;
  second_policy: SecondPolicy;
  batch_prioritized: boolean;
  z_loss_weight: number;
  balance_loss_weight: number;
  router_init: number;
  seed: number;
  targets: string[] | null;
  ignore: string[] | null;
}

const defaults: UpcycleConfig = {
  experts: 4, top_k: 2, capacity_factor: 1.25, eval_capacity_factor: 2, min_capacity: 4, jitter: 0, expert_dropout: 0, second_policy: 'all',
  batch_prioritized: false, z_loss_weight: 1e-3, balance_loss_weight: 1e-2, router_init: 0.02, seed: 0, targets: null, ignore: null,
};

export const upcycle: Method<UpcycleConfig> = {
  name: 'moe.upcycle',
  kind: 'trained',
  description: 'sparse upcycling: dense FFNs become MoE layers of copies of themselves with a new router, trained with router z-loss and load balancing',
  defaults,
  types: { experts: 'integer', top_k: 'integer', min_capacity: 'integer', second_policy: ['all', 'random', 'sampling'], seed: 'integer', targets: 'string[]', ignore: 'string[]' },
  globs: ['targets', 'ignore'],
  check: (model, cfg) => {
    if (!(Number.isInteger(cfg.experts) && cfg.experts >= 2)) throw new Error(`moe.upcycle: option 'experts' must be an integer >= 2, got ${cfg.experts}`);
    if (!(cfg.top_k >= 1 && cfg.top_k <= cfg.experts)) throw new Error(`moe.upcycle: option 'top_k' must be in [1, experts], got ${cfg.top_k}`);
    const ffns = ffnUnits(model, cfg.targets, cfg.ignore);
    if (ffns.length === 0) throw new Error('moe.upcycle: no dense FFN is targeted');
    for (const f of ffns) if (f.m.kind !== 'dense') throw new Error(`moe.upcycle: block ${f.index} has a ${f.m.kind} FFN (dense BERT / GPT-2 FFNs only)`);
  },
  apply: (model, cfg, ctx) => {
    const ffns = ffnUnits(model, cfg.targets, cfg.ignore);
    const layers: MoELayer[] = [];
    const gen = new Generator(cfg.seed);
    for (const f of ffns) {
      const up = model.getSubmodule(f.m.up!) as unknown as LinearLike;
      const down = model.getSubmodule(f.m.down!) as unknown as LinearLike;
      const [wu, wd] = noGrad(() => [up.weightOutIn().contiguous(), down.weightOutIn().contiguous()]);
      const experts = Array.from({ length: cfg.experts }, () =>
        noGrad(() => new MoEExpert(Linear.fromWeights(wu!, up.bias), Linear.fromWeights(wd!, down.bias), f.m.activation!, cfg.expert_dropout)),
      );
      const router = Linear.fromWeights(Tensor.randn([cfg.experts, wu!.shape[1]!], { generator: gen }).mul(cfg.router_init), null);
      const layer = new MoELayer(router, experts, {
        topK: cfg.top_k, capacityFactor: cfg.capacity_factor, evalCapacityFactor: cfg.eval_capacity_factor, minCapacity: cfg.min_capacity,
        jitter: cfg.jitter, secondPolicy: cfg.second_policy, batchPrioritized: cfg.batch_prioritized,
      });
      layer._generator = new Generator(cfg.seed + 1 + f.index);
      replaceMlp(model, f.index, layer);
      layers.push(layer);
    }
    const mine = new Set(layers);
    ctx.log?.(`moe.upcycle: ${layers.length} FFNs → ${cfg.experts} experts each, top-${cfg.top_k}`);
    const paths = () => new Map(model.namedModules().filter(([, m]) => mine.has(m as MoELayer)).map(([p, m]) => [m, p]));
    return {
      losses: () => {
        const aux = collectAuxLosses(model);
        let z: Tensor | null = null;
        let b: Tensor | null = null;
        for (const p of paths().values()) {
          const zl = aux.get(p ? `${p}.z_loss` : 'z_loss');
          const bl = aux.get(p ? `${p}.balance_loss` : 'balance_loss');
          if (zl) z = z ? z.add(zl) : zl;
          if (bl) b = b ? b.add(bl) : bl;
        }
        const out: Record<string, Tensor> = {};
        if (z) out.z_loss = z.mul(cfg.z_loss_weight);
        if (b) out.balance_loss = b.mul(cfg.balance_loss_weight);
        return out;
      },
      report: () => {
        let slots = 0, kept = 0, tokens = 0;
        const loads: number[] = [];
        for (const l of layers) {
          slots += l.stats.slots;
          kept += l.stats.kept;
          tokens += l.stats.tokens;
          const tot = l.stats.load.reduce((a, v) => a + v, 0) || 1;
          loads.push(Math.max(...l.stats.load) / tot);
        }
        return {
          experts: cfg.experts,
          top_k: cfg.top_k,
          ffns: layers.length,
          routed_tokens: tokens,
          dropped_fraction: slots ? 1 - kept / slots : 0,
          max_expert_load: loads.length ? Math.max(...loads) : 0,
        };
      },
    };
  },
};

registerMethod(upcycle);
