/**
 * `fff.ultrafast` (trained): replace the MLP of selected blocks by UltraFastBERT's fast feedforward layer
 * ({@link FFFLayer}: a tree of 2^(D+1) − 1 GELU neurons of which a token uses D + 1), then train in the recipe's
 * stage. Training runs the masked dense form; evaluation (eval mode, no gradients) runs conditional matrix
 * multiplication (native/fff.cc). The layers stay as they are after training (nothing to finalize): a saved model
 * records them in compression_config (`{"type": "fff", …}`), so fromPretrained rebuilds them.
 *
 * Options: `depth` (D), `parallel_size` (trees per layer, outputs summed), `targets` / `ignore` (globs over block
 * paths, e.g. `bert.encoder.layer.1`; default every block that has an MLP), `init` ('random': UltraFastBERT's
 * uniform init; distilling the dense MLP into the tree is not implemented yet).
 */
import type { Module } from '../../nn/module.ts';
import { withoutInit } from '../../nn/init.ts';
import { anatomy, replaceMlp } from '../../models/anatomy.ts';
import { registerMethod, type Method, type MethodRun } from '../method.ts';
import { matchesAny } from '../select.ts';
import { registerModuleType, type ModuleEntry } from '../structure.ts';
import { FFFLayer, FFFLeafLayer, type LeafActivation } from './layer.ts';
import { fffNodes } from './cmm.ts';

export interface FffUltrafastConfig {
  /** Tree depth D: 2^(D+1) − 1 neurons per tree, D + 1 used per token. */
  depth: number;
  /** Parallel trees per layer (UltraFastBERT's parallel_size). */
  parallel_size: number;
  /** Block paths to convert (globs); null: every block with an MLP. */
  targets: string[] | null;
  ignore: string[] | null;
  /** Initialisation of the new layers: 'random' (upstream's uniform init). */
  init: 'random';
}

/** Blocks (indices) whose MLP the config replaces. */
function chosenBlocks(model: Module, cfg: FffUltrafastConfig): number[] {
  const a = anatomy(model);
  return a.blocks
    .filter((b) => b.mlp !== null && (cfg.targets === null || matchesAny(b.path, cfg.targets)) && !matchesAny(b.path, cfg.ignore ?? []))
    .map((b) => b.index);
}

function check(model: Module, cfg: FffUltrafastConfig): number[] {
  if (!(Number.isInteger(cfg.depth) && cfg.depth >= 0 && cfg.depth <= 20)) throw new Error(`fff.ultrafast: option 'depth' must be an integer in [0, 20], got ${cfg.depth}`);
  if (!(Number.isInteger(cfg.parallel_size) && cfg.parallel_size >= 1)) throw new Error(`fff.ultrafast: option 'parallel_size' must be an integer >= 1, got ${cfg.parallel_size}`);
  const blocks = chosenBlocks(model, cfg);
  if (blocks.length === 0) throw new Error(`fff.ultrafast: no block with an MLP matches targets ${JSON.stringify(cfg.targets)}${cfg.ignore ? ` (ignore ${JSON.stringify(cfg.ignore)})` : ''}`);
  return blocks;
}

export const fffUltrafast: Method<FffUltrafastConfig> = {
  name: 'fff.ultrafast',
  kind: 'trained',
  description: "UltraFastBERT fast feedforward: each chosen block's MLP becomes a tree of 2^(depth+1) − 1 GELU neurons, depth + 1 used per token (masked dense in training, conditional matmul at inference)",
  defaults: { depth: 11, parallel_size: 1, targets: null, ignore: null, init: 'random' },
  types: { targets: 'string[]', ignore: 'string[]', init: ['random'] },
  globs: ['targets', 'ignore'],
  check: (model, cfg) => void check(model, cfg),
  apply: (model, cfg, ctx): MethodRun => {
    const blocks = check(model, cfg);
    const params = (m: Module) => m.parameters().reduce((n, p) => n + p.numel, 0);
    const before = params(model);
    const H = anatomy(model).hiddenSize;
    for (const i of blocks) replaceMlp(model, i, new FFFLayer(H, H, cfg.depth, { parallelSize: cfg.parallel_size }));
    const after = params(model);
    const nodes = cfg.parallel_size * fffNodes(cfg.depth);
    ctx.log?.(`fff.ultrafast: blocks ${blocks.join(',')} → FFF depth ${cfg.depth} × ${cfg.parallel_size} (${nodes} neurons, ${cfg.parallel_size * (cfg.depth + 1)} per token)`);
    return {
      report: () => ({
        blocks: blocks.join(','),
        depth: cfg.depth,
        parallel_size: cfg.parallel_size,
        neurons: nodes,
        neurons_per_token: cfg.parallel_size * (cfg.depth + 1),
        init: cfg.init,
        params_before: before,
        params_after: after,
      }),
    };
  },
};

registerMethod(fffUltrafast);

function int(e: ModuleEntry, k: string, where: string, min: number): number {
  const v = e[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error(`${where}.${k}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

registerModuleType<FFFLayer>({
  type: 'fff',
  cls: FFFLayer,
  describe: (m) => ({ input_width: m.inputWidth, output_width: m.outputWidth, depth: m.depth, parallel_size: m.parallelSize }),
  build: (e, w) => withoutInit(() => new FFFLayer(int(e, 'input_width', w, 1), int(e, 'output_width', w, 1), int(e, 'depth', w, 0), { parallelSize: int(e, 'parallel_size', w, 1) })),
});

registerModuleType<FFFLeafLayer>({
  type: 'fff_leaf',
  cls: FFFLeafLayer,
  describe: (m) => ({ input_width: m.inputWidth, leaf_width: m.leafWidth, output_width: m.outputWidth, depth: m.depth, activation: m.activation, eval_leaf_bias: m.evalLeafBias }),
  build: (e, w) => {
    if (e.activation !== 'relu' && e.activation !== 'gelu') throw new Error(`${w}.activation: expected 'relu' or 'gelu', got ${JSON.stringify(e.activation)}`);
    return withoutInit(() => new FFFLeafLayer(int(e, 'input_width', w, 1), int(e, 'leaf_width', w, 1), int(e, 'output_width', w, 1), int(e, 'depth', w, 0), { activation: e.activation as LeafActivation, evalLeafBias: e.eval_leaf_bias === true }));
  },
});
