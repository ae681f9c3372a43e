/** The quantization methods behind the Method interface, for recipes: quant.rtn, quant.gptq, quant.qat. */
import type { Method } from '../method.ts';
import { registerMethod } from '../method.ts';
import type { Module } from '../../nn/module.ts';
import { QuantEmbedding, QuantLinear, quantizedBytes, type QuantScheme } from './modules.ts';
import { quantizeModel } from './apply.ts';
import { convertQat, prepareQat } from './qat.ts';
import { parseGranularity } from './rtn.ts';

export interface QuantMethodConfig {
  /** int8 | int8-dynamic | int4 */
  scheme: QuantScheme;
  /** int4 scheme: 4, 3 or 2. */
  bits: number | null;
  /** tensor | channel | group:<size>; null = the scheme's default. */
  granularity: string | null;
  symmetric: boolean | null;
  targets: string[] | null;
  ignore: string[] | null;
  embeddings: boolean;
  /** GPTQ dampening and act-order. */
  percdamp: number;
  act_order: boolean;
}

const defaults: QuantMethodConfig = { scheme: 'int8', bits: null, granularity: null, symmetric: null, targets: null, ignore: null, embeddings: true, percdamp: 0.01, act_order: false };

function options(cfg: QuantMethodConfig) {
  const g = cfg.granularity ? parseGranularity(cfg.granularity) : undefined;
  return {
    scheme: cfg.scheme,
    bits: cfg.bits ?? undefined,
    granularity: g?.granularity,
    groupSize: g?.groupSize,
    symmetric: cfg.symmetric ?? undefined,
    targets: cfg.targets ?? undefined,
    ignore: cfg.ignore ?? undefined,
    embeddings: cfg.embeddings,
    percdamp: cfg.percdamp,
    actOrder: cfg.act_order,
  };
}

/** Integer bytes and weight count of the quantized modules. */
function report(model: Module): Record<string, number> {
  let bytes = 0;
  let weights = 0;
  const seen = new Set<unknown>();
  for (const m of model.modules())
    if ((m instanceof QuantLinear || m instanceof QuantEmbedding) && !seen.has(m.qweight.codes)) {
      seen.add(m.qweight.codes);
      bytes += quantizedBytes(m.qweight);
      weights += m.qweight.shape[0] * m.qweight.shape[1];
    }
  return { quantized_weights: weights, quantized_bytes: bytes, bits_per_weight: weights ? (8 * bytes) / weights : 0 };
}

export const quantRtn: Method<QuantMethodConfig> = {
  name: 'quant.rtn',
  defaults,
  apply: (model, cfg) => void quantizeModel(model, { ...options(cfg), method: 'rtn' }),
  report,
};

export const quantGptq: Method<QuantMethodConfig> = {
  name: 'quant.gptq',
  defaults: { ...defaults, scheme: 'int4' },
  apply: (model, cfg, ctx) => {
    if (!ctx.calibration) throw new Error('quant.gptq needs calibration batches in the recipe context');
    quantizeModel(model, { ...options(cfg), method: 'gptq', calibration: ctx.calibration, log: ctx.log });
  },
  report,
};

export const quantQat: Method<QuantMethodConfig> = {
  name: 'quant.qat',
  defaults,
  apply: (model, cfg) => void prepareQat(model, { scheme: cfg.scheme, bits: cfg.bits ?? undefined, groupSize: options(cfg).groupSize, targets: cfg.targets ?? undefined, ignore: cfg.ignore ?? undefined }),
  finalize: (model, cfg) => {
    convertQat(model);
    quantizeModel(model, { ...options(cfg), method: 'rtn' }); // embeddings and layers QAT left in float
  },
  report,
};

for (const m of [quantRtn, quantGptq, quantQat]) registerMethod(m);
