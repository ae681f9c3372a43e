/**
 * `fff.ultrafast` (trained): replace the MLP of selected blocks by UltraFastBERT's fast feedforward layer
 * ({@link FFFLayer}: a tree of 2^(D+1) − 1 GELU neurons of which a token uses D + 1), then train in the recipe's
 * stage. Training runs the masked dense form; evaluation (eval mode, no gradients) runs conditional matrix
 * multiplication (native/fff.cc). The layers stay as they are after training (nothing to finalize): a saved model
 * records them in compression_config (`{"type": "fff", …}`), so fromPretrained rebuilds them.
 *
 * Options: `depth` (D), `parallel_size` (trees per layer, outputs summed), `targets` / `ignore` (globs over block
 * paths, e.g. `bert.encoder.layer.1`; default every block that has an MLP), `init`: 'random' (UltraFastBERT's
 * uniform init) or 'distill' (distill.ts: before training, each tree is fitted to the MLP it replaces on the
 * calibration tokens: nodes started from the dense neurons, linear_out by least squares, then `distill_steps`
 * Adam steps of `distill_batch` rows at `distill_lr` on the MSE, seeded by `distill_seed`; the held-out relative
 * MSE per block is logged and reported).
 */
import type { Module } from '../../nn/module.ts';
import { withoutInit } from '../../nn/init.ts';
import { anatomy, replaceMlp } from '../../models/anatomy.ts';
import { Generator } from '../../tensor/random.ts';
import { registerMethod, type Method, type MethodRun, type RecipeContext } from '../method.ts';
import { matchesAny } from '../select.ts';
import { registerModuleType, type ModuleEntry } from '../structure.ts';
import { FFFLayer, FFFLeafLayer, type LeafActivation } from './layer.ts';
import { fffNodes } from './cmm.ts';
import { captureMlpIO, denseMlp, distillTree, type DistillResult } from './distill.ts';

export interface FffUltrafastConfig {
  /** Tree depth D: 2^(D+1) − 1 neurons per tree, D + 1 used per token. */
  depth: number;
  /** Parallel trees per layer (UltraFastBERT's parallel_size). */
  parallel_size: number;
  /** Block paths to convert (globs); null: every block with an MLP. */
  targets: string[] | null;
  ignore: string[] | null;
  /**
   * Initialisation of the new layers: 'random' (upstream's uniform init) or 'distill' (fitted to the dense MLP's
   * outputs on the calibration tokens before training; needs calibration data).
   */
  init: 'random' | 'distill';
  /** init 'distill': Adam steps after the dense init and least-squares output fit (0: those alone). */
  distill_steps: number;
  /** init 'distill': calibration rows per Adam step. */
  distill_batch: number;
  /** init 'distill': Adam learning rate. */
  distill_lr: number;
  /** init 'distill': seed of the held-out split, the minibatches and the trees' random init (block i uses seed + i). */
  distill_seed: number;
}

/** Blocks (indices) whose MLP the config replaces. */
function chosenBlocks(model: Module, cfg: FffUltrafastConfig): number[] {
  const a = anatomy(model);
  return a.blocks
    .filter((b) => b.mlp !== null && (cfg.targets === null || matchesAny(b.path, cfg.targets)) && !matchesAny(b.path, cfg.ignore ?? []))
    .map((b) => b.index);
}

function check(model: Module, cfg: FffUltrafastConfig, ctx?: RecipeContext): number[] {
  if (cfg.init !== 'random' && cfg.init !== 'distill') throw new Error(`fff.ultrafast: option 'init' must be 'random' or 'distill', got ${JSON.stringify(cfg.init)}`);
  if (!(Number.isInteger(cfg.distill_steps) && cfg.distill_steps >= 0)) throw new Error(`fff.ultrafast: option 'distill_steps' must be an integer >= 0, got ${cfg.distill_steps}`);
  if (!(Number.isInteger(cfg.distill_batch) && cfg.distill_batch >= 1)) throw new Error(`fff.ultrafast: option 'distill_batch' must be an integer >= 1, got ${cfg.distill_batch}`);
  if (!(typeof cfg.distill_lr === 'number' && Number.isFinite(cfg.distill_lr) && cfg.distill_lr > 0)) throw new Error(`fff.ultrafast: option 'distill_lr' must be a finite number > 0, got ${cfg.distill_lr}`);
  if (!Number.isSafeInteger(cfg.distill_seed)) throw new Error(`fff.ultrafast: option 'distill_seed' must be an integer, got ${cfg.distill_seed}`);
  if (cfg.init === 'distill' && ctx && !ctx.calibration) throw new Error("fff.ultrafast: init 'distill' needs calibration data to fit the trees: give the recipe a task (or --task)");
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
  defaults: { depth: 11, parallel_size: 1, targets: null, ignore: null, init: 'random', distill_steps: 300, distill_batch: 256, distill_lr: 1e-3, distill_seed: 0 },
  types: { targets: 'string[]', ignore: 'string[]', init: ['random', 'distill'], distill_steps: 'integer', distill_batch: 'integer', distill_seed: 'integer' },
  globs: ['targets', 'ignore'],
  check: (model, cfg, ctx) => void check(model, cfg, ctx),
  apply: (model, cfg, ctx): MethodRun => {
    const blocks = check(model, cfg, ctx);
    const params = (m: Module) => m.parameters().reduce((n, p) => n + p.numel, 0);
    const before = params(model);
    const a = anatomy(model);
    const H = a.hiddenSize;
    const nodes = cfg.parallel_size * fffNodes(cfg.depth);
    ctx.log?.(`fff.ultrafast: blocks ${blocks.join(',')} → FFF depth ${cfg.depth} × ${cfg.parallel_size} (${nodes} neurons, ${cfg.parallel_size * (cfg.depth + 1)} per token), init ${cfg.init}`);
    const fits: DistillResult[] = [];
    if (cfg.init === 'distill') {
      // every block's input and output rows from the unchanged model, in one pass, before any MLP is replaced
      const io = captureMlpIO(model, blocks, ctx);
      const dense = blocks.map((i) => denseMlp(model, a.blocks[i]!.mlp!));
      blocks.forEach((i, k) => {
        const t0 = performance.now();
        const fff = new FFFLayer(H, H, cfg.depth, { parallelSize: cfg.parallel_size, generator: new Generator(cfg.distill_seed + i) });
        const r = distillTree(fff, io[k]!, dense[k]!, { steps: cfg.distill_steps, batch: cfg.distill_batch, lr: cfg.distill_lr, seed: cfg.distill_seed + i });
        fits.push(r);
        replaceMlp(model, i, fff);
        ctx.log?.(
          `fff.ultrafast: block ${i} distilled on ${r.fitRows} calibration tokens (${r.heldOutRows} held out): relative MSE ${r.relMseRandom.toFixed(4)} (random init) → ${r.relMseInit.toFixed(4)} (dense init) → ${r.relMse.toFixed(4)} (${cfg.distill_steps} steps) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
      });
    } else for (const i of blocks) replaceMlp(model, i, new FFFLayer(H, H, cfg.depth, { parallelSize: cfg.parallel_size }));
    const after = params(model);
    const perBlock = (f: (r: DistillResult) => number) => fits.map((r) => f(r).toFixed(4)).join(' ');
    return {
      report: () => ({
        blocks: blocks.join(','),
        depth: cfg.depth,
        parallel_size: cfg.parallel_size,
        neurons: nodes,
        neurons_per_token: cfg.parallel_size * (cfg.depth + 1),
        init: cfg.init,
        ...(fits.length
          ? {
              distill_tokens: fits[0]!.fitRows + fits[0]!.heldOutRows,
              distill_rel_mse_random: perBlock((r) => r.relMseRandom),
              distill_rel_mse_init: perBlock((r) => r.relMseInit),
              distill_rel_mse: perBlock((r) => r.relMse),
              distill_rel_mse_mean: fits.reduce((s, r) => s + r.relMse, 0) / fits.length,
            }
          : {}),
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
