/**
 * The quantization methods behind the Method interface, for recipes:
 * - `quant.rtn` (one-shot): round to nearest, every scheme (int8, int8-dynamic, int8-static with calibrated
 *   activation ranges, int4/3/2 group-wise);
 * - `quant.gptq` (one-shot): GPTQ with calibration data from the recipe's task;
 * - `quant.qat` (trained): fake-quantized Linear layers train with the stage, then convert to integers; whatever
 *   QAT left in float (embeddings, layers a group size does not divide) is quantized by RTN with the same options.
 */
import type { Method, RecipeContext } from '../method.ts';
import { registerMethod } from '../method.ts';
import type { Module } from '../../nn/module.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { registerModuleType } from '../structure.ts';
import { QuantEmbedding, QuantLinear, QUANT_SCHEMES, quantizedBytes, type QuantScheme } from './modules.ts';
import { quantizeModel, type QuantizeOptions } from './apply.ts';
import { FakeQuantLinear, convertQat, prepareQat, qatSpec } from './qat.ts';
import { INT4_FORMULAS, parseGranularity, type Int4Formula, type WeightQuantSpec } from './rtn.ts';
import { OBSERVERS, type ObserverKind } from './calibrate.ts';

export interface QuantMethodConfig {
  scheme: QuantScheme;
  /** int4 scheme: 4, 3 or 2; null = 4. */
  bits: number | null;
  /** tensor | channel | group:<size>; null = the scheme's default (channel for int8, group:64 for int4). */
  granularity: string | null;
  /** null = the scheme's default (symmetric int8, asymmetric int4). */
  symmetric: boolean | null;
  /** int4 scale/zero formula. */
  formula: Int4Formula;
  targets: string[] | null;
  ignore: string[] | null;
  embeddings: boolean;
  /** int8-static activation ranges. */
  observer: ObserverKind;
  percentile: number;
  /** GPTQ dampening and act-order. */
  percdamp: number;
  act_order: boolean;
}

const defaults: QuantMethodConfig = {
  scheme: 'int8', bits: null, granularity: null, symmetric: null, formula: 'gptq', targets: null, ignore: null, embeddings: true,
  observer: 'minmax', percentile: 99.99, percdamp: 0.01, act_order: false,
};
const types = {
  scheme: QUANT_SCHEMES, bits: 'integer', granularity: 'string', symmetric: 'boolean', formula: INT4_FORMULAS, targets: 'string[]', ignore: 'string[]',
  observer: OBSERVERS, percentile: 'number', percdamp: 'number', act_order: 'boolean',
} as const;
const globs = ['targets', 'ignore'] as const;

/** The quantizer options of a config; throws naming the option for combinations that cannot work. */
export function quantOptions(cfg: QuantMethodConfig): QuantizeOptions {
  if (cfg.bits !== null && cfg.scheme !== 'int4') throw new Error(`option 'bits' applies to scheme int4 only (scheme is ${cfg.scheme})`);
  if (cfg.bits !== null && ![2, 3, 4].includes(cfg.bits)) throw new Error(`option 'bits' must be 2, 3 or 4, got ${cfg.bits}`);
  const g = cfg.granularity ? parseGranularity(cfg.granularity) : undefined;
  if (g?.granularity === 'group' && cfg.scheme !== 'int4') throw new Error(`option 'granularity' ${cfg.granularity}: group-wise scales are for scheme int4 (int8 takes tensor or channel)`);
  if (g?.granularity === 'group' && (g.groupSize! < 2 || g.groupSize! % 2 !== 0)) throw new Error(`option 'granularity' ${cfg.granularity}: the group size must be even (two 4-bit codes share a byte)`);
  if (cfg.scheme === 'int4' && g && g.granularity !== 'group') throw new Error(`option 'granularity' ${cfg.granularity}: scheme int4 needs group:<size>`);
  if (cfg.scheme === 'int8-dynamic' && g?.granularity === 'tensor') throw new Error(`option 'granularity': int8-dynamic weights are per channel`);
  return {
    scheme: cfg.scheme,
    bits: cfg.bits ?? undefined,
    granularity: g?.granularity,
    groupSize: g?.groupSize,
    symmetric: cfg.symmetric ?? undefined,
    formula: cfg.formula,
    targets: cfg.targets ?? undefined,
    ignore: cfg.ignore ?? undefined,
    embeddings: cfg.embeddings,
    observer: cfg.observer,
    percentile: cfg.percentile,
    percdamp: cfg.percdamp,
    actOrder: cfg.act_order,
  };
}

/** Integer bytes and weight count of the quantized modules. */
export function quantReport(model: Module): Record<string, number> {
  let bytes = 0;
  let weights = 0;
  let modules = 0;
  const seen = new Set<unknown>();
  for (const m of model.modules())
    if ((m instanceof QuantLinear || m instanceof QuantEmbedding) && !seen.has(m.qweight.codes)) {
      seen.add(m.qweight.codes);
      modules++;
      bytes += quantizedBytes(m.qweight);
      weights += m.qweight.shape[0] * m.qweight.shape[1];
    }
  return { quantized_modules: modules, quantized_weights: weights, quantized_bytes: bytes, bits_per_weight: weights ? (8 * bytes) / weights : 0 };
}

function needCalibration(name: string, ctx: RecipeContext): void {
  if (!ctx.calibration) throw new Error(`${name} needs calibration data: give the recipe a task (or --task), whose training examples calibrate`);
}

export const quantRtn: Method<QuantMethodConfig> = {
  name: 'quant.rtn',
  kind: 'one-shot',
  description: 'round-to-nearest quantization: int8 weight-only, int8 dynamic/static activations, int4/3/2 group-wise',
  defaults,
  types,
  globs,
  check: (_model, cfg, ctx) => {
    quantOptions(cfg);
    if (cfg.scheme === 'int8-static') needCalibration('quant.rtn with scheme int8-static', ctx);
  },
  apply: (model, cfg, ctx) => {
    quantizeModel(model, { ...quantOptions(cfg), method: 'rtn', calibration: cfg.scheme === 'int8-static' ? ctx.calibration : undefined, log: ctx.log });
    return { report: () => quantReport(model) };
  },
  stream: {
    targets: (model, cfg) => {
      if (cfg.scheme === 'int8-static') throw new Error(`quant.rtn: option 'scheme' int8-static observes activations on the whole float model and cannot stream (use int8 or int8-dynamic, or quantize without --stream)`);
      return quantizeModel.targetsOf(model, quantOptions(cfg));
    },
    // quantReport counts every quantized module of the model, so the last block's report is the whole model's
    merge: (reports) => reports[reports.length - 1]!,
  },
};

export const quantGptq: Method<QuantMethodConfig> = {
  name: 'quant.gptq',
  kind: 'one-shot',
  description: 'GPTQ (Frantar et al.): layer-wise second-order weight quantization from calibration data',
  defaults: { ...defaults, scheme: 'int4' },
  types,
  globs,
  check: (_model, cfg, ctx) => {
    quantOptions(cfg);
    needCalibration('quant.gptq', ctx);
  },
  apply: (model, cfg, ctx) => {
    needCalibration('quant.gptq', ctx);
    quantizeModel(model, { ...quantOptions(cfg), method: 'gptq', calibration: ctx.calibration, log: ctx.log });
    return { report: () => quantReport(model) };
  },
};

export const quantQat: Method<QuantMethodConfig> = {
  name: 'quant.qat',
  kind: 'trained',
  description: 'quantization-aware training: fake-quantized layers (straight-through gradients) train, then become integers',
  defaults,
  types,
  globs,
  check: (_model, cfg) => {
    const o = quantOptions(cfg);
    qatSpec({ scheme: o.scheme, bits: o.bits, groupSize: o.groupSize });
  },
  apply: (model, cfg) => {
    const o = quantOptions(cfg);
    prepareQat(model, { scheme: o.scheme, bits: o.bits, groupSize: o.groupSize, targets: o.targets, ignore: o.ignore });
    return {
      finalize: () => {
        convertQat(model);
        quantizeModel(model, { ...o, method: 'rtn' }); // embeddings and layers QAT left in float
      },
      report: () => quantReport(model),
    };
  },
};

for (const m of [quantRtn, quantGptq, quantQat]) registerMethod(m);

// A model saved in the middle of QAT (a checkpoint's best/) records its fake-quant layers.
registerModuleType<FakeQuantLinear>({
  type: 'fake_quant_linear',
  cls: FakeQuantLinear,
  describe: (m) => ({ out_features: m.weight.shape[0], in_features: m.weight.shape[1], bias: m.bias !== null, scheme: m.scheme, spec: m.spec, origin: m.origin }),
  build: (e, where) => {
    const [N, K] = [e.out_features, e.in_features] as [number, number];
    if (!Number.isInteger(N) || !Number.isInteger(K)) throw new Error(`${where}: out_features / in_features must be integers`);
    return new FakeQuantLinear(Tensor.zeros([N, K], { requiresGrad: true }), e.bias ? Tensor.zeros([N], { requiresGrad: true }) : null, e.scheme as QuantScheme, e.spec as WeightQuantSpec, 'weight', e.origin as 'linear' | 'conv1d');
  },
});
