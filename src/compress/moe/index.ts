/** Sparse mixture-of-experts: the MoE layer (layer.ts), MoEfication (`moe.moefy`) and sparse upcycling (`moe.upcycle`). */
import { registerModuleType } from '../structure.ts';
import { Linear } from '../../nn/layers.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { ShrinkError, show } from '../../io/errors.ts';
import { LAYER_DEFAULTS, MoEExpert, MoELayer, type MoELayerOptions } from './layer.ts';

export * from './layer.ts';
export * from './moefy.ts';
export * from './upcycle.ts';

registerModuleType<MoELayer>({
  type: 'moe',
  cls: MoELayer,
  describe: (m) => ({
    hidden_size: m.router.inFeatures,
    num_experts: m.numExperts,
    expert_sizes: m.experts.map((e) => e.up.outFeatures),
    activation: m.experts[0]!.activation,
    expert_dropout: m.experts[0]!.dropout,
    up_bias: m.experts[0]!.up.bias !== null,
    down_bias: m.experts[0]!.down.bias !== null,
    bias: m.bias !== null,
    routing: { ...m.options },
  }),
  build: (e, where) => {
    const int = (k: string) => {
      const v = e[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new ShrinkError(`${where}.${k}: expected an integer >= 1, got ${show(v)}`);
      return v;
    };
    const d = int('hidden_size');
    const E = int('num_experts');
    const sizes = e.expert_sizes;
    if (!Array.isArray(sizes) || sizes.length !== E || !sizes.every((s) => Number.isSafeInteger(s) && s > 0))
      throw new ShrinkError(`${where}.expert_sizes: expected ${E} positive integers, got ${show(sizes)}`);
    if (typeof e.activation !== 'string') throw new ShrinkError(`${where}.activation: expected a string, got ${show(e.activation)}`);
    const routing = (typeof e.routing === 'object' && e.routing !== null ? e.routing : {}) as Partial<MoELayerOptions>;
    for (const k of Object.keys(routing)) if (!(k in LAYER_DEFAULTS)) throw new ShrinkError(`${where}.routing: unknown option '${k}'`);
    const experts = (sizes as number[]).map(
      (f) => new MoEExpert(new Linear(d, f, { bias: e.up_bias !== false }), new Linear(f, d, { bias: e.down_bias !== false }), e.activation as string, typeof e.expert_dropout === 'number' ? e.expert_dropout : 0),
    );
    return new MoELayer(new Linear(d, E, { bias: false }), experts, routing, e.bias === true ? Tensor.zeros([d]).requiresGrad_() : null);
  },
});
